"""Capping a VM's serial log: a guest can print without end (`yes > /dev/ttyS0`), and the log
lives on the host (on tmpfs under /run by default). qemu writes it with O_APPEND (chardev
`logappend=on`), so the file can be emptied under it: the next write lands at the new end.
When the log passes the cap, its content moves to `serial.log.1` (replacing the previous one)
and the log starts again, as virtlogd rotates at 2 MiB: at most about two caps per VM."""

import os
from pathlib import Path


def cap(log: Path, limit: int) -> bool:
    """Rotate `log` if it is larger than `limit` bytes; True if it did."""
    try:
        size = log.stat().st_size
    except FileNotFoundError:
        return False
    if size <= limit:
        return False
    previous = log.with_name(log.name + ".1")
    partial = log.with_name(log.name + ".1.part")
    with open(log, "rb") as source, open(partial, "wb") as target:
        source.seek(max(0, size - limit))
        target.write(source.read(limit))
    os.replace(partial, previous)
    os.truncate(log, 0)  # what qemu wrote since the copy is lost: at most a pass's worth
    return True
