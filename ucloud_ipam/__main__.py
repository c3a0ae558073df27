"""ucloud-ipam: config and wiring; the logic is in agent.py and ra.py."""

from typing import Any

import click

from common import config as configuration
from common import daemon
from common.drivers import TENANT_LINKS
from common.store import Store
from ucloud_ipam.agent import IpamAgent


@click.command()
@configuration.options(
    "etcd_endpoints", "hostname", "network_dns", "network_driver", "log_level", "metrics_port"
)
def main(config_path: str | None, **flags: Any) -> None:
    """Router advertisements for the networks of this host's VMs."""
    config = daemon.start("ucloud-ipam", config_path, flags)
    links = TENANT_LINKS.load(config.network_driver, config)
    store = Store.from_config(config)
    agent = IpamAgent(store, config, links)
    daemon.serve(agent, store, links, wake=agent.wake)


if __name__ == "__main__":
    main()
