"""`ucloud-cli ssh-key`: add, list and delete your ssh public keys."""

from typing import Any

import click

from ucloud_cli import output
from ucloud_cli.commands import Session, add_delete, add_list, pass_session_json

COLUMNS: list[output.Column] = [
    *output.fields("name"),
    ("source", lambda k: k["source"] + (" (cached)" if k.get("cached") else "")),
    *output.fields("fingerprint"),
    ("comment", lambda k: k["key"].split(None, 2)[2] if len(k["key"].split(None, 2)) > 2 else ""),
]

group = click.Group(
    "ssh-key", help="Your ssh public keys, handed to your VMs by the metadata service."
)


@group.command("add")
@click.argument("name")
@click.argument("key_file", type=click.File("r"), default="-", metavar="[FILE]")
@pass_session_json
def ssh_key_add(session: Session, name: str, key_file: Any) -> None:
    """Store the public key in FILE (e.g. ~/.ssh/id_ed25519.pub; default: stdin) as NAME."""
    try:
        key = key_file.read(64 * 1024)
    except UnicodeDecodeError:
        raise click.BadParameter("not a text file", param_hint="FILE") from None
    record = session.client.post("/v1/user/ssh-key", {"name": name, "key": key})
    output.emit(session.json, record, COLUMNS)


def _print_keys(keys: list[dict[str, Any]]) -> None:
    """The table, and a note on stderr when LDAP's keys are a cached copy (LDAP unreachable)."""
    output.table(keys, COLUMNS)
    cached = [k for k in keys if k.get("cached")]
    if cached:
        click.echo(
            f"note: LDAP is unreachable; its keys as read at {cached[0]['cached_at']}", err=True
        )


add_list(
    group,
    "/v1/user/ssh-key",
    _print_keys,
    "List your keys: stored ones and those of your LDAP entry.",
)


add_delete(
    group, "/v1/user/ssh-key", "ssh key", "Delete a stored key (VMs created before keep it)."
)
