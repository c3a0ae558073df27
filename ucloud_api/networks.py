"""/v1/network: the caller's networks (names unique per owner), and attaching them to VMs.

A network gets a VXLAN id and a /64 claimed atomically (common/ipam.py). Deleting one that a VM
uses is refused (409): it is marked DELETING first, so a VM created or attached concurrently
either sees it gone or makes the delete fail (the same pattern as images).
"""

from typing import Any

from flask import Blueprint, jsonify

from common import ipam, model, quota
from common.auth import Caller
from common.errors import Conflict, NotFound
from common.records import NetworkRequest
from common.store import Reader, keys
from common.store.client import Entry
from common.validation import NAME_SCHEMA, Field, Schema, name
from ucloud_api import paging
from ucloud_api.context import body, caller, services
from ucloud_api.deletion import delete_unless_used

blueprint = Blueprint("networks", __name__)

CREATE = Schema(
    "NetworkCreate",
    [
        Field(
            "name",
            name,
            NAME_SCHEMA,
            help="network name, unique among yours (with body credentials: network_name)",
        ),
    ],
)
ATTACH = Schema("NetworkAttach", [Field("network", name, NAME_SCHEMA, help="your network")])


def owned(store: Reader, owner: str, network: str) -> Entry:
    """The owner's network, ACTIVE, or NotFound/Conflict."""
    entry = store.get(keys.network(owner, network))
    if entry is None:
        raise NotFound(f"unknown network {network!r}")
    if entry.value["status"] != ipam.ACTIVE:
        raise Conflict(f"network {network!r} is being deleted")
    return entry


def _scope(who: Caller, owner: str | None) -> str:
    return owner if who.admin and owner else who.name


@blueprint.post("/v1/network")
def create() -> Any:
    who = caller()
    spec = CREATE.parse(body({"network_name": "name"}))
    svc = services()
    record: NetworkRequest = {
        "uuid": model.new_uuid(),
        "name": spec["name"],
        "owner": who.name,
        "created": model.now(),
    }
    network = ipam.claim_network(
        svc.store,
        who.name,
        spec["name"],
        svc.config.network_vnis,
        svc.config.network_prefixes,
        svc.config.tenant_mtu,
        record,
        lambda txn: quota.charge(txn, svc.config, who.name, {"networks": 1}),
    )
    return jsonify(network), 201


@blueprint.get("/v1/network")
def list_networks() -> Any:
    who = caller()
    prefix = keys.NETWORK if who.admin else f"{keys.NETWORK}{who.name}/"
    entries, token = paging.store_page(services().store, prefix)
    return paging.respond([e.value for e in entries], token)


@blueprint.get("/v1/network/<network>")
def show(network: str) -> Any:
    entry = services().store.get(keys.network(caller().name, network))
    if entry is None:
        raise NotFound(f"unknown network {network!r}")
    return jsonify(entry.value)


@blueprint.delete("/v1/network/<network>")
def delete(network: str) -> Any:
    who = caller()
    svc = services()
    entry = owned(svc.store, who.name, network)

    def users() -> list[str]:
        # Only the owner's VMs can use the network: read through the owner index.
        index = svc.store.list(keys.vms_of(who.name)).entries
        vms = svc.store.get_many([keys.vm(keys.last_part(e.key)) for e in index])
        return [
            e.value["uuid"]
            for e in vms
            if e is not None and any(n["network"] == network for n in e.value.get("networks", []))
        ]

    release = ipam.release_network_ops(entry.value, svc.config.network_prefixes)
    delete_unless_used(
        svc.store,
        entry,
        users,
        release,
        f"network {network!r}",
        "is attached to",
        lambda txn: quota.release(txn, who.name, {"networks": 1}),
    )
    return jsonify({**entry.value, "status": "DELETED"}), 200
