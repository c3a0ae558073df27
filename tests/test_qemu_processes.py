"""How the qemu driver finds its VMs after a restart: by command line (`-uuid`, the pidfile in
this host's run dir) and by owner, the user qemu runs as (`qemu_user`). A process of another
user that mimics a qemu command line is neither adopted nor killed: nobody's, nor root's (a qemu
running as root is not one the driver started)."""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from common.poll import poll
from ucloud_aio.cloud import QEMU_USER
from ucloud_vm.drivers.qemu.argv import QEMU
from ucloud_vm.drivers.qemu.driver import QemuDriver

UUID = "00000000-0000-4000-8000-0000000000aa"
NOBODY = 65534


def mimic(driver: QemuDriver, uid: int, gid: int) -> subprocess.Popen:
    """A python process whose command line reads like one of the driver's qemus."""
    pidfile = str(driver.run_dir(UUID) / "qemu.pid")
    argv = ["bash", "-c", f'exec -a "/fake/{QEMU}" "$0" "$@"', sys.executable]
    argv += ["-c", "import time; time.sleep(60)", "-uuid", UUID, "-pidfile", pidfile]
    if uid != os.getuid():
        argv = ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", *argv]
    return subprocess.Popen(argv)


@pytest.mark.parametrize("owner", ["qemu_user", "root", "nobody"])
def test_only_processes_of_the_qemu_user_are_vms(owner: str) -> None:
    run_dir = tempfile.mkdtemp(prefix="uq", dir="/tmp")  # short: socket paths must fit
    os.chmod(run_dir, 0o711)  # qemu's user must reach its VMs' run dirs
    driver = QemuDriver(run_dir, QEMU_USER, accel="tcg")
    ids = {"qemu_user": (driver.user.uid, driver.user.gid), "root": (0, 0)}
    process = mimic(driver, *ids.get(owner, (NOBODY, NOBODY)))
    ours = owner == "qemu_user"
    try:
        # Until setpriv and bash have exec'd into the mimic: its command line is then the fake
        # qemu's (setpriv's and bash's hold "-uuid" too, while their user may still be root).
        assert poll(
            lambda: Path(f"/proc/{process.pid}/cmdline").read_bytes().startswith(b"/fake/"), 5
        )
        assert (UUID in driver.processes()) is ours
        driver.fence()  # kills what processes() finds: never another user's process
        assert (process.poll() is None) is not ours
    finally:
        process.kill()
        process.wait()
        shutil.rmtree(run_dir)


def test_a_run_dir_qemu_cannot_reach_is_refused() -> None:
    run_dir = tempfile.mkdtemp(prefix="uq", dir="/tmp")  # 0700: root's alone
    try:
        with pytest.raises(ValueError, match="cannot enter"):
            QemuDriver(run_dir, QEMU_USER, accel="tcg")
    finally:
        shutil.rmtree(run_dir)
