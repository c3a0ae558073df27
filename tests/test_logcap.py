"""The serial log cap (ucloud_vm/drivers/qemu/logcap.py) against a writer that holds the log open
with O_APPEND, as qemu does with `logappend=on`: the log never grows past the cap for long, the
newest output is kept, and writes after a rotation land at the start (no sparse hole)."""

import os
from pathlib import Path

from tests.test_qemu_argv import TAP_FDS, spec
from ucloud_aio.cloud import QEMU_USER
from ucloud_vm.drivers.qemu import logcap
from ucloud_vm.drivers.qemu.argv import build
from ucloud_vm.drivers.qemu.user import QemuUser


def test_rotation_under_an_open_append_writer(tmp_path: Path) -> None:
    log = tmp_path / "serial.log"
    writer = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        os.write(writer, b"old-" * 1000 + b"newest-line\n")
        assert not logcap.cap(log, 100_000)
        assert logcap.cap(log, 1000)
        assert log.stat().st_size == 0
        kept = (tmp_path / "serial.log.1").read_bytes()
        assert len(kept) == 1000 and kept.endswith(b"newest-line\n")
        os.write(writer, b"after\n")
        assert log.read_bytes() == b"after\n"  # at the new end, not at the old offset
        for _ in range(50):  # a guest printing without end stays within two caps
            os.write(writer, b"y\n" * 600)
            logcap.cap(log, 1000)
        assert log.stat().st_size <= 1200 and (tmp_path / "serial.log.1").stat().st_size <= 1000
    finally:
        os.close(writer)
    assert not logcap.cap(tmp_path / "missing.log", 10)


def test_qemu_appends_to_the_log() -> None:
    assert any("logappend=on" in arg for arg in build(spec(), "tcg", TAP_FDS))


def test_a_log_of_qemus_user_stays_its_own(tmp_path: Path) -> None:
    user = QemuUser.named(QEMU_USER)
    log = tmp_path / "serial.log"
    os.close(user.open_own(log, os.O_WRONLY | os.O_CREAT))
    log.write_bytes(b"x" * 5000)
    assert logcap.cap(log, 1000)
    for path in (log, tmp_path / "serial.log.1"):
        info = path.stat()
        assert (info.st_uid, info.st_gid, info.st_mode & 0o777) == (user.uid, user.gid, 0o600)


def test_links_qemu_may_leave_are_not_followed(tmp_path: Path) -> None:
    """The run dir is qemu's: a serial.log that links to a host file must leave it untouched."""
    host_file = tmp_path / "host-file"
    host_file.write_bytes(b"secret" * 1000)
    for kind, link in (("symlink", os.symlink), ("hard link", os.link)):
        log = tmp_path / f"{kind}.log"
        link(host_file, log)
        assert not logcap.cap(log, 10), kind
        assert host_file.read_bytes() == b"secret" * 1000
        assert not log.with_name(log.name + ".1").exists()
