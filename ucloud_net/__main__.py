"""ucloud-net: config and wiring; the logic is in agent.py and plan.py."""

from typing import Any

import click

from common import config as configuration
from common import daemon
from common.store import Store
from ucloud_net import drivers
from ucloud_net.agent import NetAgent


@click.command()
@configuration.options(
    "etcd_endpoints",
    "hostname",
    "underlay_address",
    "underlay_interface",
    "network_driver",
    "log_level",
    "metrics_port",
)
def main(config_path: str | None, **flags: Any) -> None:
    """Make this host's VXLANs, bridges and taps match the VMs assigned to it."""
    config = daemon.start("ucloud-net", config_path, flags)
    if not config.underlay_address:
        raise click.UsageError("ucloud-net needs underlay_address (this host's IPv6 underlay)")
    driver = drivers.NETWORKS.load(config.network_driver, config)
    store = Store.from_config(config)
    agent = NetAgent(store, config.hostname, driver)
    daemon.serve(agent, store, driver, wake=agent.wake)


if __name__ == "__main__":
    main()
