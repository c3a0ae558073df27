"""`ucloud-cli vm`: create, list, show, start/stop/reboot/delete, console and migrate VMs."""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ucloud_cli import output, vms
from ucloud_cli.client import CliError
from ucloud_cli.commands import Session, add_list, firewall, pass_session, pass_session_json
from ucloud_cli.console import attach

COLUMNS: list[output.Column] = [
    *output.fields("uuid", "name", "status", "desired", "host"),
    ("cpu", lambda v: v["specs"]["cpu"]),
    ("ram", lambda v: output.size(v["specs"]["ram"])),
    ("image", lambda v: v.get("image_name") or v["image"]),
    ("ipv6", lambda v: ", ".join(n.get("ipv6") or "" for n in v.get("networks", []))),
]

group = click.Group("vm", help="Virtual machines.")
group.add_command(firewall.group)


def wait_option(function: Callable[..., Any]) -> Callable[..., Any]:
    function = click.option(
        "--timeout", default=300.0, show_default=True, help="seconds --wait waits"
    )(function)
    return click.option("--wait", is_flag=True, help="wait for the target state")(function)


@group.command("create")
@click.argument("name", required=False)
@click.option("--name", "name_option", help="VM name (or give it as the argument)")
@click.option("--cpu", default=1, show_default=True, type=int, help="virtual CPUs")
@click.option("--ram", default="512MiB", show_default=True, help="memory, e.g. 2GB, 512MiB")
@click.option("--os-ssd", default="1GiB", show_default=True, help="OS disk size")
@click.option("--hdd", multiple=True, help="extra empty disk size (repeatable)")
@click.option("--image", required=True, help="image name or uuid")
@click.option("--network", multiple=True, help="network to attach (repeatable)")
@click.option("--ssh-key", multiple=True, help="ssh key name (repeatable; default: all yours)")
@click.option(
    "--user-data",
    type=click.Path(exists=True, dir_okay=False),
    help="file served to the VM as user data",
)
@wait_option
@pass_session_json
def vm_create(
    session: Session,
    name: str | None,
    name_option: str | None,
    cpu: int,
    ram: str,
    os_ssd: str,
    hdd: tuple[str, ...],
    image: str,
    network: tuple[str, ...],
    ssh_key: tuple[str, ...],
    user_data: str | None,
    wait: bool,
    timeout: float,
) -> None:
    """Create a VM (and with --wait, wait until it runs)."""
    vm_name = name_option or name
    if not vm_name:
        raise click.UsageError("give the VM a name (argument or --name)")
    body: dict[str, Any] = dict(name=vm_name, cpu=cpu, ram=ram, os_ssd=os_ssd, image=image)
    for key, values in (("hdd", hdd), ("networks", network), ("ssh_keys", ssh_key)):
        if values:
            body[key] = list(values)
    if user_data:
        try:
            body["user_data"] = Path(user_data).read_text()
        except UnicodeDecodeError:
            raise click.BadParameter(
                "user data must be UTF-8 text", param_hint="--user-data"
            ) from None
    client = session.client
    record = client.post("/v1/vm", body)
    if wait:
        record = vms.wait_for(client, record["uuid"], vms.in_status("RUNNING"), timeout) or record
    vms.show(session.json, record)


add_list(group, "/v1/vm", COLUMNS, "List your VMs (the admin realm: all VMs).")


@group.command("show")
@click.argument("vm_ref", metavar="VM")
@pass_session_json
def vm_show(session: Session, vm_ref: str) -> None:
    """Show one VM (by uuid or name): host, status, console socket, recent log."""
    vms.show(session.json, vms.resolve(session.client, vm_ref))


def _vm_action(action: str, done: vms.Done, help_text: str) -> None:
    @group.command(action, help=help_text)
    @click.argument("vm_ref", metavar="VM")
    @wait_option
    @pass_session_json
    def command(session: Session, vm_ref: str, wait: bool, timeout: float) -> None:
        client = session.client
        uuid = vms.resolve(client, vm_ref)["uuid"]
        if action == "delete":
            record = client.delete(f"/v1/vm/{uuid}")
        else:
            record = client.post(f"/v1/vm/{uuid}/{action}")
        if wait:
            record = vms.wait_for(client, uuid, done, timeout) or {**record, "status": "DELETED"}
        vms.show(session.json, record)


@group.command("console")
@click.argument("vm_ref", metavar="VM")
@pass_session
def vm_console(session: Session, vm_ref: str) -> None:
    """Attach to a VM's serial console (on the VM's host; Ctrl-] leaves)."""
    record = vms.resolve(session.client, vm_ref)
    sockets = record.get("console") or {}
    serial = sockets.get("serial")
    if not serial:
        raise CliError(f"VM {record['uuid']} has no console yet (status {record['status']})")
    if not Path(serial).exists():
        raise CliError(
            f"the console is on host {record['host']}: {serial} (VNC: "
            f"{sockets.get('vnc')}); run this there or forward the socket with ssh"
        )
    click.echo(f"connected to {record['name']} ({serial}); Ctrl-] leaves", err=True)
    attach(serial)


@group.command("migrate")
@click.argument("vm_ref", metavar="VM")
@click.option("--host", "target", help="target host (default: any that fits)")
@wait_option
@pass_session_json
def vm_migrate(
    session: Session, vm_ref: str, target: str | None, wait: bool, timeout: float
) -> None:
    """Move a VM to another host (stopped there, started here; needs shared storage)."""
    client = session.client
    record = vms.resolve(client, vm_ref)
    source = record["host"]
    record = client.post(f"/v1/vm/{record['uuid']}/migrate", {"host": target} if target else {})
    if wait:

        def moved(vm: vms.Vm | None) -> bool:
            return (
                vm is not None
                and vm["host"] not in (None, source)
                and vm["status"] in ("RUNNING", "STOPPED")
            )

        record = vms.wait_for(client, record["uuid"], moved, timeout) or record
    vms.show(session.json, record)


_vm_action("start", vms.in_status("RUNNING"), "Start a VM.")
_vm_action("stop", vms.in_status("STOPPED"), "Stop a VM (ACPI power-off, forced after a timeout).")
_vm_action("reboot", vms.in_status("RUNNING"), "Reboot a running VM.")
_vm_action("delete", lambda vm: vm is None, "Delete a VM and its disks.")
