"""VM records as the CLI handles them: find one by uuid or name, wait for a state, print one.
Shared by the vm commands and by network attach/detach, which answer with the VM."""

import time
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

import click

from ucloud_cli import output
from ucloud_cli.client import ApiError, Client, CliError
from ucloud_cli.commands import the_one

UUID_LENGTH = 36

Vm = dict[str, Any]
Done = Callable[[Vm | None], bool]  # None: the VM is gone

DETAILS: list[output.Column] = [
    *output.fields("uuid", "name", "owner", "status", "desired", "host"),
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
    *output.fields("created"),
]


def resolve(client: Client, reference: str) -> Vm:
    """A VM by uuid, or by name when exactly one of the caller's VMs has it."""
    if len(reference) == UUID_LENGTH:
        return client.get(f"/v1/vm/{reference}")
    matches = [v for v in client.get("/v1/vm") if v["name"] == reference]
    return the_one(matches, "VMs", reference, f"no VM named {reference!r}")


def in_status(status: str) -> Done:
    """A `done` for wait_for: the VM exists and has this status."""
    return lambda vm: vm is not None and vm["status"] == status


def wait_for(client: Client, uuid: str, done: Done, timeout: float) -> Vm | None:
    """Poll the VM until done(vm) (vm None: it is gone, the API said 404); progress on stderr."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            current = client.get(f"/v1/vm/{uuid}")
        except ApiError as error:
            if error.status != HTTPStatus.NOT_FOUND:
                raise
            current = None
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


def show(as_json: bool, record: Vm) -> None:
    """One VM: all its fields and, for people, the last ten lines of its log."""
    output.emit(as_json, record, _print)


def _print(record: Vm) -> None:
    output.details(record, DETAILS)
    if record.get("log"):
        click.echo("log:")
        for line in record["log"][-10:]:
            click.echo(f"  {line}")
