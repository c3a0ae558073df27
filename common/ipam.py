"""Address management: VNIs, /64 prefixes and MACs, claimed in etcd with create-if-absent keys so
two creators can never get the same one; a VM's IPv6 address follows from its MAC (EUI-64), so
the API knows it before the VM boots.
Keys (common/store/keys.py): the network at keys.network(owner, name) {uuid, name, owner, vni,
prefix, mtu, status}; its claims keys.vni(vni) and keys.net_prefix(index); a NIC's MAC keys.mac.
"""

import ipaddress
import secrets
from collections.abc import Callable, Iterable, Iterator
from typing import TypedDict

from common.errors import Conflict
from common.records import VM, Network, NetworkRequest, Nic
from common.store import Delete, Put, Store, Transaction, absent, keys

ACTIVE = "ACTIVE"  # model.DELETING while ucloud_api/deletion.py looks for users
MAX_NICS = 8  # hot-pluggable slots per VM (qemu pcie-root-ports)


def _lowest_free(taken: set[int], first: int, last: int) -> int | None:
    for candidate in range(first, last + 1):
        if candidate not in taken:
            return candidate
    return None


PROBE_BATCH = 64  # candidates read per round trip while looking for a free number


def _next_free(txn: Transaction, cursor_key: str, claims: str, first: int, last: int) -> int | None:
    """The first free number at or after the cursor (wrapping around from last to first), read
    in batches; the cursor is read in txn and moved past the number found, so the next search
    starts there: O(1) amortised while the numbers after the cursor are free, and a freed number
    is reused when the cursor comes round again. Two claimers both read the cursor, so one
    commit loses and runs again. None when every number is taken (one count tells)."""
    size = last - first + 1
    if txn.store.count(claims) >= size:
        return None
    cursor = txn.get(cursor_key)
    start = cursor.value["next"] if cursor else first
    if not first <= start <= last:
        start = first
    for offset in range(0, size, PROBE_BATCH):
        candidates = [
            first + (start - first + step) % size
            for step in range(offset, min(offset + PROBE_BATCH, size))
        ]
        found = txn.store.get_many([f"{claims}{number}" for number in candidates])
        for number, claim in zip(candidates, found, strict=True):
            if claim is None:
                txn.require(absent(f"{claims}{number}"))
                txn.put(cursor_key, {"next": first + (number - first + 1) % size})
                return number
    return None


def claim_network(
    store: Store,
    owner: str,
    name: str,
    vnis: tuple[int, int],
    pool: ipaddress.IPv6Network,
    mtu: int,
    record: NetworkRequest,
    charge: Callable[[Transaction], None] = lambda txn: None,
) -> Network:
    """Create the network with the next free VNI and /64 (common/store/keys.VNI_NEXT and
    PREFIX_NEXT are the cursors), atomically; `charge` runs in the same transaction (the
    owner's quota). Conflict when the name is taken or a pool is exhausted."""
    key = keys.network(owner, name)
    prefixes = list(pool.subnets(new_prefix=64)) if pool.prefixlen < 64 else [pool]

    def claim(txn: Transaction) -> Network:
        if txn.get(key) is not None:
            raise Conflict(f"you have a network named {name!r} already")
        charge(txn)
        vni = _next_free(txn, keys.VNI_NEXT, keys.VNI, *vnis)
        if vni is None:
            raise Conflict("no free VXLAN id left (network_vnis exhausted)")
        index = _next_free(txn, keys.PREFIX_NEXT, keys.NET_PREFIX, 0, len(prefixes) - 1)
        if index is None:
            raise Conflict("no free /64 left (network_prefixes exhausted)")
        network: Network = {
            **record,
            "vni": vni,
            "prefix": str(prefixes[index]),
            "mtu": mtu,
            "status": ACTIVE,
        }
        claimed = {"network": f"{owner}/{name}"}
        txn.put(key, network)
        txn.put(keys.vni(vni), claimed)
        txn.put(keys.net_prefix(index), claimed)
        return network

    return store.transact(claim).value


def release_network_ops(network: Network, pool: ipaddress.IPv6Network) -> list[Delete]:
    prefix = ipaddress.IPv6Network(network["prefix"])
    index = (int(prefix.network_address) - int(pool.network_address)) >> 64
    return [
        Delete(keys.network(network["owner"], network["name"])),
        Delete(keys.vni(network["vni"])),
        Delete(keys.net_prefix(index)),
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


def new_nic(network: Network, taken_slots: Iterable[int]) -> Nic:
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


def nic_addresses(nic: Nic) -> list[str]:
    """The addresses a NIC uses on its network: link-local and SLAAC, both EUI-64 of its MAC."""
    return [eui64("fe80::/64", nic["mac"]), eui64(nic["prefix"], nic["mac"])]


def host_nics(hostname: str, vms: Iterable[VM]) -> Iterator[tuple[VM, Nic]]:
    """(VM, NIC) for every NIC of the VMs assigned to this host, not deleted."""
    for vm in vms:
        if vm.get("host") != hostname or vm["desired"] == "deleted":
            continue
        for nic in vm.get("networks", []):
            yield vm, nic


class Carried(TypedDict):
    """A network as a host carries it, from the NIC records of its VMs."""

    vni: int
    mtu: int
    prefix: str


def host_networks(hostname: str, vms: Iterable[VM]) -> dict[int, Carried]:
    """The networks a host carries (by VNI): those of the VMs assigned to it, not deleted."""
    return {
        nic["vni"]: {"vni": nic["vni"], "mtu": nic["mtu"], "prefix": nic["prefix"]}
        for _, nic in host_nics(hostname, vms)
    }


def mac_claims(vm: VM) -> list[Put]:
    return [Put(keys.mac(nic["mac"]), {"vm": vm["uuid"]}) for nic in vm.get("networks", [])]


def mac_releases(vm: VM) -> list[Delete]:
    return [Delete(keys.mac(nic["mac"])) for nic in vm.get("networks", [])]
