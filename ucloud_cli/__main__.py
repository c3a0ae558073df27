"""ucloud-cli <group> <command>: vm, network, image, host, user, ssh-key (DESIGN §6)."""

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from ucloud_cli import output
from ucloud_cli.client import Client, CliError
from ucloud_cli.console import attach
from ucloud_cli.settings import load as load_settings

UUID_LENGTH = 36


@dataclass
class Context:
    api: str | None
    json: bool
    _client: Client | None = None

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = Client(load_settings(self.api))
        return self._client


def json_flag(function: Callable[..., Any]) -> Callable[..., Any]:
    """--json on every command (also accepted before the group: `ucloud-cli --json vm list`)."""
    return click.option("--json", "as_json", is_flag=True, help="print JSON")(function)


def wants_json(ctx: click.Context, as_json: bool) -> bool:
    return as_json or ctx.find_object(Context).json


class CliGroup(click.Group):
    """Turns CliError into `error: <message>` on stderr and exit status 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CliError as error:
            click.echo(f"error: {error}", err=True)
            sys.exit(1)


@click.group(cls=CliGroup)
@click.option("--api", help="API base URL (overrides config and UCLOUD_API)")
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of tables")
@click.pass_context
def cli(ctx: click.Context, api: str | None, as_json: bool) -> None:
    """ucloud command line. Credentials: UCLOUD_CONFIG (default ~/.config/ucloud/ucloud.conf,
    keys api, name, realm, seed) or UCLOUD_API, UCLOUD_NAME, UCLOUD_REALM, UCLOUD_SEED."""
    ctx.obj = Context(api, as_json)


pass_context = click.make_pass_decorator(Context)

# -- vm ------------------------------------------------------------------------------------

VM_COLUMNS: list[output.Column] = [
    ("uuid", lambda v: v["uuid"]),
    ("name", lambda v: v["name"]),
    ("status", lambda v: v["status"]),
    ("desired", lambda v: v["desired"]),
    ("host", lambda v: v["host"]),
    ("cpu", lambda v: v["specs"]["cpu"]),
    ("ram", lambda v: output.size(v["specs"]["ram"])),
    ("image", lambda v: v.get("image_name") or v["image"]),
    ("ipv6", lambda v: ", ".join(n.get("ipv6") or "" for n in v.get("networks", []))),
]

VM_DETAILS: list[output.Column] = [
    ("uuid", lambda v: v["uuid"]),
    ("name", lambda v: v["name"]),
    ("owner", lambda v: v["owner"]),
    ("status", lambda v: v["status"]),
    ("desired", lambda v: v["desired"]),
    ("host", lambda v: v["host"]),
    ("cpu", lambda v: v["specs"]["cpu"]),
    ("ram", lambda v: output.size(v["specs"]["ram"])),
    ("os_ssd", lambda v: output.size(v["specs"]["os_ssd"])),
    ("hdd", lambda v: ", ".join(output.size(h) for h in v["specs"]["hdd"])),
    ("image", lambda v: f"{v.get('image_name', '')} ({v['image']})"),
    (
        "networks",
        lambda v: ", ".join(
            f"{n['network']} {n.get('mac', '')} {n.get('ipv6') or ''}".strip()
            for n in v.get("networks", [])
        ),
    ),
    ("vnc", lambda v: (v.get("console") or {}).get("vnc")),
    ("serial", lambda v: (v.get("console") or {}).get("serial")),
    ("created", lambda v: v["created"]),
]


@cli.group()
def vm() -> None:
    """Virtual machines."""


def resolve_vm(client: Client, reference: str) -> dict[str, Any]:
    """A VM by uuid, or by name when exactly one of the caller's VMs has it."""
    if len(reference) == UUID_LENGTH:
        return client.get(f"/v1/vm/{reference}")
    matches = [v for v in client.get("/v1/vm") if v["name"] == reference]
    if not matches:
        raise CliError(f"no VM named {reference!r}")
    if len(matches) > 1:
        raise CliError(f"{len(matches)} VMs are named {reference!r}: use the uuid")
    return matches[0]


def wait_for(
    client: Client, uuid: str, done: Callable[[dict[str, Any] | None], bool], timeout: float
) -> dict[str, Any] | None:
    """Poll the VM until done(vm) (vm None: it is gone); progress lines on stderr."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            current = client.get(f"/v1/vm/{uuid}")
        except CliError as error:
            if "unknown VM" in str(error):
                current = None
            else:
                raise
        state = current["status"] if current else "DELETED"
        if state != last:
            click.echo(f"{uuid}: {state}", err=True)
            last = state
        if done(current):
            return current
        if current and current["status"] == "ERROR":
            log = current.get("log") or ["no reason given"]
            raise CliError(f"VM {uuid} is in ERROR: {log[-1]}")
        if time.monotonic() > deadline:
            raise CliError(f"timed out after {timeout:.0f} s; VM {uuid} is {state}")
        time.sleep(0.5)


def wait_option(function: Callable[..., Any]) -> Callable[..., Any]:
    function = click.option(
        "--timeout", default=300.0, show_default=True, help="seconds --wait waits"
    )(function)
    return click.option("--wait", is_flag=True, help="wait for the target state")(function)


def _running(vm: dict[str, Any] | None) -> bool:
    return vm is not None and vm["status"] == "RUNNING"


def _stopped(vm: dict[str, Any] | None) -> bool:
    return vm is not None and vm["status"] == "STOPPED"


def _gone(vm: dict[str, Any] | None) -> bool:
    return vm is None


def show_vm(ctx: click.Context, as_json: bool, record: dict[str, Any]) -> None:
    if wants_json(ctx, as_json):
        output.emit_json(record)
        return
    output.details(record, VM_DETAILS)
    if record.get("log"):
        click.echo("log:")
        for line in record["log"][-10:]:
            click.echo(f"  {line}")


@vm.command("create")
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
@json_flag
@click.pass_context
def vm_create(
    ctx: click.Context,
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
    as_json: bool,
) -> None:
    """Create a VM (and with --wait, wait until it runs)."""
    vm_name = name_option or name
    if not vm_name:
        raise click.UsageError("give the VM a name (argument or --name)")
    body: dict[str, Any] = {
        "name": vm_name,
        "cpu": cpu,
        "ram": ram,
        "os_ssd": os_ssd,
        "image": image,
    }
    if hdd:
        body["hdd"] = list(hdd)
    if network:
        body["networks"] = list(network)
    if ssh_key:
        body["ssh_keys"] = list(ssh_key)
    if user_data:
        try:
            body["user_data"] = Path(user_data).read_text()
        except UnicodeDecodeError:
            raise click.BadParameter(
                "user data must be UTF-8 text", param_hint="--user-data"
            ) from None
    client = ctx.find_object(Context).client
    record = client.post("/v1/vm", body)
    if wait:
        record = wait_for(client, record["uuid"], _running, timeout) or record
    show_vm(ctx, as_json, record)


@vm.command("list")
@json_flag
@click.pass_context
def vm_list(ctx: click.Context, as_json: bool) -> None:
    """List your VMs (the admin realm: all VMs)."""
    vms = ctx.find_object(Context).client.get("/v1/vm")
    if wants_json(ctx, as_json):
        output.emit_json(vms)
    else:
        output.table(vms, VM_COLUMNS)


@vm.command("show")
@click.argument("vm_ref", metavar="VM")
@json_flag
@click.pass_context
def vm_show(ctx: click.Context, vm_ref: str, as_json: bool) -> None:
    """Show one VM (by uuid or name): host, status, console socket, recent log."""
    show_vm(ctx, as_json, resolve_vm(ctx.find_object(Context).client, vm_ref))


def _vm_action(action: str, done: Callable[[dict[str, Any] | None], bool], help_text: str) -> None:
    @vm.command(action, help=help_text)
    @click.argument("vm_ref", metavar="VM")
    @wait_option
    @json_flag
    @click.pass_context
    def command(ctx: click.Context, vm_ref: str, wait: bool, timeout: float, as_json: bool) -> None:
        client = ctx.find_object(Context).client
        uuid = resolve_vm(client, vm_ref)["uuid"]
        if action == "delete":
            record = client.delete(f"/v1/vm/{uuid}")
        else:
            record = client.post(f"/v1/vm/{uuid}/{action}")
        if wait:
            record = wait_for(client, uuid, done, timeout) or {**record, "status": "DELETED"}
        show_vm(ctx, as_json, record)


@vm.command("console")
@click.argument("vm_ref", metavar="VM")
@click.pass_context
def vm_console(ctx: click.Context, vm_ref: str) -> None:
    """Attach to a VM's serial console (on the VM's host; Ctrl-] leaves)."""
    record = resolve_vm(ctx.find_object(Context).client, vm_ref)
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


@vm.command("migrate")
@click.argument("vm_ref", metavar="VM")
@click.option("--host", "target", help="target host (default: any that fits)")
@wait_option
@json_flag
@click.pass_context
def vm_migrate(
    ctx: click.Context, vm_ref: str, target: str | None, wait: bool, timeout: float, as_json: bool
) -> None:
    """Move a VM to another host (stopped there, started here; needs shared storage)."""
    client = ctx.find_object(Context).client
    record = resolve_vm(client, vm_ref)
    source = record["host"]
    record = client.post(f"/v1/vm/{record['uuid']}/migrate", {"host": target} if target else {})
    if wait:

        def moved(vm: dict[str, Any] | None) -> bool:
            return (
                vm is not None
                and vm["host"] not in (None, source)
                and vm["status"] in ("RUNNING", "STOPPED")
            )

        record = wait_for(client, record["uuid"], moved, timeout) or record
    show_vm(ctx, as_json, record)


_vm_action("start", _running, "Start a VM.")
_vm_action("stop", _stopped, "Stop a VM (ACPI power-off, forced after a timeout).")
_vm_action("reboot", _running, "Reboot a running VM.")
_vm_action("delete", _gone, "Delete a VM and its disks.")

# -- network -------------------------------------------------------------------------------

NETWORK_COLUMNS: list[output.Column] = [
    ("name", lambda n: n["name"]),
    ("owner", lambda n: n["owner"]),
    ("prefix", lambda n: n["prefix"]),
    ("vni", lambda n: n["vni"]),
    ("mtu", lambda n: n["mtu"]),
    ("status", lambda n: n["status"]),
]


@cli.group()
def network() -> None:
    """IPv6 networks (a VXLAN and a /64 each)."""


def _emit(ctx: click.Context, as_json: bool, data: Any, columns: list[output.Column]) -> None:
    if wants_json(ctx, as_json):
        output.emit_json(data)
    else:
        output.table(data if isinstance(data, list) else [data], columns)


@network.command("create")
@click.argument("name")
@json_flag
@click.pass_context
def network_create(ctx: click.Context, name: str, as_json: bool) -> None:
    """Create a network."""
    _emit(
        ctx,
        as_json,
        ctx.find_object(Context).client.post("/v1/network", {"name": name}),
        NETWORK_COLUMNS,
    )


@network.command("list")
@json_flag
@click.pass_context
def network_list(ctx: click.Context, as_json: bool) -> None:
    """List your networks."""
    _emit(ctx, as_json, ctx.find_object(Context).client.get("/v1/network"), NETWORK_COLUMNS)


@network.command("show")
@click.argument("name")
@json_flag
@click.pass_context
def network_show(ctx: click.Context, name: str, as_json: bool) -> None:
    """Show a network and the VMs on it."""
    client = ctx.find_object(Context).client
    record = client.get(f"/v1/network/{name}")
    if wants_json(ctx, as_json):
        output.emit_json(record)
        return
    output.table([record], NETWORK_COLUMNS)
    members = [
        (vm, nic) for vm in client.get("/v1/vm") for nic in vm["networks"] if nic["network"] == name
    ]
    if members:
        click.echo()
        output.table(
            [
                {"vm": vm["name"], "uuid": vm["uuid"], "mac": nic["mac"], "ipv6": nic["ipv6"]}
                for vm, nic in members
            ],
            [(c, lambda r, c=c: r[c]) for c in ("vm", "uuid", "mac", "ipv6")],
        )


@network.command("delete")
@click.argument("name")
@click.pass_context
def network_delete(ctx: click.Context, name: str) -> None:
    """Delete a network (refused while a VM is attached)."""
    ctx.find_object(Context).client.delete(f"/v1/network/{name}")
    click.echo(f"deleted network {name}")


@network.command("attach")
@click.argument("vm_ref", metavar="VM")
@click.argument("name")
@json_flag
@click.pass_context
def network_attach(ctx: click.Context, vm_ref: str, name: str, as_json: bool) -> None:
    """Attach a network to a VM (hot, also while it runs)."""
    client = ctx.find_object(Context).client
    uuid = resolve_vm(client, vm_ref)["uuid"]
    show_vm(ctx, as_json, client.post(f"/v1/vm/{uuid}/networks", {"network": name}))


@network.command("detach")
@click.argument("vm_ref", metavar="VM")
@click.argument("name")
@json_flag
@click.pass_context
def network_detach(ctx: click.Context, vm_ref: str, name: str, as_json: bool) -> None:
    """Detach a network from a VM (hot)."""
    client = ctx.find_object(Context).client
    uuid = resolve_vm(client, vm_ref)["uuid"]
    show_vm(ctx, as_json, client.delete(f"/v1/vm/{uuid}/networks/{name}"))


# -- image ---------------------------------------------------------------------------------

IMAGE_COLUMNS: list[output.Column] = [
    ("uuid", lambda i: i["uuid"]),
    ("name", lambda i: i["name"]),
    ("owner", lambda i: i["owner"]),
    ("public", lambda i: "yes" if i["public"] else "no"),
    ("size", lambda i: output.size(i["size"])),
    ("status", lambda i: i["status"]),
]


@cli.group()
def image() -> None:
    """Images VMs boot from."""


@image.command("create")
@click.argument("name")
@click.option(
    "--file", "file_path", required=True, help="absolute path of a qcow2 file on the image host"
)
@json_flag
@click.pass_context
def image_create(ctx: click.Context, name: str, file_path: str, as_json: bool) -> None:
    """Register a qcow2 file already on the image host (admin)."""
    click.echo(f"checking and importing {file_path} ...", err=True)
    record = ctx.find_object(Context).client.post("/v1/image", {"name": name, "file": file_path})
    if wants_json(ctx, as_json):
        output.emit_json(record)
    else:
        output.table([record], IMAGE_COLUMNS)


@image.command("list")
@json_flag
@click.pass_context
def image_list(ctx: click.Context, as_json: bool) -> None:
    """List the images you can use."""
    images = ctx.find_object(Context).client.get("/v1/image")
    if wants_json(ctx, as_json):
        output.emit_json(images)
    else:
        output.table(images, IMAGE_COLUMNS)


@image.command("delete")
@click.argument("image_ref", metavar="IMAGE")
@json_flag
@click.pass_context
def image_delete(ctx: click.Context, image_ref: str, as_json: bool) -> None:
    """Delete an image no VM uses (by uuid or name)."""
    client = ctx.find_object(Context).client
    matches = [i for i in client.get("/v1/image") if image_ref in (i["uuid"], i["name"])]
    if not matches:
        raise CliError(f"unknown image {image_ref!r}")
    if len(matches) > 1:
        raise CliError(f"{len(matches)} images are named {image_ref!r}: use the uuid")
    record = client.delete(f"/v1/image/{matches[0]['uuid']}")
    if wants_json(ctx, as_json):
        output.emit_json(record)
    else:
        click.echo(f"deleted image {record['name']} ({record['uuid']})")


# -- host, user ----------------------------------------------------------------------------

HOST_COLUMNS: list[output.Column] = [
    ("hostname", lambda h: h["hostname"]),
    ("status", lambda h: h["status"] + (" (maintenance)" if h.get("maintenance") else "")),
    ("vms", lambda h: h["allocated"]["vms"]),
    ("cpu", lambda h: f"{h['allocated']['cpu']}/{h['capacity']['cpu']}"),
    ("ram", lambda h: f"{output.size(h['allocated']['ram'])}/{output.size(h['capacity']['ram'])}"),
    (
        "disk",
        lambda h: f"{output.size(h['allocated']['disk'])}/{output.size(h['capacity']['disk'])}",
    ),
]


@cli.group()
def host() -> None:
    """VM hosts (admin)."""


@host.command("list")
@json_flag
@click.pass_context
def host_list(ctx: click.Context, as_json: bool) -> None:
    """List hosts: status, allocated/capacity."""
    hosts = ctx.find_object(Context).client.get("/v1/host")
    if wants_json(ctx, as_json):
        output.emit_json(hosts)
    else:
        output.table(hosts, HOST_COLUMNS)


def _host_maintenance(action: str, help_text: str) -> None:
    @host.command(action, help=help_text)
    @click.argument("name")
    @json_flag
    @click.pass_context
    def command(ctx: click.Context, name: str, as_json: bool) -> None:
        record = ctx.find_object(Context).client.post(f"/v1/host/{name}/{action}")
        if wants_json(ctx, as_json):
            output.emit_json(record)
        else:
            state = "in maintenance" if record.get("maintenance") else "taking VMs"
            click.echo(f"host {name}: {state}")


_host_maintenance("drain", "Maintenance: no new VMs, and its VMs move to other hosts.")
_host_maintenance("enable", "End maintenance: the host takes VMs again.")


@cli.group()
def user() -> None:
    """Users (admin)."""


@user.command("create")
@click.argument("name")
@click.option("--realm", required=True, help="the user's realm")
@json_flag
@click.pass_context
def user_create(ctx: click.Context, name: str, realm: str, as_json: bool) -> None:
    """Create a user; prints its seed once, as a CLI config."""
    context = ctx.find_object(Context)
    account = context.client.post("/v1/user", {"name": name, "realm": realm})
    if wants_json(ctx, as_json):
        output.emit_json(account)
        return
    click.echo(f"# CLI config for {name}; the seed is shown only now")
    click.echo(f"api = {context.client.settings.api}")
    click.echo(f"name = {account['name']}\nrealm = {account['realm']}\nseed = {account['seed']}")


SSH_KEY_COLUMNS: list[output.Column] = [
    ("name", lambda k: k["name"]),
    ("source", lambda k: k["source"] + (" (cached)" if k.get("cached") else "")),
    ("fingerprint", lambda k: k["fingerprint"]),
    ("comment", lambda k: k["key"].split(None, 2)[2] if len(k["key"].split(None, 2)) > 2 else ""),
]


@cli.group("ssh-key")
def ssh_key() -> None:
    """Your ssh public keys, handed to your VMs by the metadata service."""


@ssh_key.command("add")
@click.argument("name")
@click.argument("key_file", type=click.File("r"), default="-", metavar="[FILE]")
@json_flag
@click.pass_context
def ssh_key_add(ctx: click.Context, name: str, key_file: Any, as_json: bool) -> None:
    """Store the public key in FILE (e.g. ~/.ssh/id_ed25519.pub; default: stdin) as NAME."""
    try:
        key = key_file.read(64 * 1024)
    except UnicodeDecodeError:
        raise click.BadParameter("not a text file", param_hint="FILE") from None
    record = ctx.find_object(Context).client.post("/v1/user/ssh-key", {"name": name, "key": key})
    _emit(ctx, as_json, record, SSH_KEY_COLUMNS)


@ssh_key.command("list")
@json_flag
@click.pass_context
def ssh_key_list(ctx: click.Context, as_json: bool) -> None:
    """List your keys: stored ones and those of your LDAP entry."""
    keys = ctx.find_object(Context).client.get("/v1/user/ssh-key")
    _emit(ctx, as_json, keys, SSH_KEY_COLUMNS)
    cached = [k for k in keys if k.get("cached")]
    if cached and not wants_json(ctx, as_json):
        click.echo(
            f"note: LDAP is unreachable; its keys as read at {cached[0]['cached_at']}", err=True
        )


@ssh_key.command("delete")
@click.argument("name")
@click.pass_context
def ssh_key_delete(ctx: click.Context, name: str) -> None:
    """Delete a stored key (VMs created before keep it)."""
    ctx.find_object(Context).client.delete(f"/v1/user/ssh-key/{name}")
    click.echo(f"deleted ssh key {name}")


def main() -> None:
    cli(prog_name="ucloud-cli")


if __name__ == "__main__":
    main()
