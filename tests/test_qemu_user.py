"""The user qemu runs as (ucloud_vm/drivers/qemu/user.py): what runs through `command` has only
that user's ids and groups, and root hands files over in the user's directory without following
a link qemu may have left there."""

import os
import subprocess
from pathlib import Path

import pytest

from ucloud_aio.cloud import QEMU_USER
from ucloud_vm.drivers.qemu.user import QemuUser


@pytest.fixture
def user() -> QemuUser:
    return QemuUser.named(QEMU_USER)


def test_a_command_runs_with_the_users_ids_only(user: QemuUser) -> None:
    status = subprocess.run(
        user.command(["cat", "/proc/self/status"]), capture_output=True, text=True, check=True
    ).stdout
    fields = dict(line.split(":", 1) for line in status.splitlines())
    assert fields["Uid"].split() == [str(user.uid)] * 4
    assert fields["Gid"].split() == [str(user.gid)] * 4
    assert sorted(map(int, fields["Groups"].split())) == sorted(user.groups)
    assert int(fields["CapEff"], 16) == 0


def test_files_and_the_run_dir_become_the_users(user: QemuUser, tmp_path: Path) -> None:
    run = tmp_path / "vm" / "u"
    user.own_dir(run)
    disk = run / "disk"
    disk.write_bytes(b"data")
    user.give(disk)
    for path, mode in ((run, 0o700), (disk, 0o600)):
        info = path.stat()
        assert (info.st_uid, info.st_gid, info.st_mode & 0o777) == (user.uid, user.gid, mode)


def test_links_are_refused(user: QemuUser, tmp_path: Path) -> None:
    host_file = tmp_path / "host-file"
    host_file.write_text("root's")
    for name, link in (("symlink", os.symlink), ("hardlink", os.link)):
        link(host_file, tmp_path / name)
        with pytest.raises(OSError):
            user.give(tmp_path / name)
    assert host_file.stat().st_uid == 0 and host_file.stat().st_mode & 0o777 == 0o644


def test_an_unknown_user_and_root_are_refused() -> None:
    with pytest.raises(ValueError, match=r"setup\.sh"):
        QemuUser.named("ucloud-no-such-user")
    with pytest.raises(ValueError, match="unprivileged"):
        QemuUser.named("root")
