"""ucloud-vm: on every host, makes the hypervisor's processes match the VMs assigned to it."""
