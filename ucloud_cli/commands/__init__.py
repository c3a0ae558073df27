"""One module per command group, each defining `group` for __main__ to add to the root. Here what
they share: the Session of a run, the --json flag, picking the record a name means, and the
`list` and `delete` commands."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import click

from ucloud_cli import output
from ucloud_cli.client import Client, CliError
from ucloud_cli.settings import load as load_settings


@dataclass
class Session:
    """What one run knows: the --api flag, whether to print JSON (root or command --json), and
    the API client, made on first use so that --help and usage errors never need credentials."""

    api: str | None
    json: bool
    _client: Client | None = None
    ca_file: str | None = None  # --ca-file

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = Client(load_settings(self.api, self.ca_file))
        return self._client


pass_session = click.make_pass_decorator(Session)


def _set_json(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        session = ctx.find_object(Session)
        assert session is not None, "the root group makes the Session"
        session.json = True


def pass_session_json(function: Callable[..., Any]) -> Callable[..., Any]:
    """pass_session, and --json (also accepted before the group: `ucloud-cli --json vm list`);
    either way the flag lands in Session.json, so no command takes it as a parameter."""
    return click.option(
        "--json", is_flag=True, expose_value=False, callback=_set_json, help="print JSON"
    )(pass_session(function))


def the_one(matches: list[dict[str, Any]], plural: str, name: str, missing: str) -> dict[str, Any]:
    """The one record of `matches` that `name` means; names need not be unique, so several is an
    error (the user has to give the uuid), and none is the `missing` error."""
    if not matches:
        raise CliError(missing)
    if len(matches) > 1:
        raise CliError(f"{len(matches)} {plural} are named {name!r}: use the uuid")
    return matches[0]


def add_list(group: click.Group, path: str, readable: output.Readable, help_text: str) -> None:
    """`<group> list`: GET path, printed by output.emit (readable: columns or a printer)."""

    @group.command("list", help=help_text)
    @pass_session_json
    def command(session: Session) -> None:
        output.emit(session.json, session.client.get(path), readable)


def add_delete(group: click.Group, path: str, noun: str, help_text: str) -> None:
    """`<group> delete NAME`: DELETE path/NAME, then `deleted <noun> NAME`."""

    @group.command("delete", help=help_text)
    @click.argument("name")
    @pass_session
    def command(session: Session, name: str) -> None:
        session.client.delete(f"{path}/{name}")
        click.echo(f"deleted {noun} {name}")
