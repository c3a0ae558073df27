"""ucloud-meta: config and wiring; the logic is in agent.py, callers.py and documents.py."""

from typing import Any

import click

from common import config as configuration
from common import daemon
from common.drivers import TENANT_LINKS
from common.store import Store
from ucloud_meta.agent import MetaAgent


@click.command()
@configuration.options(
    "etcd_endpoints", "hostname", "metadata_port", "network_driver", "log_level", "metrics_port"
)
def main(config_path: str | None, **flags: Any) -> None:
    """Serve each VM on this host its ssh keys and user data at fe80::a9fe:a9fe."""
    config = daemon.start("ucloud-meta", config_path, flags)
    links = TENANT_LINKS.load(config.network_driver, config)
    store = Store.from_config(config)
    agent = MetaAgent(store, config, links)
    daemon.serve(agent, store, links, wake=agent.wake)


if __name__ == "__main__":
    main()
