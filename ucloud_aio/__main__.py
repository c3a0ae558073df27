"""ucloud-aio up|down|status: a complete cloud on this machine (docs/aio.md)."""

import signal
import subprocess
import threading
from pathlib import Path
from typing import Any

import click

from ucloud_aio.cloud import DEFAULT_STATE_DIR, AllInOne
from ucloud_aio.console import ConsoleError
from ucloud_aio.demo import run_demo

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


api_port_option = click.option(
    "--api-port", default=8080, show_default=True, help="port of the REST API"
)


def _start(
    state_dir: Path, api_port: int, hosts: int | None = None, ceph: bool | None = None
) -> AllInOne:
    cloud = AllInOne(state_dir, api_port, hosts=hosts, ceph=ceph)
    click.echo(f"starting ucloud in {cloud.state_dir} ...", err=True)
    try:
        cloud.up()
    except (RuntimeError, TimeoutError, subprocess.CalledProcessError) as error:
        cloud.down()
        raise click.ClickException(str(error)) from None
    click.echo(
        f"ucloud is up: API {cloud.api_url}, host(s) {', '.join(cloud.host_names)} ALIVE,"
        " image tiny" + (f" (Ceph RBD, {cloud.ceph_dir / 'ceph.conf'})" if cloud.ceph else "")
    )
    click.echo(f"admin CLI config: {cloud.admin_conf}")
    click.echo(f"  export UCLOUD_CONFIG={cloud.admin_conf}; ucloud-cli host list")
    return cloud


@cli.command()
@state_dir_option
@api_port_option
@click.option("--detach", is_flag=True, help="return once the cloud is up")
@click.option("--demo", is_flag=True, help="also create a user and boot a VM (see `demo`)")
@click.option(
    "--hosts",
    type=click.IntRange(1, 64),
    default=None,
    help="a lab of N hosts (network namespaces host1..hostN on an IPv6 fabric)",
)
@click.option(
    "--ceph",
    is_flag=True,
    help="images and disks in a single-node Ceph (RBD, memory only) instead of files",
)
def up(
    state_dir: Path, api_port: int, detach: bool, demo: bool, hosts: int | None, ceph: bool
) -> None:
    """Bring up the cloud; without --detach, stay in the foreground until Ctrl-C."""
    cloud = _start(state_dir, api_port, hosts, ceph or None)  # None: as the state dir says
    if demo:
        _demo(cloud)
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
@api_port_option
def demo(state_dir: Path, api_port: int) -> None:
    """Bring the cloud up (detached), create user `demo` and boot VM `demo` from image tiny."""
    _demo(_start(state_dir, api_port))
    click.echo(f"stop it with: ucloud-aio down --state-dir {Path(state_dir).absolute()}")


def _demo(cloud: AllInOne) -> None:
    click.echo("booting VM demo from image tiny ...", err=True)
    try:
        vm = run_demo(cloud)
    except (RuntimeError, TimeoutError, ConsoleError) as error:
        raise click.ClickException(str(error)) from None
    console = vm["console"]
    click.echo(f"VM demo ({vm['uuid']}) is RUNNING on {vm['host']}; its guest is up.")
    click.echo(f"  user config:    export UCLOUD_CONFIG={cloud.state_dir / 'demo.conf'}")
    click.echo("  show it:        ucloud-cli vm show demo")
    click.echo(
        f"  serial console: socat -,raw,echo=0,escape=0x1d UNIX-CONNECT:{console['serial']}"
        "   (Ctrl-] leaves)"
    )
    click.echo(f"  VNC (unix socket): {console['vnc']}")


@cli.command()
@state_dir_option
def down(state_dir: Path) -> None:
    """Stop every process of the cloud."""
    AllInOne(state_dir).down()
    click.echo("ucloud is down")


@cli.group()
def host() -> None:
    """Failures on purpose: kill, cut, restore a host (see `up --hosts N`)."""


def _lab_host_command(action: str, help_text: str) -> None:
    @host.command(action, help=help_text)
    @click.argument("name")
    @state_dir_option
    def command(name: str, state_dir: Path) -> None:
        cloud = AllInOne(state_dir)
        try:
            getattr(cloud, f"{action}_host")(name)
        except (ValueError, RuntimeError, TimeoutError) as error:
            raise click.ClickException(str(error)) from None
        click.echo(f"host {name}: {action} done")


_lab_host_command("kill", "Power cut: kill every process of the host, its VMs included.")
_lab_host_command("cut", "Partition: take the host's fabric link down; processes keep running.")
_lab_host_command("restore", "Undo kill or cut: link up, the host's agents running again.")


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
