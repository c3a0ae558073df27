"""The accelerator probe's boot sector (protected mode, iret, debug exit) under real qemu."""

from ucloud_vm.drivers.qemu.accel import boots


def test_probe_guest_runs_to_its_end_under_tcg() -> None:
    assert boots("tcg")
