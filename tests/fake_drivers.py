"""Fake platform drivers for tests, and a way to run a real daemon with them.

A registry entry made in the test process does not exist in a daemon subprocess, so
`python -m tests.fake_drivers <daemon package> --config ...` registers the fakes and then runs
that daemon's own main: the process, its config and its wiring are the product's; only the
registry has one more name.
"""

import importlib
import sys
from typing import Any

from ucloud_host.driver import HostFacts, Space
from ucloud_host.drivers import HOST_FACTS

GiB = 1024**3


class FakeHostFacts(HostFacts):
    """A fixed machine: 3 CPUs, 5 GiB of memory (1 in use), 7 GiB of disk (2 in use)."""

    CAPACITY = {"cpu": 3, "ram": 5 * GiB, "disk": 7 * GiB}
    USAGE = {"load1": 0.25, "ram_used": 1 * GiB, "disk_used": 2 * GiB}

    @classmethod
    def from_config(cls, config: Any) -> "FakeHostFacts":
        return cls()

    def cpus(self) -> int:
        return self.CAPACITY["cpu"]

    def memory(self) -> Space:
        return Space(self.CAPACITY["ram"], self.USAGE["ram_used"])

    def filesystem(self, path: str) -> Space:
        return Space(self.CAPACITY["disk"], self.USAGE["disk_used"])

    def load(self) -> float:
        return self.USAGE["load1"]


def register() -> None:
    HOST_FACTS.register("fake", "tests.fake_drivers:FakeHostFacts")


if __name__ == "__main__":
    register()
    daemon = sys.argv.pop(1)
    importlib.import_module(f"{daemon}.__main__").main()
