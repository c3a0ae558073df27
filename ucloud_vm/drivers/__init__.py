"""Hypervisor drivers, chosen at start-up by name (`hypervisor` in the config)."""

from typing import Any

from ucloud_vm.driver import Hypervisor


def load(name: str, config: Any) -> Hypervisor:
    if name == "qemu":
        from ucloud_vm.drivers.qemu.driver import QemuDriver

        return QemuDriver(config.run_dir, accel=config.accel)
    raise ValueError(f"unknown hypervisor {name!r} (known: qemu)")
