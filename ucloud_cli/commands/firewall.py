"""`ucloud-cli vm firewall`: a VM's ingress rules (what may reach it; docs/firewall.md)."""

from typing import Any

import click

from ucloud_cli import output, vms
from ucloud_cli.commands import Session, pass_session, pass_session_json


def _ports(rule: dict[str, Any]) -> str:
    ports = rule.get("ports")
    return "all" if not ports else str(ports[0]) if ports[0] == ports[1] else "{}-{}".format(*ports)


COLUMNS = [*output.fields("id", "protocol"), ("ports", _ports), *output.fields("source")]

group = click.Group("firewall", help="A VM's ingress rules (what may reach it).")


def _rules(session: Session, vm_ref: str) -> str:
    return f"/v1/vm/{vms.resolve(session.client, vm_ref)['uuid']}/firewall"


@group.command("list")
@click.argument("vm_ref", metavar="VM")
@pass_session_json
def firewall_list(session: Session, vm_ref: str) -> None:
    """List a VM's ingress rules (none: everything may reach it, unless the cloud denies by
    default)."""
    output.emit(session.json, session.client.get(_rules(session, vm_ref)), COLUMNS)


@group.command("add")
@click.argument("vm_ref", metavar="VM")
@click.option("--protocol", required=True, type=click.Choice(["tcp", "udp", "icmpv6", "any"]))
@click.option("--ports", help="port or range, e.g. 22 or 8000-8080 (tcp, udp; default all)")
@click.option("--source", help="IPv6 prefix the traffic may come from (default ::/0)")
@pass_session_json
def firewall_add(
    session: Session, vm_ref: str, protocol: str, ports: str | None, source: str | None
) -> None:
    """Allow traffic in to a VM; with a first rule, only what the rules allow gets in."""
    rule = {"protocol": protocol, "ports": ports, "source": source}
    body = {key: value for key, value in rule.items() if value is not None}
    output.emit(session.json, session.client.post(_rules(session, vm_ref), body), COLUMNS)


@group.command("delete")
@click.argument("vm_ref", metavar="VM")
@click.argument("rule_id", metavar="RULE")
@pass_session
def firewall_delete(session: Session, vm_ref: str, rule_id: str) -> None:
    """Remove an ingress rule (by its id, from `vm firewall list`)."""
    session.client.delete(f"{_rules(session, vm_ref)}/{rule_id}")
    click.echo(f"deleted rule {rule_id}")
