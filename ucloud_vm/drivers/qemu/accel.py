"""Which accelerator really works here. /dev/kvm may exist and open yet fail to run a guest (a
nested "kvm-pvm" device aborts on `-cpu host`), so the probe runs a tiny guest: a boot sector
that writes to qemu's isa-debug-exit port. qemu then exits with status (0x31 << 1) | 1 = 99."""

import logging
import os
import subprocess
import tempfile

from ucloud_vm.drivers.qemu.argv import QEMU, accel_args

log = logging.getLogger(__name__)

# mov al, 0x31 ; out 0xf4, al ; hlt ; jmp $-1
_BOOT_CODE = bytes([0xB0, 0x31, 0xE6, 0xF4, 0xF4, 0xEB, 0xFD])
_EXPECTED_STATUS = (0x31 << 1) | 1


def _boot_sector() -> bytes:
    return _BOOT_CODE + bytes(510 - len(_BOOT_CODE)) + b"\x55\xaa"


def kvm_works(timeout: float = 10.0) -> bool:
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False
    with tempfile.NamedTemporaryFile(suffix=".img") as image:
        image.write(_boot_sector())
        image.flush()
        argv = [
            QEMU,
            *accel_args("kvm"),
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
        try:
            result = subprocess.run(argv, capture_output=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            return False
    if result.returncode != _EXPECTED_STATUS:
        log.info("KVM probe failed (%s): using TCG", result.stderr.decode().strip()[-200:])
        return False
    return True


def choose(setting: str) -> str:
    """The accelerator for `accel` = auto | kvm | tcg."""
    if setting in ("kvm", "tcg"):
        return setting
    return "kvm" if kvm_works() else "tcg"
