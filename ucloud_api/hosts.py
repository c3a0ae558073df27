"""/v1/host (admin): every host with its capacity, what is allocated on it, usage and status."""

from collections import defaultdict
from typing import Any, TypedDict

from flask import Blueprint, jsonify

from common import model
from common.errors import Conflict, NotFound
from common.records import VM, Host
from common.store import keys
from ucloud_api import paging
from ucloud_api.context import require_admin, services

blueprint = Blueprint("hosts", __name__)


class Allocated(TypedDict):
    """What the VMs assigned to a host take of it (sizes in bytes)."""

    cpu: int
    ram: int
    disk: int
    vms: int


class HostView(Host, total=False):
    """A host as GET /v1/host shows it: the record, what is allocated on it, and whether its
    liveness key exists."""

    allocated: Allocated
    alive: bool


@blueprint.get("/v1/host")
def list_hosts() -> Any:
    require_admin()
    store = services().store
    allocated: dict[str, Allocated] = defaultdict(lambda: {"cpu": 0, "ram": 0, "disk": 0, "vms": 0})
    for entry in store.list(keys.VM).entries:
        vm: VM = entry.value
        if assigned := vm.get("host"):
            used = allocated[assigned]
            used["cpu"] += vm["specs"]["cpu"]
            used["ram"] += vm["specs"]["ram"]
            used["disk"] += model.vm_disk_bytes(vm)
            used["vms"] += 1
    alive = {keys.last_part(e.key) for e in store.list(keys.ALIVE).entries}
    hosts: list[HostView] = []
    for entry in store.list(keys.HOST).entries:
        host: HostView = entry.value
        name = host["hostname"]
        host["allocated"] = allocated[name]
        host["alive"] = name in alive
        hosts.append(host)
    shown, token = paging.memory_page(hosts, lambda host: host["hostname"])
    return paging.respond(shown, token)


def _set_maintenance(name: str, on: bool) -> Any:
    require_admin()
    svc = services()
    if on and not svc.config.shared_storage:
        raise Conflict("draining moves VMs to other hosts, which needs shared_storage")

    def mutate(host: Host) -> Host | None:
        if bool(host.get("maintenance")) == on:
            return None
        host["maintenance"] = on
        return host

    entry = svc.store.update(keys.host(name), mutate) if "/" not in name else None
    if entry is None:
        raise NotFound(f"unknown host {name!r}")
    return jsonify(entry.value), 202


@blueprint.post("/v1/host/<name>/drain")
def drain(name: str) -> Any:
    """Maintenance: no new VMs; the host's VMs are stopped and started elsewhere."""
    return _set_maintenance(name, True)


@blueprint.post("/v1/host/<name>/enable")
def enable(name: str) -> Any:
    """Back from maintenance: the host takes VMs again."""
    return _set_maintenance(name, False)
