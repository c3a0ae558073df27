"""ucloud-cli <group> <command>: vm, network, image, host, user, ssh-key; and logout (docs/cli.md).
This module only wires the groups of ucloud_cli/commands/ into the root group and turns CliError
into exit 1."""

import sys

import click

from ucloud_cli.client import CliError
from ucloud_cli.commands import Session, host, image, network, session, ssh_key, user, vm


@click.group()
@click.option("--api", help="API base URL (overrides config and UCLOUD_API)")
@click.option(
    "--ca-file",
    help="PEM CA the https API's certificate is verified against (overrides config and"
    " UCLOUD_CA_FILE; default: the system's CAs)",
)
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of tables")
@click.pass_context
def cli(ctx: click.Context, api: str | None, ca_file: str | None, as_json: bool) -> None:
    """ucloud command line. Credentials: UCLOUD_CONFIG (default ~/.config/ucloud/ucloud.conf,
    keys api, name, realm, seed, ca_file) or UCLOUD_API, UCLOUD_NAME, UCLOUD_REALM, UCLOUD_SEED,
    UCLOUD_CA_FILE."""
    ctx.obj = Session(api, as_json, ca_file=ca_file)


for commands in (vm, network, image, host, user, ssh_key):
    cli.add_command(commands.group)
cli.add_command(session.logout)


def main() -> None:
    """Runs the CLI; a CliError is shown as `error: <message>` on stderr, with exit status 1."""
    try:
        cli(prog_name="ucloud-cli")
    except CliError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
