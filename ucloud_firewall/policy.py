"""What this host's firewall must enforce: a pure function of the VM and host records (no I/O;
table-tested in tests/test_firewall_policy.py). Drivers turn a `HostPolicy` into nft or pf rules.

Every address in a policy comes out of `ipaddress` (never a string from a record as it was
written): a firewall must never be handed text that its parser could read as a name to resolve
or as syntax.
"""

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

from common import ipam, model, netnames
from common.records import VM, FirewallRule, Host, Nic

PROTOCOLS = ("tcp", "udp", "icmpv6", "any")
MAC = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")


@dataclass(frozen=True, order=True)
class IngressRule:
    """Traffic allowed to reach a VM NIC: protocol, destination port range (tcp/udp only) and
    source prefix."""

    protocol: str  # one of PROTOCOLS
    source: str  # IPv6 prefix, normalised ("::/0": anywhere)
    first_port: int = 0  # 0: any port (and always for icmpv6/any)
    last_port: int = 0


@dataclass(frozen=True, order=True)
class Port:
    """One VM NIC's tap: what may come from it, and (when guarded) what may reach it."""

    tap: str
    vm: str  # uuid, for the counters
    mac: str
    addresses: tuple[str, ...]  # the NIC's own link-local and SLAAC addresses
    guarded: bool  # ingress limited to `ingress` (plus replies and essential ICMPv6)
    ingress: tuple[IngressRule, ...] = ()


@dataclass(frozen=True)
class HostPolicy:
    ports: tuple[Port, ...]
    peers: tuple[str, ...]  # underlay addresses of the other hosts: VXLAN is accepted from these
    metadata_port: int  # TCP port of ucloud-meta on fe80::a9fe:a9fe
    underlay_interface: str = ""  # when set, VXLAN is accepted on this interface only


def _mac(text: str) -> str:
    if not MAC.fullmatch(text):
        raise ValueError(f"not a MAC address: {text!r}")
    return text


def _address(text: str) -> str:
    return str(ipaddress.IPv6Address(text))


def _rule(raw: FirewallRule) -> IngressRule:
    protocol = raw["protocol"]
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}")
    source = str(ipaddress.IPv6Network(raw.get("source") or "::/0", strict=False))
    ports = raw.get("ports")
    if protocol in ("tcp", "udp") and ports:
        first, last = ports
        if not 1 <= int(first) <= int(last) <= 65535:
            raise ValueError(f"bad port range {ports!r}")
        return IngressRule(protocol, source, int(first), int(last))
    return IngressRule(protocol, source)


def port_of(vm: VM, nic: Nic, default_deny: bool) -> Port:
    """The port of one NIC. Its VM's ingress rules apply to every NIC of the VM."""
    rules = tuple(sorted({_rule(rule) for rule in vm.get("firewall") or []}))
    return Port(
        tap=netnames.tap(_mac(nic["mac"])),
        vm=vm["uuid"],
        mac=nic["mac"],
        addresses=tuple(_address(a) for a in ipam.nic_addresses(nic)),
        guarded=default_deny or bool(rules),
        ingress=rules,
    )


def desired(
    hostname: str,
    vms: Iterable[VM],
    hosts: Iterable[Host],
    metadata_port: int,
    default_deny: bool = False,
    underlay_interface: str = "",
) -> HostPolicy:
    """Every NIC of the VMs assigned here has a port, running or not (its tap stays on the
    bridge while the VM is stopped); VXLAN peers are the other live hosts' underlay addresses."""
    ports = sorted(port_of(vm, nic, default_deny) for vm, nic in ipam.host_nics(hostname, vms))
    peers = sorted(
        {
            _address(underlay)
            for host in hosts
            if host.get("hostname") != hostname
            and (underlay := host.get("underlay"))
            and host.get("status") == model.ALIVE
        }
    )
    return HostPolicy(tuple(ports), tuple(peers), metadata_port, underlay_interface)
