"""ucloud-ipam: config and wiring; the logic is in agent.py and ra.py."""

from typing import Any

import click

from common import config as configuration
from common import daemon
from common.store import Store
from ucloud_ipam.agent import IpamAgent


@click.command()
@configuration.options("etcd_endpoints", "hostname", "network_dns", "log_level", "metrics_port")
def main(config_path: str | None, **flags: Any) -> None:
    """Router advertisements for the networks of this host's VMs."""
    config = daemon.start("ucloud-ipam", config_path, flags)
    store = Store.from_config(config)
    agent = IpamAgent(store, config)
    daemon.stop_on_signals(agent.stop, agent.wake.set)
    agent.run()
    store.close()


if __name__ == "__main__":
    main()
