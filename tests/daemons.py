"""Run ucloud daemons as real processes in tests, and wait on etcd state."""

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common.poll import poll
from common.store import Store
from ucloud_aio.cloud import venv_script
from ucloud_aio.procs import spawn


def write_conf(path: Path, **values: object) -> Path:
    path.write_text("".join(f"{k} = {v}\n" for k, v in values.items()))
    return path


class Daemons:
    """Started processes, all killed at teardown (kill -9: tests may leave nothing behind)."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.processes: list[subprocess.Popen] = []

    def start(
        self, name: str, conf: Path, *args: str, log_name: str | None = None
    ) -> subprocess.Popen:
        return self.run([venv_script(name), "--config", str(conf), *args], log_name or name)

    def run(self, argv: list[str], log_name: str) -> subprocess.Popen:
        process = spawn(argv, self.log_dir / f"{log_name}.log")
        self.processes.append(process)
        return process

    def cleanup(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
            process.wait()


def eventually(check: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05) -> Any:
    """Return check()'s first truthy result; fail with the last value after timeout."""
    values: list[Any] = []

    def met() -> bool:
        values.append(check())
        return bool(values[-1])

    if not poll(met, timeout, interval):
        raise AssertionError(f"condition not met within {timeout} s (last value: {values[-1]!r})")
    return values[-1]


def vm_records(store: Store) -> list[dict[str, Any]]:
    return [e.value for e in store.list("/v1/vm/").entries]
