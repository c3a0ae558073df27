"""`ucloud-cli logout`: revoke the cached session and remove it (docs/cli.md, "Sessions")."""

import click

from ucloud_cli.commands import Session, pass_session


@click.command("logout")
@click.option(
    "--all",
    "everywhere",
    is_flag=True,
    help="revoke every session of your identity, on every machine",
)
@pass_session
def logout(session: Session, everywhere: bool) -> None:
    """Revoke the session the CLI caches and remove it from the cache; the next command buys a
    new one with a TOTP code."""
    revoked = session.client.logout(everywhere)
    if revoked is None:
        click.echo("no session to revoke")
    else:
        click.echo(f"logged out: {revoked} session(s) revoked")
