"""The accelerator probe's boot sector (protected mode, iret, debug exit) under real qemu, run
as the user VMs run as."""

from ucloud_aio.cloud import QEMU_USER
from ucloud_vm.drivers.qemu.accel import boots
from ucloud_vm.drivers.qemu.user import QemuUser


def test_probe_guest_runs_to_its_end_under_tcg() -> None:
    assert boots("tcg", QemuUser.named(QEMU_USER))
