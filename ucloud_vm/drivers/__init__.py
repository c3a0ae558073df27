"""Hypervisor drivers, chosen at start-up by name (`hypervisor` in the config)."""

from common.registry import Registry
from ucloud_vm.driver import Hypervisor

HYPERVISORS: Registry[Hypervisor] = Registry(
    "hypervisor", "hypervisor", {"qemu": "ucloud_vm.drivers.qemu.driver:QemuDriver"}
)
