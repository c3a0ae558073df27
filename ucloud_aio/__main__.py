"""ucloud-aio up|down|status: a complete cloud on this machine (DESIGN §6a)."""

import signal
import threading
from pathlib import Path
from typing import Any

import click

from ucloud_aio.cloud import DEFAULT_STATE_DIR, AllInOne

state_dir_option = click.option(
    "--state-dir",
    default=DEFAULT_STATE_DIR,
    show_default=True,
    type=click.Path(path_type=Path),
    help="where this cloud keeps everything",
)


@click.group()
def cli() -> None:
    """All-in-one ucloud: etcd and every daemon on this machine."""


@cli.command()
@state_dir_option
@click.option("--api-port", default=8080, show_default=True, help="port of the REST API")
@click.option("--detach", is_flag=True, help="return once the cloud is up")
def up(state_dir: Path, api_port: int, detach: bool) -> None:
    """Bring up the cloud; without --detach, stay in the foreground until Ctrl-C."""
    cloud = AllInOne(state_dir, api_port)
    click.echo(f"starting ucloud in {cloud.state_dir} ...", err=True)
    try:
        cloud.up()
    except (RuntimeError, TimeoutError) as error:
        cloud.down()
        raise click.ClickException(str(error)) from None
    click.echo(f"ucloud is up: API {cloud.api_url}, host {cloud.hostname} ALIVE")
    click.echo(f"admin CLI config: {cloud.admin_conf}")
    click.echo(f"  export UCLOUD_CONFIG={cloud.admin_conf}; ucloud-cli host list")
    if detach:
        click.echo(f"stop it with: ucloud-aio down --state-dir {cloud.state_dir}")
        return
    stop = threading.Event()

    def handler(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    click.echo("running in the foreground; Ctrl-C stops everything", err=True)
    while not stop.wait(1.0):
        dead = [name for name, running in cloud.status().items() if not running]
        if dead:
            click.echo(
                f"stopped unexpectedly: {', '.join(dead)} (see {cloud.state_dir}/logs)", err=True
            )
            break
    click.echo("stopping ...", err=True)
    cloud.down()


@cli.command()
@state_dir_option
def down(state_dir: Path) -> None:
    """Stop every process of the cloud."""
    AllInOne(state_dir).down()
    click.echo("ucloud is down")


@cli.command()
@state_dir_option
def status(state_dir: Path) -> None:
    """Which processes of the cloud run."""
    for name, running in AllInOne(state_dir).status().items():
        click.echo(f"{name:20} {'running' if running else 'stopped'}")


def main() -> None:
    cli(prog_name="ucloud-aio")


if __name__ == "__main__":
    main()
