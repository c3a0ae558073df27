"""ucloud-api: serve the REST API with gunicorn (config, wiring; no logic here)."""

import logging
import os
import shutil
import sys
import tempfile
from typing import Any

import click
from gunicorn.app.base import BaseApplication

from common import config as configuration
from common import log as logsetup
from common.auth import create_local_user
from common.errors import Conflict
from common.imagestore import IMAGE_STORES
from common.store import Store

log = logging.getLogger("ucloud_api")


class _Gunicorn(BaseApplication):
    """gunicorn run in-process; every worker builds its own app (and etcd client) after fork."""

    def __init__(self, config: configuration.Config, options: dict[str, Any]) -> None:
        self.ucloud_config = config
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        from ucloud_api.app import create_app

        return create_app(self.ucloud_config)


def _child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


@click.command()
@configuration.options(
    "etcd_endpoints",
    "api_bind",
    "api_workers",
    "auth_backend",
    "admin_realm",
    "image_store",
    "image_dir",
    "rbd_pool",
    "ceph_conf",
    "ceph_client_id",
    "log_level",
)
@click.option(
    "--bootstrap-admin",
    metavar="NAME",
    help="create admin user NAME (local auth) if missing, print its CLI config, exit",
)
def main(config_path: str | None, bootstrap_admin: str | None, **flags: Any) -> None:
    """Serve the ucloud REST API (docs/api.md) with gunicorn."""
    config = configuration.load_from_flags(config_path, flags)
    logsetup.setup(config.log_level, "ucloud-api")
    IMAGE_STORES.driver_class(config.image_store)  # a wrong name ends here, not in each worker
    if bootstrap_admin:
        _bootstrap(config, bootstrap_admin)
        return
    metrics_dir = tempfile.mkdtemp(prefix="ucloud-api-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    options = {
        "bind": [address.strip() for address in config.api_bind.split(",")],
        "workers": config.api_workers,
        # gthread: keep-alive connections and a few requests in flight per process
        "worker_class": "gthread",
        "threads": config.api_threads,
        "timeout": 300,  # image registration copies files inside a request
        "graceful_timeout": 5,
        "accesslog": None,
        "errorlog": "-",
        "loglevel": config.log_level.lower(),
        "child_exit": _child_exit,
        "proc_name": "ucloud-api",
        "control_socket_disable": True,  # several APIs may share a machine
    }
    try:
        _Gunicorn(config, options).run()
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


def _bootstrap(config: configuration.Config, name: str) -> None:
    if config.auth_backend != "local":
        raise click.UsageError("--bootstrap-admin needs auth_backend local")
    store = Store.from_config(config)
    try:
        account = create_local_user(store, name, config.admin_realm)
    except Conflict:
        click.echo(f"user {name} exists already; its seed was shown when it was created", err=True)
        sys.exit(1)
    finally:
        store.close()
    click.echo(f"name = {account['name']}\nrealm = {account['realm']}\nseed = {account['seed']}")


if __name__ == "__main__":
    main()
