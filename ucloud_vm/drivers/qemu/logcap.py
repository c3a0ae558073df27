"""Capping a VM's serial log: a guest can print without end (`yes > /dev/ttyS0`), and the log
lives on the host (on tmpfs under /run by default). qemu writes it with O_APPEND (chardev
`logappend=on`), so the file can be emptied under it: the next write lands at the new end.
When the log passes the cap, its content moves to `serial.log.1` (replacing the previous one)
and the log starts again, as virtlogd rotates at 2 MiB: at most about two caps per VM.

The log and its directory are qemu's user's, and the cap runs as root: the log is opened
without following a symlink and left alone unless it is a regular file with one link (else qemu
could have root truncate a host file, or copy it where qemu reads), and the copy gets the log's
owner and mode."""

import os
import stat
from pathlib import Path


def cap(log: Path, limit: int) -> bool:
    """Rotate `log` if it is larger than `limit` bytes; True if it did."""
    try:
        source = os.open(log, os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:  # no log yet, or a symlink (ELOOP)
        return False
    try:
        info = os.fstat(source)
        if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1 or info.st_size <= limit:
            return False
        previous = log.with_name(log.name + ".1")
        partial = log.with_name(log.name + ".1.part")
        partial.unlink(missing_ok=True)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        target = os.open(partial, flags, 0o600)
        with os.fdopen(target, "wb") as copy:
            os.fchown(target, info.st_uid, info.st_gid)
            os.fchmod(target, stat.S_IMODE(info.st_mode))
            copy.write(os.pread(source, limit, max(0, info.st_size - limit)))
        os.replace(partial, previous)
        os.ftruncate(source, 0)  # what qemu wrote since the copy is lost: at most a pass's worth
        return True
    finally:
        os.close(source)
