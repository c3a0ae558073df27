"""A VM's taps, opened by the agent and handed to qemu as open files (inherited at start, sent
over QMP with SCM_RIGHTS on hot-plug). qemu runs unprivileged and cannot open a tap itself:
/dev/net/tun may be root's alone, and the taps stay root's, so no qemu can attach to the tap of
another VM (a stopped VM's tap is free to attach to while the VM is away)."""

import contextlib
import fcntl
import os
import struct
from collections.abc import Iterable, Iterator

from ucloud_vm.driver import HypervisorError

TUNSETIFF = 0x400454CA
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
IFF_VNET_HDR = 0x4000  # qemu finds it on the fd (TUNGETIFF) and offloads to virtio-net
IFREQ = "16sH22x"  # struct ifreq: the name, the flags, padding to 40 bytes


def open_tap(name: str) -> int:
    """A descriptor attached to the existing tap `name` (the caller closes it)."""
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC)
    try:
        flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR
        fcntl.ioctl(fd, TUNSETIFF, struct.pack(IFREQ, name.encode(), flags))
    except OSError as error:
        os.close(fd)
        raise HypervisorError(f"cannot open tap {name}: {error.strerror}") from None
    return fd


@contextlib.contextmanager
def opened(names: Iterable[str]) -> Iterator[dict[str, int]]:
    """Tap name -> descriptor for each name, all closed when the block ends (qemu keeps its
    own copies)."""
    with contextlib.ExitStack() as stack:
        fds = {}
        for name in names:
            fds[name] = open_tap(name)
            stack.callback(os.close, fds[name])
        yield fds
