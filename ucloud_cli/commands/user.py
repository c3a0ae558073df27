"""`ucloud-cli user` (admin): create users, printing the new user's CLI config."""

from typing import Any

import click

from ucloud_cli import output
from ucloud_cli.commands import Session, pass_session_json

group = click.Group("user", help="Users (admin).")


@group.command("create")
@click.argument("name")
@click.option("--realm", required=True, help="the user's realm")
@pass_session_json
def user_create(session: Session, name: str, realm: str) -> None:
    """Create a user; prints its seed once, as a CLI config."""

    def print_config(account: dict[str, Any]) -> None:
        """A ready config file: the seed is not shown again, so this is the one chance."""
        click.echo(f"# CLI config for {name}; the seed is shown only now")
        click.echo(f"api = {session.client.settings.api}")
        if session.client.settings.ca_file:  # the admin's path to the CA; the user's may differ
            click.echo(f"ca_file = {session.client.settings.ca_file}")
        click.echo(
            f"name = {account['name']}\nrealm = {account['realm']}\nseed = {account['seed']}"
        )

    output.emit(
        session.json, session.client.post("/v1/user", {"name": name, "realm": realm}), print_config
    )
