"""Address management: VNIs, /64 prefixes and MACs, claimed in etcd with create-if-absent keys so
two creators can never get the same one; a VM's IPv6 address follows from its MAC (EUI-64), so
the API knows it before the VM boots.

    /v1/network/<owner>/<name>     the network {uuid, name, owner, vni, prefix, mtu, status}
    /v1/ipam/vni/<vni>             {"network": "<owner>/<name>"}
    /v1/ipam/prefix/<index>        {"network": ...}; index-th /64 of the pool
    /v1/ipam/mac/<mac>             {"vm": uuid}
"""

import ipaddress
import secrets
from collections.abc import Iterable, Iterator
from typing import Any

from common.errors import Conflict
from common.store import Delete, Put, Store, absent

NETWORK = "/v1/network/"
VNI = "/v1/ipam/vni/"
PREFIX = "/v1/ipam/prefix/"
MAC = "/v1/ipam/mac/"
ACTIVE, DELETING = "ACTIVE", "DELETING"
MAX_NICS = 8  # hot-pluggable slots per VM (qemu pcie-root-ports)


def network_key(owner: str, name: str) -> str:
    return f"{NETWORK}{owner}/{name}"


def mac_key(mac: str) -> str:
    return MAC + mac


def _lowest_free(taken: set[int], first: int, last: int) -> int | None:
    for candidate in range(first, last + 1):
        if candidate not in taken:
            return candidate
    return None


def claim_network(
    store: Store,
    owner: str,
    name: str,
    vnis: tuple[int, int],
    pool: ipaddress.IPv6Network,
    mtu: int,
    record: dict[str, Any],
) -> dict[str, Any]:
    """Create the network with the lowest free VNI and /64, atomically. Conflict when the name is
    taken or a pool is exhausted."""
    key = network_key(owner, name)
    prefixes = list(pool.subnets(new_prefix=64)) if pool.prefixlen < 64 else [pool]
    for _attempt in range(20):
        if store.get(key) is not None:
            raise Conflict(f"you have a network named {name!r} already")
        vni = _lowest_free({int(e.key.rsplit("/", 1)[1]) for e in store.list(VNI).entries}, *vnis)
        if vni is None:
            raise Conflict("no free VXLAN id left (network_vnis exhausted)")
        index = _lowest_free(
            {int(e.key.rsplit("/", 1)[1]) for e in store.list(PREFIX).entries}, 0, len(prefixes) - 1
        )
        if index is None:
            raise Conflict("no free /64 left (network_prefixes exhausted)")
        network = {
            **record,
            "vni": vni,
            "prefix": str(prefixes[index]),
            "mtu": mtu,
            "status": ACTIVE,
        }
        claim = {"network": f"{owner}/{name}"}
        done = store.txn(
            [absent(key), absent(f"{VNI}{vni}"), absent(f"{PREFIX}{index}")],
            [Put(key, network), Put(f"{VNI}{vni}", claim), Put(f"{PREFIX}{index}", claim)],
        )
        if done.succeeded:
            return network
    raise Conflict("too many concurrent network creations; try again")


def release_network_ops(network: dict[str, Any], pool: ipaddress.IPv6Network) -> list[Delete]:
    prefix = ipaddress.IPv6Network(network["prefix"])
    index = (int(prefix.network_address) - int(pool.network_address)) >> 64
    return [
        Delete(network_key(network["owner"], network["name"])),
        Delete(f"{VNI}{network['vni']}"),
        Delete(f"{PREFIX}{index}"),
    ]


def new_mac() -> str:
    """A random locally administered unicast MAC (02:..)."""
    return "02:" + ":".join(f"{b:02x}" for b in secrets.token_bytes(5))


def eui64(prefix: str, mac: str) -> str:
    """The SLAAC address a NIC with this MAC forms in this /64 (RFC 4291 modified EUI-64)."""
    octets = [int(part, 16) for part in mac.split(":")]
    octets[0] ^= 0x02
    interface_id = bytes([*octets[:3], 0xFF, 0xFE, *octets[3:]])
    network = ipaddress.IPv6Network(prefix)
    return str(network.network_address + int.from_bytes(interface_id, "big"))


def new_nic(network: dict[str, Any], taken_slots: Iterable[int]) -> dict[str, Any]:
    slot = _lowest_free(set(taken_slots), 0, MAX_NICS - 1)
    if slot is None:
        raise Conflict(f"a VM has at most {MAX_NICS} network interfaces")
    mac = new_mac()
    return {
        "network": network["name"],
        "vni": network["vni"],
        "mac": mac,
        "ipv6": eui64(network["prefix"], mac),
        "slot": slot,
        "mtu": network["mtu"],
        "prefix": network["prefix"],
    }


def host_nics(
    hostname: str, vms: Iterable[dict[str, Any]]
) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(VM, NIC) for every NIC of the VMs assigned to this host, not deleted."""
    for vm in vms:
        if vm.get("host") != hostname or vm["desired"] == "deleted":
            continue
        for nic in vm.get("networks", []):
            yield vm, nic


def host_networks(hostname: str, vms: Iterable[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """The networks a host carries (by VNI): those of the VMs assigned to it, not deleted.
    Each as {"vni", "mtu", "prefix"}, from the VMs' NIC records."""
    return {
        nic["vni"]: {"vni": nic["vni"], "mtu": nic["mtu"], "prefix": nic["prefix"]}
        for _, nic in host_nics(hostname, vms)
    }


def mac_claims(vm: dict[str, Any]) -> list[Put]:
    return [Put(mac_key(nic["mac"]), {"vm": vm["uuid"]}) for nic in vm.get("networks", [])]


def mac_releases(vm: dict[str, Any]) -> list[Delete]:
    return [Delete(mac_key(nic["mac"])) for nic in vm.get("networks", [])]
