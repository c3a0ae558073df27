"""Which accelerator really works here. /dev/kvm may exist and open yet fail to run a guest (a
nested "kvm-pvm" device aborts on `-cpu host` on some machines, and on others fails to emulate
an `iret` in protected mode, which syslinux and the kernel's setup code do), so the probe runs a
tiny guest doing just that: a boot sector that enters 32-bit protected mode, returns through
`iret`, and writes to qemu's isa-debug-exit port. qemu then exits with (0x31 << 1) | 1 = 99.
The probe runs as the user VMs run as (`qemu_user`): whether KVM works is whether that user
may open /dev/kvm too."""

import contextlib
import logging
import os
import subprocess
import tempfile
import time
from typing import IO

from ucloud_vm.drivers.qemu.argv import QEMU, accel_args
from ucloud_vm.drivers.qemu.user import QemuUser

log = logging.getLogger(__name__)

# Assembled (GNU as --32) from, at 0x7c00:
#   .code16: cli; xor ax,ax; mov ds,ax; lgdt gdtr; cr0 |= PE; ljmp 0x08:pm
#   .code32 pm: ds = ss = 0x10; esp = 0x7000; pushf; push cs; push after; iret
#   after: mov al,0x31; out 0xf4,al; 1: hlt; jmp 1b
#   gdt: null, flat code 0x00cf9a000000ffff, flat data 0x00cf92000000ffff; gdtr: 23, gdt
_BOOT_CODE = bytes.fromhex(
    "fa31c08ed80f0116507c0f20c06683c8010f22c0ea197c080066b810008ed88e"
    "d0bc007000009c0e682e7c0000cfb031e6f4f4ebfd8d76000000000000000000"
    "ffff0000009acf00ffff00000092cf001700387c0000"
)
_EXPECTED_STATUS = (0x31 << 1) | 1


def _boot_sector() -> bytes:
    return _BOOT_CODE + bytes(510 - len(_BOOT_CODE)) + b"\x55\xaa"


def kvm_works(user: QemuUser, timeout: float = 10.0) -> bool:
    return os.path.exists("/dev/kvm") and boots("kvm", user, timeout)


def boots(accel: str, user: QemuUser, timeout: float = 10.0) -> bool:
    """Whether the probe guest runs to its end with this accelerator."""
    with (
        tempfile.NamedTemporaryFile(suffix=".img") as image,
        tempfile.TemporaryFile() as errors,
    ):
        image.write(_boot_sector())
        image.flush()
        os.fchown(image.fileno(), user.uid, user.gid)
        argv = [
            QEMU,
            *accel_args(accel),
            "-nodefaults",
            "-display",
            "none",
            "-m",
            "16",
            "-drive",
            f"file={image.name},format=raw,if=ide",
            "-device",
            "isa-debug-exit,iobase=0xf4,iosize=0x04",
        ]
        probe = subprocess.Popen(
            user.command(argv), stdin=subprocess.DEVNULL, stdout=errors, stderr=errors
        )
        status = _outcome(probe, errors, timeout)
        errors.seek(0)
        output = errors.read().decode(errors="replace").strip()
    if status != _EXPECTED_STATUS:
        reason = output.splitlines()[0] if output else f"exit status {status}"
        log.info("%s probe failed (%s)", accel, reason)
        return False
    return True


def _outcome(probe: subprocess.Popen, output: IO[bytes], timeout: float) -> int | None:
    """qemu's exit status; None when it reported a KVM internal error (it then pauses the
    guest instead of exiting) or ran out of time."""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            with contextlib.suppress(subprocess.TimeoutExpired):
                return probe.wait(timeout=0.02)
            output.seek(0)
            if b"internal error" in output.read():
                return None
        return None
    finally:
        if probe.poll() is None:
            probe.kill()
            probe.wait()


def choose(setting: str, user: QemuUser) -> str:
    """The accelerator for `accel` = auto | kvm | tcg, for qemus running as `user`."""
    if setting in ("kvm", "tcg"):
        return setting
    if kvm_works(user):
        return "kvm"
    log.info("KVM does not run guests here: using TCG")
    return "tcg"
