"""ucloud-vm: config and wiring; the logic is in agent.py and reconcile.py."""

from typing import Any

import click

from common import config as configuration
from common import daemon
from common.imagestore import IMAGE_STORES
from common.store import Store
from ucloud_vm import drivers
from ucloud_vm.agent import VMAgent


@click.command()
@configuration.options(
    "etcd_endpoints",
    "hostname",
    "run_dir",
    "firewall",
    "image_store",
    "image_dir",
    "rbd_pool",
    "ceph_conf",
    "ceph_client_id",
    "hypervisor",
    "accel",
    "qemu_user",
    "vm_stop_timeout",
    "config_drive",
    "serial_log_max",
    "fence_margin",
    "log_level",
    "metrics_port",
)
def main(config_path: str | None, **flags: Any) -> None:
    """Run the VMs the scheduler assigned to this host, as their desired state says."""
    config = daemon.start("ucloud-vm", config_path, flags)
    driver = drivers.HYPERVISORS.load(config.hypervisor, config)
    disks = IMAGE_STORES.load(config.image_store, config)
    store = Store.from_config(config)
    agent = VMAgent(store, config, driver, disks)
    daemon.serve(agent, store, wake=agent.wake)


if __name__ == "__main__":
    main()
