"""/v1/vm: create, list, show, start, stop, reboot, delete.

The API only writes desired state (`desired`, a reboot request) and never the observed fields
(`status`, `host`) except where no agent owns the VM yet: a VM without a host is deleted here.
Every change is a `Store.transact` body: it reads what it depends on, the commit holds only if
none of that changed, and a lost race runs it again.
"""

from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, jsonify, request

from common import ipam, model, quota
from common.auth import Caller
from common.errors import Conflict, Forbidden, InvalidInput, NotFound
from common.records import VM, Image, Network, VMData
from common.store import Reader, Store, Transaction, absent, keys
from common.store.client import Entry
from common.validation import (
    NAME_SCHEMA,
    SIZE_SCHEMA,
    Field,
    Schema,
    integer,
    list_of,
    name,
    size,
    text,
)
from ucloud_api import images, networks, paging, sshkeys
from ucloud_api.context import body, caller, services

blueprint = Blueprint("vms", __name__)

MiB, GiB, TiB = 1024**2, 1024**3, 1024**4
USER_DATA_LIMIT = 64 * 1024

CREATE = Schema(
    "VMCreate",
    [
        Field("name", name, NAME_SCHEMA, help="the VM's name (with body credentials: vm_name)"),
        Field(
            "cpu",
            integer(1, 128),
            {"type": "integer", "minimum": 1, "maximum": 128},
            help="virtual CPUs",
        ),
        Field("ram", size(64 * MiB, 4 * TiB), SIZE_SCHEMA, help="memory, at least 64 MiB"),
        Field(
            "os_ssd",
            size(1 * MiB, 64 * TiB),
            SIZE_SCHEMA,
            help="size of the OS disk, cloned from the image; at least the image's size",
        ),
        Field(
            "hdd",
            list_of(size(1 * MiB, 64 * TiB), 8, single_allowed=True),
            {"oneOf": [SIZE_SCHEMA, {"type": "array", "items": SIZE_SCHEMA, "maxItems": 8}]},
            required=False,
            help="extra empty disks: one size or a list of up to 8",
        ),
        Field("image", text(256), {"type": "string"}, help="image name or uuid"),
        Field(
            "networks",
            list_of(name, 16),
            {"type": "array", "items": NAME_SCHEMA},
            required=False,
            help="networks to attach (names of the caller's networks)",
        ),
        Field(
            "ssh_keys",
            list_of(name, 64),
            {"type": "array", "items": NAME_SCHEMA},
            required=False,
            help="names of the caller's ssh keys (default: all of them)",
        ),
        Field(
            "user_data",
            text(USER_DATA_LIMIT),
            {"type": "string", "maxLength": USER_DATA_LIMIT},
            required=False,
            help="user data served to the VM by the metadata service (64 KiB)",
        ),
    ],
)


def visible_vm(store: Reader, who: Caller, uuid: str) -> Entry:
    """The VM if it exists and the caller may act on it (404 / 403 otherwise)."""
    entry = store.get(keys.vm(uuid)) if len(uuid) <= 64 and "/" not in uuid else None
    if entry is None:
        raise NotFound(f"unknown VM {uuid!r}")
    if not who.may_access(entry.value["owner"]):
        raise Forbidden(f"VM {uuid} belongs to another user")
    return entry


@blueprint.post("/v1/vm")
def create() -> Any:
    who = caller()
    spec = CREATE.parse(body({"vm_name": "name"}))
    store = services().store
    config = services().config
    chosen = _chosen_keys(who.name, spec.get("ssh_keys"))
    spec["ssh_keys"] = [key.name for key in chosen]

    def create_vm(txn: Transaction) -> VM:
        # The image and networks must still be the ones read (not being deleted) when the VM
        # appears; its MACs are claimed in the same transaction.
        image: Image = images.resolve(txn, who, spec["image"]).value
        if spec["os_ssd"] < image["size"]:
            raise InvalidInput(
                f"os_ssd: {spec['os_ssd']} bytes is smaller than image {image['name']!r}"
                f" ({image['size']} bytes)"
            )
        nets: list[Network] = [
            networks.owned(txn, who.name, n).value for n in dict.fromkeys(spec.get("networks", []))
        ]
        vm = model.new_vm(spec, who.name, image)
        for net in nets:
            vm["networks"].append(ipam.new_nic(net, [n["slot"] for n in vm["networks"]]))
        data = _vm_data(chosen, spec.get("user_data"))
        quota.charge(txn, config, who.name, quota.vm_usage(vm, data))
        txn.require(*(absent(keys.mac(nic["mac"])) for nic in vm["networks"]))
        txn.put(keys.vm(vm["uuid"]), vm)
        txn.put(keys.vm_owner(who.name, vm["uuid"]), {})
        txn.put(keys.vm_data(vm["uuid"]), data)
        txn.write(ipam.mac_claims(vm))
        return vm

    return jsonify(store.transact(create_vm).value), 201


def _chosen_keys(owner: str, names: list[str] | None) -> list[sshkeys.UserKey]:
    """The named keys of the owner, or all of them. Unless a directory key is named, an
    unreachable LDAP directory (and no cached copy) leaves its keys out instead of failing."""
    strict = any(n.startswith(sshkeys.DIRECTORY_PREFIX) for n in names or [])
    available = sshkeys.user_keys(services(), owner, strict=strict)
    if names is None:
        return available
    by_name = {key.name: key for key in available}
    for wanted in names:
        if wanted not in by_name:
            raise NotFound(f"unknown ssh key {wanted!r}")
    return [by_name[wanted] for wanted in dict.fromkeys(names)]


def _vm_data(chosen: list[sshkeys.UserKey], user_data: str | None) -> VMData:
    """What ucloud-meta serves this VM; kept apart from the VM record so listing 10,000 VMs
    does not carry their user data."""
    return {
        "ssh_keys": [{"name": key.name, "key": key.key} for key in chosen],
        "user_data": user_data,
    }


@blueprint.get("/v1/vm")
def list_vms() -> Any:
    """Stored VM records are exactly what the API returns, so the list is assembled from the raw
    JSON bytes without decoding and re-encoding 10,000 records. One owner's VMs (a user's own,
    or ?owner= for the admin) are read through the owner index: the other owners' records are
    never read."""
    who = caller()
    store = services().store
    owner = request.args.get("owner") if who.admin else who.name
    if owner:
        if "/" in owner:
            raise InvalidInput("owner: not a user name")
        index, token = paging.store_page(store, keys.vms_of(owner))
        found = store.get_many([keys.vm(keys.last_part(e.key)) for e in index])
        # An entry whose VM is gone (released between the two reads) is left out.
        entries = [e for e in found if e is not None]
    else:
        entries, token = paging.store_page(store, keys.VM)
    raw = b"[" + b",".join(e.raw for e in entries) + b"]"
    return paging.respond(Response(raw, mimetype="application/json"), token)


def index_owners(store: Store) -> int:
    """Create the owner index entries of VMs stored before the index existed (run at API start;
    idempotent: a VM that has its entry is left alone). Each entry is written in a transaction
    that reads the VM, so a VM released meanwhile gets none. Returns how many were created."""
    indexed = {keys.last_part(e.key) for e in store.list(keys.VM_OWNER).entries}
    created = 0
    for entry in store.list(keys.VM).entries:
        uuid = keys.last_part(entry.key)
        if uuid in indexed:
            continue

        def add(txn: Transaction, uuid: str = uuid) -> bool:
            vm = txn.get(keys.vm(uuid))
            if vm is None:
                return False
            index_key = keys.vm_owner(vm.value["owner"], uuid)
            if txn.get(index_key) is not None:
                return False
            txn.put(index_key, {})
            return True

        created += bool(store.transact(add).value)
    return created


@blueprint.get("/v1/vm/<uuid>")
def show(uuid: str) -> Any:
    return jsonify(visible_vm(services().store, caller(), uuid).value)


def _change(uuid: str, mutate: Callable[[VM], VM | None]) -> Any:
    """Apply mutate(vm) -> vm (None: no change) to a visible VM, transactionally; 202 with the
    record as it is then."""
    who = caller()

    def change(txn: Transaction) -> VM:
        entry = visible_vm(txn, who, uuid)
        vm = mutate(entry.copy_value())
        if vm is None:
            return entry.value
        txn.put(entry.key, vm)
        return vm

    return jsonify(services().store.transact(change).value), 202


def _not_deleted(vm: VM) -> None:
    if vm["desired"] == model.DELETED:
        raise Conflict(f"VM {vm['uuid']} is being deleted")


@blueprint.post("/v1/vm/<uuid>/start")
def start(uuid: str) -> Any:
    def mutate(vm: VM) -> VM | None:
        _not_deleted(vm)
        if vm["desired"] == model.RUNNING:
            if vm["status"] != model.ERROR:
                return None
            # The agent gave up on it (bad image, crash loop): ask it to try once more.
            vm["retries"] = vm.get("retries", 0) + 1
            return model.add_log(vm, "start requested again after an error")
        vm["desired"] = model.RUNNING
        return model.add_log(vm, "start requested")

    return _change(uuid, mutate)


@blueprint.post("/v1/vm/<uuid>/stop")
def stop(uuid: str) -> Any:
    def mutate(vm: VM) -> VM | None:
        _not_deleted(vm)
        if vm["desired"] == model.STOPPED:
            return None
        vm["desired"] = model.STOPPED
        return model.add_log(vm, "stop requested")

    return _change(uuid, mutate)


@blueprint.post("/v1/vm/<uuid>/reboot")
def reboot(uuid: str) -> Any:
    def mutate(vm: VM) -> VM:
        _not_deleted(vm)
        if vm["desired"] != model.RUNNING or vm["status"] != model.STATUS_RUNNING:
            raise Conflict(f"VM {vm['uuid']} is not running (status {vm['status']})")
        vm["reboot_requested"] = model.now()
        return model.add_log(vm, "reboot requested")

    return _change(uuid, mutate)


MIGRATE = Schema(
    "VMMigrate",
    [
        Field(
            "host",
            name,
            NAME_SCHEMA,
            required=False,
            help="target host (default: any host that fits)",
        ),
    ],
)


@blueprint.post("/v1/vm/<uuid>/migrate")
def migrate(uuid: str) -> Any:
    """Cold migration: the VM is stopped on its host and started on another one (from the same
    disks, so this needs shared storage)."""
    svc = services()
    spec = MIGRATE.parse(body())
    current = visible_vm(svc.store, caller(), uuid).value["host"]
    if not svc.config.shared_storage:
        raise Conflict("migration needs shared storage (shared_storage is off)")
    target = spec.get("host")
    if target is not None:
        record = svc.store.get(keys.host(target))
        if record is None:
            raise NotFound(f"unknown host {target!r}")
        if record.value.get("status") != model.ALIVE or record.value.get("maintenance"):
            raise Conflict(f"host {target} does not take VMs now")
    elif not any(
        host["hostname"] != current
        and host.get("status") == model.ALIVE
        and not host.get("maintenance")
        for host in (entry.value for entry in svc.store.list(keys.HOST).entries)
    ):
        raise Conflict("no other host takes VMs now: nowhere to migrate to")

    def mutate(vm: VM) -> VM:
        _not_deleted(vm)
        source = vm["host"]
        if source is None:
            raise Conflict(f"VM {vm['uuid']} has no host yet")
        if source == target:
            raise Conflict(f"VM {vm['uuid']} is on {target} already")
        if vm.get("migrate"):
            raise Conflict(f"VM {vm['uuid']} is migrating already")
        vm["migrate"] = {"from": source, "to": target}
        return model.add_log(vm, f"migration to {target or 'another host'} requested")

    return _change(uuid, mutate)


@blueprint.delete("/v1/vm/<uuid>")
def delete(uuid: str) -> Any:
    who = caller()

    def remove(txn: Transaction) -> VM:
        vm: VM = visible_vm(txn, who, uuid).copy_value()
        if vm["host"] is None and vm["status"] == model.PENDING:
            # Never placed, no disks: released here (the commit loses against a placement).
            model.release(txn, vm)
            vm["desired"] = model.DELETED
            vm["status"] = "DELETED"
            return model.add_log(vm, "deleted")
        if vm["desired"] != model.DELETED:
            vm["desired"] = model.DELETED
            txn.put(keys.vm(uuid), model.add_log(vm, "delete requested"))
        return vm

    return jsonify(services().store.transact(remove).value), 202


@blueprint.post("/v1/vm/<uuid>/networks")
def attach(uuid: str) -> Any:
    """Attach one of the owner's networks (hot, on a running VM): a new NIC with its own MAC."""
    spec = networks.ATTACH.parse(body())

    def plug(txn: Transaction) -> VM:
        vm: VM = visible_vm(txn, caller(), uuid).copy_value()
        _not_deleted(vm)
        if any(n["network"] == spec["network"] for n in vm["networks"]):
            raise Conflict(f"VM {uuid} is attached to {spec['network']!r} already")
        net = networks.owned(txn, vm["owner"], spec["network"])
        nic = ipam.new_nic(net.value, [n["slot"] for n in vm["networks"]])
        vm["networks"].append(nic)
        model.add_log(vm, f"network {spec['network']} attached ({nic['ipv6']})")
        txn.require(absent(keys.mac(nic["mac"])))
        txn.put(keys.vm(uuid), vm)
        txn.put(keys.mac(nic["mac"]), {"vm": uuid})
        return vm

    return jsonify(services().store.transact(plug).value), 202


@blueprint.delete("/v1/vm/<uuid>/networks/<network>")
def detach(uuid: str, network: str) -> Any:
    def unplug(txn: Transaction) -> VM:
        vm: VM = visible_vm(txn, caller(), uuid).copy_value()
        _not_deleted(vm)
        nics = [n for n in vm["networks"] if n["network"] == network]
        if not nics:
            raise NotFound(f"VM {uuid} is not attached to {network!r}")
        vm["networks"] = [n for n in vm["networks"] if n["network"] != network]
        model.add_log(vm, f"network {network} detached")
        txn.put(keys.vm(uuid), vm)
        txn.delete(keys.mac(nics[0]["mac"]))
        return vm

    return jsonify(services().store.transact(unplug).value), 202
