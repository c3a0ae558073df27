"""The serial log cap (ucloud_vm/drivers/qemu/logcap.py) against a writer that holds the log open
with O_APPEND, as qemu does with `logappend=on`: the log never grows past the cap for long, the
newest output is kept, and writes after a rotation land at the start (no sparse hole)."""

import os
from pathlib import Path

from tests.test_qemu_argv import spec
from ucloud_vm.drivers.qemu import logcap
from ucloud_vm.drivers.qemu.argv import build


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
    assert any("logappend=on" in arg for arg in build(spec(), "tcg"))
