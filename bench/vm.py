"""VM benchmarks on an all-in-one cloud with real qemu (TCG here):
- control plane: POST /v1/vm -> the VM's qemu process exists, and -> status RUNNING in etcd
  (10 sequential creates, then 5 concurrent ones);
- POST -> the guest's ready marker on its serial console, next to a bare qemu boot of the same
  image with the same command line, so the overhead ucloud adds is visible.

    .venv/bin/python -m bench.vm [--boots 3]
"""

import argparse
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import requests

from bench.util import LATENCY_HEADER, latency_row, machine, print_table, until
from common.imagestore import Disk, FileSource
from ucloud_aio.cloud import QEMU_USER, AllInOne
from ucloud_aio.console import wait_for_marker
from ucloud_aio.guest import READY_MARKER, ensure_tiny_image
from ucloud_aio.procs import free_port, pids_mentioning
from ucloud_vm.driver import VMSpec
from ucloud_vm.drivers.qemu import accel as accelerators
from ucloud_vm.drivers.qemu.argv import build
from ucloud_vm.drivers.qemu.user import QemuUser

BODY = {"cpu": 1, "ram": "128MiB", "os_ssd": "64MiB", "image": "tiny"}


def qemu_running(uuid: str) -> bool:
    return any(
        Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"qemu-system")
        for pid in pids_mentioning(f"-uuid\0{uuid}")
    )


class Bench:
    def __init__(self, cloud: AllInOne) -> None:
        self.cloud = cloud
        self.http = requests.Session()

    def create(self, name: str) -> tuple[str, float]:
        started = time.monotonic()
        answer = self.http.post(
            f"{self.cloud.api_url}/v1/vm",
            json={"name": name, **BODY},
            headers=self.cloud.admin_headers(),
            timeout=30,
        )
        answer.raise_for_status()
        return answer.json()["uuid"], started

    def vm(self, uuid: str) -> dict[str, Any] | None:
        answer = self.http.get(
            f"{self.cloud.api_url}/v1/vm/{uuid}", headers=self.cloud.admin_headers(), timeout=30
        )
        return None if answer.status_code == 404 else answer.json()

    def delete(self, uuids: list[str]) -> None:
        for uuid in uuids:
            self.http.delete(
                f"{self.cloud.api_url}/v1/vm/{uuid}", headers=self.cloud.admin_headers(), timeout=30
            )
        for uuid in uuids:
            until(lambda u=uuid: self.vm(u) is None)

    def measure(self, name: str) -> tuple[str, float, float]:
        """(uuid, seconds to qemu process, seconds to status RUNNING)."""
        uuid, started = self.create(name)
        process = until(lambda: qemu_running(uuid)) - started
        running = until(lambda: self.vm(uuid)["status"] == "RUNNING") - started
        return uuid, process, running


def control_plane(bench: Bench) -> list[list[str]]:
    process, running = [], []
    for index in range(10):
        uuid, to_process, to_running = bench.measure(f"seq{index}")
        process.append(to_process)
        running.append(to_running)
        bench.delete([uuid])  # one guest at a time: TCG guests would slow the next create
    rows = [
        latency_row("sequential: POST -> qemu process", process),
        latency_row("sequential: POST -> status RUNNING", running),
    ]
    results: list[tuple[str, float, float]] = []
    threads = [
        threading.Thread(target=lambda i=i: results.append(bench.measure(f"par{i}")))
        for i in range(5)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    rows += [
        latency_row("5 concurrent: POST -> qemu process", [r[1] for r in results]),
        latency_row("5 concurrent: POST -> status RUNNING", [r[2] for r in results]),
    ]
    bench.delete([r[0] for r in results])
    return rows


def boots(bench: Bench, count: int) -> list[list[str]]:
    ours, bare = [], []
    for index in range(count):
        uuid, started = bench.create(f"boot{index}")
        log = bench.cloud.run_dir(bench.cloud.host_names[0]) / "vm" / uuid / "serial.log"
        wait_for_marker(str(log), READY_MARKER, 120)
        ours.append(time.monotonic() - started)
        bench.delete([uuid])
        bare.append(bare_boot())
    return [
        ["POST -> guest ready marker (ucloud)", str(count), f"{statistics.median(ours):.2f}"],
        ["bare qemu-system -> ready marker", str(count), f"{statistics.median(bare):.2f}"],
        [
            "overhead added by ucloud",
            "",
            f"{statistics.median(ours) - statistics.median(bare):+.2f}",
        ],
    ]


def accel() -> str:
    """The accelerator the cloud's VMs get (probed as the default `qemu_user`)."""
    return accelerators.choose("auto", QemuUser.named(QEMU_USER))


def bare_boot() -> float:
    """The same image and command line, started by hand: disk overlay + qemu, to the marker."""
    with tempfile.TemporaryDirectory(prefix="ub-", dir="/tmp") as tmp:
        started = time.monotonic()
        overlay = Path(tmp) / "os.qcow2"
        subprocess.run(
            [
                "qemu-img",
                "create",
                "-q",
                "-f",
                "qcow2",
                "-b",
                str(ensure_tiny_image()),
                "-F",
                "qcow2",
                str(overlay),
                "64M",
            ],
            check=True,
        )
        image = Disk("disk0-base", FileSource(str(ensure_tiny_image())), read_only=True)
        disks = [Disk("disk0", FileSource(str(overlay)), backing=image)]
        spec = VMSpec("00000000-0000-0000-0000-000000000000", 1, 128 * 1024**2, disks, tmp)
        process = subprocess.Popen(
            build(spec, accel(), {}),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for_marker(str(Path(tmp) / "serial.log"), READY_MARKER, 120)
            return time.monotonic() - started
        finally:
            process.kill()
            process.wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--boots", type=int, default=3)
    args = parser.parse_args()
    state = Path(tempfile.mkdtemp(prefix="ubench-", dir="/tmp"))
    cloud = AllInOne(state, api_port=free_port(), settings={"log_level": "WARNING"})
    try:
        cloud.up()
        bench = Bench(cloud)
        rows = control_plane(bench)
        boot_rows = boots(bench, args.boots)
    finally:
        cloud.down()
        subprocess.run(["rm", "-rf", str(state)], check=False)
    print(f"# VM benchmark, {time.strftime('%Y-%m-%d')}, {machine()}, accel {accel()}\n")
    print_table(LATENCY_HEADER, rows)
    print()
    print_table(["boot", "runs", "median s"], boot_rows)


if __name__ == "__main__":
    main()
