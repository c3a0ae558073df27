"""ucloud-scheduler: config and wiring; the logic is in scheduler.py and placement.py."""

import os
import socket
from typing import Any

import click

from common import config as configuration
from common import daemon
from common.store import Store
from ucloud_scheduler.evacuation import MassFailure
from ucloud_scheduler.placement import Policy
from ucloud_scheduler.scheduler import Scheduler


@click.command()
@configuration.options(
    "etcd_endpoints",
    "cpu_overcommit",
    "ram_overcommit",
    "disk_overcommit",
    "placement",
    "scheduler_lease_ttl",
    "mass_failure_share",
    "mass_failure_grace",
    "shared_storage",
    "log_level",
    "metrics_port",
)
def main(config_path: str | None, **flags: Any) -> None:
    """Place PENDING VMs on ALIVE hosts; any number may run, one elected leader acts."""
    config = daemon.start("ucloud-scheduler", config_path, flags)
    store = Store.from_config(config)
    identity = f"{socket.gethostname()}:{os.getpid()}"
    scheduler = Scheduler(
        store,
        Policy.from_config(config),
        identity,
        config.scheduler_lease_ttl,
        config.shared_storage,
        MassFailure(config.mass_failure_share, config.mass_failure_grace),
    )
    daemon.serve(scheduler, store)


if __name__ == "__main__":
    main()
