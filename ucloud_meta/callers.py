"""Who is calling: a VM NIC, identified only by facts of the host's own kernel.

A request is matched by (bridge it arrived on, source address) against the NICs of this host's
VMs: their link-local and SLAAC addresses follow from their MACs. A VM can put another VM's
address on its interface, so the kernel is asked as well:
- the neighbour entry of the source address on the bridge must carry the NIC's MAC, and
- the bridge must have learnt that MAC on the NIC's own tap (a VM also faking the MAC moves it
  to its own tap).
Anything else is an unknown caller. Nothing the VM says in the request is trusted.
"""

import ipaddress
import socket
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pyroute2 import IPRoute

from common import ipam, netnames

NUD_VALID = 0x02 | 0x04 | 0x08 | 0x10 | 0x40 | 0x80  # reachable stale delay probe noarp permanent


@dataclass(frozen=True)
class Nic:
    vm: str  # uuid
    mac: str


def nic_addresses(nic: dict[str, Any]) -> list[str]:
    """The addresses a NIC uses on its network: link-local and SLAAC, both EUI-64."""
    return [ipam.eui64("fe80::/64", nic["mac"]), ipam.eui64(nic["prefix"], nic["mac"])]


def index(hostname: str, vms: Iterable[dict[str, Any]]) -> dict[tuple[int, str], Nic]:
    """(vni, address) -> NIC of the VMs assigned to this host."""
    return {
        (nic["vni"], address): Nic(vm["uuid"], nic["mac"])
        for vm, nic in ipam.host_nics(hostname, vms)
        for address in nic_addresses(nic)
    }


def normal(address: str) -> str:
    """Compressed form without a zone (`fe80::1%ubr100` -> `fe80::1`)."""
    return str(ipaddress.IPv6Address(address.split("%", 1)[0]))


class LinkCheck:
    """Asks the kernel whether a source address and MAC really sit behind the NIC's tap."""

    def __init__(self) -> None:
        self._ipr = IPRoute()
        self._lock = threading.Lock()  # one netlink socket, many request threads

    def close(self) -> None:
        self._ipr.close()

    def genuine(self, bridge: str, address: str, nic: Nic) -> bool:
        try:  # a syscall each, where pyroute2's link_lookup dumps every link
            bridge_index = socket.if_nametoindex(bridge)
            tap_index = socket.if_nametoindex(netnames.tap(nic.mac))
        except OSError:
            return False
        with self._lock:
            neighbours = self._ipr.get_neighbours(family=10, ifindex=bridge_index, dst=address)
            macs = {n.get_attr("NDA_LLADDR") for n in neighbours if n["state"] & NUD_VALID}
            if macs != {nic.mac}:
                return False
            learnt = self._ipr.fdb("dump", ifindex=tap_index)
            return any(
                entry.get_attr("NDA_LLADDR") == nic.mac and entry["ifindex"] == tap_index
                for entry in learnt
            )
