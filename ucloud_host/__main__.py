"""ucloud-host: config and wiring; the logic is in agent.py."""

from typing import Any

import click

from common import config as configuration
from common import daemon
from common.store import Store
from ucloud_host import drivers
from ucloud_host.agent import HostAgent


@click.command()
@configuration.options(
    "etcd_endpoints",
    "hostname",
    "host_lease_ttl",
    "host_cpu",
    "host_ram",
    "host_disk",
    "host_report_interval",
    "host_facts",
    "underlay_address",
    "run_dir",
    "image_dir",
    "log_level",
    "metrics_port",
)
def main(config_path: str | None, **flags: Any) -> None:
    """Register this host and keep its liveness lease."""
    config = daemon.start("ucloud-host", config_path, flags)
    facts = drivers.HOST_FACTS.load(config.host_facts, config)
    store = Store.from_config(config)
    agent = HostAgent(store, config, facts)
    daemon.serve(agent, store)


if __name__ == "__main__":
    main()
