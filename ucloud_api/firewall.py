"""/v1/vm/<uuid>/firewall: a VM's ingress rules ("security groups"), enforced on its host by
ucloud-firewall (docs/firewall.md).

Rules live in the VM record (`firewall`: a list of {id, protocol, ports, source}), so the
firewall agent that mirrors the VMs of its host sees a change at once and no extra watch is
needed. A VM with rules receives only what they allow (plus replies to its own traffic and
essential ICMPv6); without rules it receives everything unless the operator made
`firewall_default_ingress = deny` the default.
"""

import secrets
from typing import Any

from flask import Blueprint, jsonify

from common import model
from common.errors import Conflict, InvalidInput, NotFound
from common.records import VM, FirewallRule, RuleSpec
from common.store import Transaction, keys
from common.validation import Field, Schema, choice, ipv6_prefix, port_range
from ucloud_api import paging
from ucloud_api.context import body, caller, services
from ucloud_api.vms import visible_vm

blueprint = Blueprint("firewall", __name__)

PROTOCOLS = ("tcp", "udp", "icmpv6", "any")
MAX_RULES = 64

RULE = Schema(
    "FirewallRule",
    [
        Field(
            "protocol",
            choice(*PROTOCOLS),
            {"type": "string", "enum": list(PROTOCOLS)},
            help="what the rule lets in",
        ),
        Field(
            "ports",
            port_range,
            {
                "oneOf": [
                    {"type": "integer", "minimum": 1, "maximum": 65535},
                    {"type": "string", "pattern": r"^[0-9]{1,5}(-[0-9]{1,5})?$"},
                ]
            },
            required=False,
            help="destination port or range (tcp and udp only; default: all)",
        ),
        Field(
            "source",
            ipv6_prefix,
            {"type": "string"},
            required=False,
            help="IPv6 prefix the traffic may come from (default ::/0: anywhere)",
        ),
    ],
)


def _rule(spec: dict[str, Any]) -> RuleSpec:
    if "ports" in spec and spec["protocol"] not in ("tcp", "udp"):
        raise InvalidInput(f"ports: only tcp and udp rules have ports, not {spec['protocol']}")
    return {
        "protocol": spec["protocol"],
        "ports": spec.get("ports"),
        "source": spec.get("source", "::/0"),
    }


@blueprint.get("/v1/vm/<uuid>/firewall")
def list_rules(uuid: str) -> Any:
    vm: VM = visible_vm(services().store, caller(), uuid).value
    shown, token = paging.memory_page(vm.get("firewall") or [], lambda rule: rule["id"])
    return paging.respond(shown, token)


@blueprint.post("/v1/vm/<uuid>/firewall")
def add_rule(uuid: str) -> Any:
    rule = _rule(RULE.parse(body()))
    who = caller()

    def add(txn: Transaction) -> FirewallRule:
        vm: VM = visible_vm(txn, who, uuid).copy_value()
        rules = vm.get("firewall") or []
        if any({**r, "id": None} == {**rule, "id": None} for r in rules):
            raise Conflict(f"VM {uuid} has this rule already")
        if len(rules) >= MAX_RULES:
            raise Conflict(f"VM {uuid} has {MAX_RULES} rules, the most a VM may have")
        added: FirewallRule = {**rule, "id": secrets.token_hex(4)}
        vm["firewall"] = [*rules, added]
        model.add_log(vm, f"firewall: {_describe(added)} allowed in")
        txn.put(keys.vm(uuid), vm)
        return added

    return jsonify(services().store.transact(add).value), 201


@blueprint.delete("/v1/vm/<uuid>/firewall/<rule_id>")
def delete_rule(uuid: str, rule_id: str) -> Any:
    who = caller()

    def remove(txn: Transaction) -> FirewallRule:
        vm: VM = visible_vm(txn, who, uuid).copy_value()
        rules = vm.get("firewall") or []
        gone = [r for r in rules if r["id"] == rule_id]
        if not gone:
            raise NotFound(f"VM {uuid} has no firewall rule {rule_id!r}")
        vm["firewall"] = [r for r in rules if r["id"] != rule_id]
        model.add_log(vm, f"firewall: rule {rule_id} ({_describe(gone[0])}) removed")
        txn.put(keys.vm(uuid), vm)
        return gone[0]

    return jsonify(services().store.transact(remove).value), 200


def _describe(rule: FirewallRule) -> str:
    ports = rule.get("ports")
    ports_text = f" port {ports[0]}-{ports[1]}" if ports else ""
    return f"{rule['protocol']}{ports_text} from {rule['source']}"
