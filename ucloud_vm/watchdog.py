"""ucloud-watchdog: fences the host's VMs when no lease refresh came in time, even if ucloud-vm and
ucloud-host are both dead.

ucloud-vm fences too (ucloud_vm/fencing.py), but only while it runs. If ucloud-vm and ucloud-host
die together (an OOM kill, a bad upgrade), nobody refreshes the lease and nobody kills the VMs,
while the scheduler restarts them elsewhere once the lease expires: two copies. This process is
the independent last line, like Proxmox HA's watchdog: it talks to no etcd and no API, reads the
lease file ucloud-host writes (common/fence.py) ten times a second and kills every VM of the host
through the hypervisor driver once the lease is about to lapse. It holds no state, so a restart
at any moment is harmless; it is small on purpose, so it has little reason to die.
"""

import logging
import threading
from typing import Any

import click

from common import config as configuration
from common import daemon, fence
from ucloud_vm import drivers
from ucloud_vm.driver import Hypervisor
from ucloud_vm.fencing import Fencer

log = logging.getLogger(__name__)

TICK = 0.1  # seconds between checks: well inside fence_margin


class Watchdog:
    def __init__(self, fencer: Fencer) -> None:
        self.fencer = fencer
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(TICK):
            try:
                self.fencer.check()
            except Exception:
                # Keep watching: a failed check must not end the last line of defence.
                log.exception("fencing check failed")


def watchdog_for(config: configuration.Config, driver: Hypervisor) -> Watchdog:
    lease = fence.lease_file(config.run_dir, config.hostname)
    return Watchdog(Fencer(lease, config.fence_margin, driver))


@click.command()
@configuration.options(
    "hostname", "run_dir", "hypervisor", "accel", "fence_margin", "log_level", "metrics_port"
)
def main(config_path: str | None, **flags: Any) -> None:
    """Kill this host's VMs when its etcd lease was not refreshed in time (no etcd needed)."""
    config = daemon.start("ucloud-watchdog", config_path, flags)
    driver = drivers.HYPERVISORS.load(config.hypervisor, config)
    daemon.serve(watchdog_for(config, driver))


if __name__ == "__main__":
    main()
