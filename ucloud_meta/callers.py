"""Who is calling: a VM NIC, identified only by facts of the host's own kernel.

A request is matched by (bridge it arrived on, source address) against the NICs of this host's
VMs: their link-local and SLAAC addresses follow from their MACs. A VM can put another VM's
address on its interface, so the kernel is asked as well:
- the neighbour entry of the source address on the bridge must carry the NIC's MAC, and
- the bridge must have learnt that MAC on the NIC's own tap (a VM also faking the MAC moves it
  to its own tap).
Anything else is an unknown caller. Nothing the VM says in the request is trusted.
The kernel's answers come from the tenant links driver (common/tenantlinks.py); this module
decides, and must not ask the platform itself.
"""

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from common import ipam, netnames, records
from common.tenantlinks import TenantLinks


@dataclass(frozen=True)
class Nic:
    vm: str  # uuid
    mac: str


def index(hostname: str, vms: Iterable[records.VM]) -> dict[tuple[int, str], Nic]:
    """(vni, address) -> NIC of the VMs assigned to this host."""
    return {
        (nic["vni"], address): Nic(vm["uuid"], nic["mac"])
        for vm, nic in ipam.host_nics(hostname, vms)
        for address in ipam.nic_addresses(nic)
    }


def normal(address: str) -> str:
    """Compressed form without a zone (`fe80::1%ubr100` -> `fe80::1`)."""
    return str(ipaddress.IPv6Address(address.split("%", 1)[0]))


def genuine(links: TenantLinks, bridge: str, address: str, nic: Nic) -> bool:
    """Whether the source address and MAC really sit behind the NIC's tap, as the kernel saw."""
    tap = netnames.tap(nic.mac)
    return links.neighbour_macs(bridge, address) == {nic.mac} and nic.mac in links.learnt_macs(tap)
