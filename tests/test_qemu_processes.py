"""How the qemu driver finds its VMs after a restart: by command line (`-uuid`, the pidfile in
this host's run dir) and by owner. A process of another user that mimics a qemu command line is
neither adopted nor killed."""

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from common.poll import poll
from ucloud_vm.drivers.qemu.argv import QEMU
from ucloud_vm.drivers.qemu.driver import QemuDriver

UUID = "00000000-0000-4000-8000-0000000000aa"
NOBODY = 65534


def mimic(driver: QemuDriver, as_nobody: bool) -> subprocess.Popen:
    """A python process whose command line reads like one of the driver's qemus."""
    pidfile = str(driver.run_dir(UUID) / "qemu.pid")
    argv = ["bash", "-c", f'exec -a "/fake/{QEMU}" "$0" "$@"', sys.executable]
    argv += ["-c", "import time; time.sleep(60)", "-uuid", UUID, "-pidfile", pidfile]
    if as_nobody:
        argv = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *argv]
    return subprocess.Popen(argv)


@pytest.mark.parametrize("as_nobody", [False, True])
def test_only_processes_of_the_agents_user_are_vms(as_nobody: bool) -> None:
    run_dir = tempfile.mkdtemp(prefix="uq", dir="/tmp")  # short: socket paths must fit
    driver = QemuDriver(run_dir, accel="tcg")
    process = mimic(driver, as_nobody)
    try:
        # Until bash has exec'd into the mimic (its command line is then the fake qemu's).
        assert poll(lambda: b"-uuid" in Path(f"/proc/{process.pid}/cmdline").read_bytes(), 5)
        assert (UUID in driver.processes()) is not as_nobody
        driver.fence()  # kills what processes() finds: never the other user's process
        assert (process.poll() is None) is as_nobody
    finally:
        process.kill()
        process.wait()
        shutil.rmtree(run_dir)
