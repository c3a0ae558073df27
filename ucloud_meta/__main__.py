"""ucloud-meta: config and wiring; the logic is in agent.py, callers.py and documents.py."""

from typing import Any

import click

from common import config as configuration
from common import daemon
from common.store import Store
from ucloud_meta.agent import MetaAgent


@click.command()
@configuration.options("etcd_endpoints", "hostname", "metadata_port", "log_level", "metrics_port")
def main(config_path: str | None, **flags: Any) -> None:
    """Serve each VM on this host its ssh keys and user data at fe80::a9fe:a9fe."""
    config = daemon.start("ucloud-meta", config_path, flags)
    store = Store.from_config(config)
    agent = MetaAgent(store, config)
    daemon.stop_on_signals(agent.stop, agent.wake.set)
    agent.run()
    store.close()


if __name__ == "__main__":
    main()
