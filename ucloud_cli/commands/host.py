"""`ucloud-cli host` (admin): list VM hosts, drain them for maintenance and enable them again."""

import click

from ucloud_cli import output
from ucloud_cli.commands import Session, add_list, pass_session_json

COLUMNS: list[output.Column] = [
    *output.fields("hostname"),
    ("status", lambda h: h["status"] + (" (maintenance)" if h.get("maintenance") else "")),
    ("vms", lambda h: h["allocated"]["vms"]),
    ("cpu", lambda h: f"{h['allocated']['cpu']}/{h['capacity']['cpu']}"),
    ("ram", lambda h: f"{output.size(h['allocated']['ram'])}/{output.size(h['capacity']['ram'])}"),
    (
        "disk",
        lambda h: f"{output.size(h['allocated']['disk'])}/{output.size(h['capacity']['disk'])}",
    ),
]

group = click.Group("host", help="VM hosts (admin).")

add_list(group, "/v1/host", COLUMNS, "List hosts: status, allocated/capacity.")


def _host_maintenance(action: str, help_text: str) -> None:
    @group.command(action, help=help_text)
    @click.argument("name")
    @pass_session_json
    def command(session: Session, name: str) -> None:
        record = session.client.post(f"/v1/host/{name}/{action}")
        state = "in maintenance" if record.get("maintenance") else "taking VMs"
        output.emit(session.json, record, lambda _: click.echo(f"host {name}: {state}"))


_host_maintenance("drain", "Maintenance: no new VMs, and its VMs move to other hosts.")
_host_maintenance("enable", "End maintenance: the host takes VMs again.")
