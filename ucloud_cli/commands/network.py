"""`ucloud-cli network`: create, list, show and delete networks; attach them to VMs and detach."""

from typing import Any

import click

from ucloud_cli import output, vms
from ucloud_cli.commands import Session, add_delete, add_list, pass_session_json

COLUMNS = output.fields("name", "owner", "prefix", "vni", "mtu", "status")
MEMBER_COLUMNS = output.fields("vm", "uuid", "mac", "ipv6")

group = click.Group("network", help="IPv6 networks (a VXLAN and a /64 each).")


@group.command("create")
@click.argument("name")
@pass_session_json
def network_create(session: Session, name: str) -> None:
    """Create a network."""
    output.emit(session.json, session.client.post("/v1/network", {"name": name}), COLUMNS)


add_list(group, "/v1/network", COLUMNS, "List your networks.")


@group.command("show")
@click.argument("name")
@pass_session_json
def network_show(session: Session, name: str) -> None:
    """Show a network and the VMs on it."""

    def print_with_members(record: dict[str, Any]) -> None:
        output.table([record], COLUMNS)
        members = [
            {"vm": vm["name"], "uuid": vm["uuid"], "mac": nic["mac"], "ipv6": nic["ipv6"]}
            for vm in session.client.get("/v1/vm")
            for nic in vm["networks"]
            if nic["network"] == name
        ]
        if members:
            click.echo()
            output.table(members, MEMBER_COLUMNS)

    output.emit(session.json, session.client.get(f"/v1/network/{name}"), print_with_members)


add_delete(group, "/v1/network", "network", "Delete a network (refused while a VM is attached).")


def _vm_networks(action: str, help_text: str) -> None:
    """attach/detach: change a VM's networks (hot, also while it runs); answer with the VM."""

    @group.command(action, help=help_text)
    @click.argument("vm_ref", metavar="VM")
    @click.argument("name")
    @pass_session_json
    def command(session: Session, vm_ref: str, name: str) -> None:
        networks = f"/v1/vm/{vms.resolve(session.client, vm_ref)['uuid']}/networks"
        if action == "attach":
            record = session.client.post(networks, {"network": name})
        else:
            record = session.client.delete(f"{networks}/{name}")
        vms.show(session.json, record)


_vm_networks("attach", "Attach a network to a VM (hot, also while it runs).")
_vm_networks("detach", "Detach a network from a VM (hot).")
