"""ucloud-firewall: config and wiring; the logic is in agent.py and policy.py."""

from typing import Any

import click

from common import config as configuration
from common import daemon
from common.store import Store
from ucloud_firewall.agent import FirewallAgent
from ucloud_firewall.drivers import FIREWALLS


@click.command()
@configuration.options(
    "etcd_endpoints",
    "hostname",
    "run_dir",
    "firewall",
    "firewall_default_ingress",
    "metadata_port",
    "underlay_interface",
    "log_level",
    "metrics_port",
)
def main(config_path: str | None, **flags: Any) -> None:
    """Filter what this host's VMs send and receive, and what reaches the host from them."""
    config = daemon.start("ucloud-firewall", config_path, flags)
    if config.firewall == "none":
        raise click.UsageError("firewall = none: this host runs no ucloud-firewall")
    driver = FIREWALLS.load(config.firewall, config)
    store = Store.from_config(config)
    agent = FirewallAgent(store, config, driver)
    daemon.serve(agent, store, wake=agent.wake)


if __name__ == "__main__":
    main()
