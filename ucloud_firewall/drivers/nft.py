"""nftables (Linux): the policy as two tables, replaced in one atomic `nft -f` batch.

- `bridge ucloud`: every frame a VM port (tap `ut*`) sends goes through `from_vm`; frames
  bridged to a guarded port go through `to_vm`. Per-port data live in sets keyed by the tap
  name, so a change is a handful of set elements, not new rules.
- `inet ucloud_host`: what reaches the host itself from tenant bridges (`ubr*`) and VXLAN from
  anywhere but the other hosts.

A batch declares the tables, sets and counters (a no-op where they exist, so counters keep
their values), flushes the chains and the static sets and fills them again: nft applies the
whole batch as one transaction, so no packet ever sees a half-made rule set. render() is pure
and tested as text; the rest runs `nft`. Every address comes from the policy, which took it
out of `ipaddress`: nft would resolve anything else as a host name.
"""

import ipaddress
import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass

from common.config import Config
from ucloud_firewall.driver import Drops, Firewall
from ucloud_firewall.drivers import tool
from ucloud_firewall.policy import HostPolicy, Port

log = logging.getLogger(__name__)

TAPS, BRIDGES = "ut*", "ubr*"  # common.netnames: tap(mac), bridge(vni)
VXLAN_PORT = 4789
DHCPV6_SERVER_PORT = 547
METADATA_ADDRESS = "fe80::a9fe:a9fe"
FLOW_TIMEOUT = "300s"  # how long an idle UDP flow a VM opened keeps its replies coming in
TCP_FLOW_TIMEOUT = "1d"  # a TCP connection a VM opened: recorded once, at its SYN
FLOW = "ip6 saddr . meta l4proto . th sport . ip6 daddr . th dport"  # as the VM sends it
FULL_EVERY = 60.0  # seconds between full batches while only elements change

# Drop classes: each a named counter in its table.
PORT_CLASSES = (
    "unknown_port",  # a tap the firewall has no port for: passes nothing
    "wrong_mac",
    "not_ipv6",  # IPv4, ARP, VLAN tags and anything else on IPv6-only networks
    "router_advert",  # router advertisements and redirects (behind extension headers too)
    "dhcp_server",  # DHCPv6 server replies (DHCPv4 is IPv4: dropped above)
    "wrong_source",  # an IPv6 source that is not the NIC's link-local or SLAAC address
    "foreign_na",  # a neighbour advertisement for an address that is not the NIC's
    "ingress",  # traffic to a guarded port that no ingress rule allows
)
HOST_CLASSES = ("to_host", "vxlan_foreign")

STATIC_SETS = {
    # name: declaration
    "ports": "type ifname;",
    "port_mac": "type ifname . ether_addr;",
    "port_ip6": "type ifname . ipv6_addr;",
    "nd_target": "typeof iifname . @th,64,128;",
    "guarded": "type ifname;",
    "allow_ports": "type ifname . inet_proto . inet_service . ipv6_addr; flags interval;",
    "allow_protos": "type ifname . inet_proto . ipv6_addr; flags interval;",
    "allow_any": "type ifname . ipv6_addr; flags interval;",
}
DYNAMIC_SETS = {
    "dropped": "type ifname; flags dynamic; counter; size 65536;",
    "flows": "type ipv6_addr . inet_proto . inet_service . ipv6_addr . inet_service;"
    f" flags dynamic, timeout; timeout {FLOW_TIMEOUT}; size 262144;",
}
ESSENTIAL_ICMPV6 = (
    "destination-unreachable, packet-too-big, time-exceeded, parameter-problem, echo-reply,"
    " nd-neighbor-solicit, nd-neighbor-advert, mld-listener-query, mld2-listener-report"
)


def _quote(name: str) -> str:
    if not name.replace("-", "").replace("_", "").isalnum():
        raise ValueError(f"refusing interface name {name!r}")
    return f'"{name}"'


def _drop(counter: str, port: str = "iifname") -> str:
    return f"update @dropped {{ {port} }} counter name {counter} drop"


def _port_elements(port: Port) -> dict[str, list[str]]:
    tap = _quote(port.tap)
    elements: dict[str, list[str]] = {
        "ports": [tap],
        "port_mac": [f"{tap} . {port.mac}"],
        "port_ip6": [f"{tap} . {address}" for address in port.addresses],
        "nd_target": [
            f"{tap} . {int(ipaddress.IPv6Address(address)):#034x}" for address in port.addresses
        ],
    }
    if port.guarded:
        elements["guarded"] = [tap]
    for rule in port.ingress:
        if rule.protocol == "any":
            elements.setdefault("allow_any", []).append(f"{tap} . {rule.source}")
        elif rule.first_port:
            ports = f"{rule.first_port}-{rule.last_port}"
            elements.setdefault("allow_ports", []).append(
                f"{tap} . {rule.protocol} . {ports} . {rule.source}"
            )
        else:
            protocol = "ipv6-icmp" if rule.protocol == "icmpv6" else rule.protocol
            elements.setdefault("allow_protos", []).append(f"{tap} . {protocol} . {rule.source}")
    return elements


def _port_table(policy: HostPolicy) -> list[str]:
    t = "bridge ucloud"
    lines = [f"add table {t}"]
    lines += [f"add counter {t} {name}" for name in PORT_CLASSES]
    lines += [
        f"add set {t} {name} {{ {decl} }}" for name, decl in {**STATIC_SETS, **DYNAMIC_SETS}.items()
    ]
    lines += [
        f"add chain {t} prerouting {{ type filter hook prerouting priority -200; policy accept; }}",
        f"add chain {t} from_vm",
        f"add chain {t} not_its_mac",
        f"add chain {t} from_vm_tcp",
        f"add chain {t} forward {{ type filter hook forward priority 0; policy accept; }}",
        f"add chain {t} to_vm",
    ]
    chains = ("prerouting", "from_vm", "not_its_mac", "from_vm_tcp", "forward", "to_vm")
    lines += [f"flush chain {t} {chain}" for chain in chains]
    lines += [f"flush set {t} {name}" for name in STATIC_SETS]
    rule = f"add rule {t}"
    lines += [
        f'{rule} prerouting iifname "{TAPS}" jump from_vm',
        # Who is sending: a known port with its MAC (the port is looked up only for a frame
        # that fails, to count it right), IPv6 only, its own addresses. Duplicate address
        # detection and MLD before the NIC has an address use "::".
        f"{rule} from_vm iifname . ether saddr != @port_mac jump not_its_mac",
        f"{rule} not_its_mac iifname != @ports {_drop('unknown_port')}",
        f"{rule} not_its_mac {_drop('wrong_mac')}",
        f"{rule} from_vm ether type != ip6 {_drop('not_ipv6')}",
        f"{rule} from_vm ip6 saddr :: icmpv6 type {{ nd-neighbor-solicit, mld2-listener-report }}"
        " accept",
        f"{rule} from_vm iifname . ip6 saddr != @port_ip6 {_drop('wrong_source')}",
        # TCP, the bulk of the traffic, is done here: a guarded VM's new connection is
        # remembered (once, at its SYN, for a day) so that the replies reach it.
        f"{rule} from_vm meta l4proto tcp jump from_vm_tcp",
        f"{rule} from_vm_tcp tcp flags & (syn | ack) == syn iifname @guarded"
        f" update @flows {{ {FLOW} timeout {TCP_FLOW_TIMEOUT} }}",
        f"{rule} from_vm_tcp accept",
        f"{rule} from_vm icmpv6 type {{ nd-router-advert, nd-redirect }} {_drop('router_advert')}",
        f"{rule} from_vm udp sport {DHCPV6_SERVER_PORT} {_drop('dhcp_server')}",
        # nft 1.0.6 has no "icmpv6 taddr": the target is the 16 bytes after type, code,
        # checksum and flags.
        f"{rule} from_vm icmpv6 type nd-neighbor-advert iifname . @th,64,128 != @nd_target"
        f" {_drop('foreign_na')}",
        f"{rule} from_vm iifname @guarded meta l4proto udp update @flows {{ {FLOW} }}",
        # To a guarded port: what its rules allow, replies to its own flows, essential ICMPv6.
        f"{rule} forward oifname @guarded jump to_vm",
        f"{rule} to_vm oifname . meta l4proto . th dport . ip6 saddr @allow_ports accept",
        f"{rule} to_vm oifname . meta l4proto . ip6 saddr @allow_protos accept",
        f"{rule} to_vm oifname . ip6 saddr @allow_any accept",
        f"{rule} to_vm meta l4proto {{ tcp, udp }}"
        " ip6 daddr . meta l4proto . th dport . ip6 saddr . th sport @flows accept",
        f"{rule} to_vm icmpv6 type {{ {ESSENTIAL_ICMPV6} }} accept",
        f"{rule} to_vm {_drop('ingress', 'oifname')}",
    ]
    return lines


def _elements(policy: HostPolicy) -> dict[tuple[str, str], tuple[str, ...]]:
    """(table, set) -> its elements, in policy order."""
    elements: dict[tuple[str, str], list[str]] = {}
    for port in policy.ports:
        for name, items in _port_elements(port).items():
            elements.setdefault(("bridge ucloud", name), []).extend(items)
    if policy.peers:
        elements[("inet ucloud_host", "peers")] = list(policy.peers)
    return {key: tuple(items) for key, items in elements.items()}


def _host_table(policy: HostPolicy) -> list[str]:
    t = "inet ucloud_host"
    rule = f"add rule {t}"
    lines = [f"add table {t}"]
    lines += [f"add counter {t} {name}" for name in HOST_CLASSES]
    lines += [
        f"add set {t} peers {{ type ipv6_addr; }}",
        f"add chain {t} input {{ type filter hook input priority 0; policy accept; }}",
        f"add chain {t} from_tenant",
        f"flush chain {t} input",
        f"flush chain {t} from_tenant",
        f"flush set {t} peers",
        f'{rule} input iifname "{BRIDGES}" jump from_tenant',
        f"{rule} input meta nfproto ipv4 udp dport {VXLAN_PORT} counter name vxlan_foreign drop",
        f"{rule} input udp dport {VXLAN_PORT} ip6 saddr != @peers counter name vxlan_foreign drop",
    ]
    if policy.underlay_interface:
        underlay = _quote(policy.underlay_interface)
        lines.append(
            f"{rule} input udp dport {VXLAN_PORT} iifname != {underlay}"
            " counter name vxlan_foreign drop"
        )
    lines += [
        # What the host serves on a tenant bridge: routing and neighbour discovery, metadata.
        f"{rule} from_tenant icmpv6 type"
        " { nd-router-solicit, nd-neighbor-solicit, nd-neighbor-advert } accept",
        f"{rule} from_tenant ip6 daddr {METADATA_ADDRESS} tcp dport {policy.metadata_port} accept",
        f"{rule} from_tenant counter name to_host drop",
    ]
    return lines


@dataclass(frozen=True)
class Ruleset:
    """A policy in nft terms: the skeleton (declarations, flushes, rules), which changes only
    with the layout or host-wide settings, and the set elements, which change with the ports."""

    skeleton: tuple[str, ...]
    elements: dict[tuple[str, str], tuple[str, ...]]

    @classmethod
    def of(cls, policy: HostPolicy) -> "Ruleset":
        return cls(tuple([*_port_table(policy), *_host_table(policy)]), _elements(policy))

    def batch(self) -> str:
        """Everything, from any state: the skeleton flushes, then every element is added."""
        adds = [_element_line("add", key, items) for key, items in self.elements.items()]
        return "\n".join([*self.skeleton, *adds]) + "\n"

    def changes_from(self, old: "Ruleset") -> str:
        """Only the elements that differ from `old` (same skeleton), deletions first."""
        lines = []
        for key in sorted(set(old.elements) | set(self.elements)):
            before, after = set(old.elements.get(key, ())), set(self.elements.get(key, ()))
            if before - after:
                lines.append(_element_line("delete", key, sorted(before - after)))
            if after - before:
                lines.append(_element_line("add", key, sorted(after - before)))
        return "".join(line + "\n" for line in lines)


def _element_line(verb: str, key: tuple[str, str], items: Iterable[str]) -> str:
    table, name = key
    return f"{verb} element {table} {name} {{ {', '.join(items)} }}"


def render(policy: HostPolicy) -> str:
    """The nft batch that makes the rules match `policy` from any state (pure)."""
    return Ruleset.of(policy).batch()


class NftFirewall(Firewall):
    def __init__(self, command: tuple[str, ...] = ("nft",)) -> None:
        """`command` runs nft; tests prefix it with `ip netns exec <host>`."""
        self.command = command
        self._applied: Ruleset | None = None  # what nft accepted last
        self._full_at = 0.0  # monotonic time of the last full batch

    def _nft(self, *args: str, script: str | None = None) -> str:
        return tool.run(*self.command, *args, stdin=script)

    @classmethod
    def from_config(cls, config: Config) -> "NftFirewall":
        return cls()

    def apply(self, policy: HostPolicy) -> bool:
        """A full batch at start, when the skeleton changes, and every FULL_EVERY seconds
        (which also repairs rules removed by hand); otherwise only the set elements that
        changed: a new NIC among 1,000 ports is a few element lines."""
        wanted, old = Ruleset.of(policy), self._applied
        recent = time.monotonic() - self._full_at < FULL_EVERY
        if old is None or old.skeleton != wanted.skeleton or not recent:
            self._full(wanted)
            return wanted != old
        changes = wanted.changes_from(old)
        if changes:
            try:
                self._nft("-f", "-", script=changes)
                self._applied = wanted
            except OSError as error:  # the kernel's sets are not what we think: start over
                log.warning("rule change refused (%s); applying everything", error)
                self._full(wanted)
        return bool(changes)

    def _full(self, wanted: Ruleset) -> None:
        try:
            self._nft("-f", "-", script=wanted.batch())
        except OSError as error:
            # A table of an older layout (a set declared differently) refuses the declarations:
            # replace it whole, still in one batch.
            log.warning("rule update refused (%s); replacing the tables", error)
            self._nft("-f", "-", script=_delete_tables() + wanted.batch())
        self._applied = wanted
        self._full_at = time.monotonic()

    def drops(self) -> Drops:
        drops = Drops()
        for table in ("bridge ucloud", "inet ucloud_host"):
            try:
                listing = json.loads(self._nft("-j", "list", "table", *table.split()))
            except OSError:
                continue  # not made yet
            for item in listing.get("nftables", []):
                if "counter" in item:
                    counter = item["counter"]
                    drops.by_class[counter["name"]] = counter["packets"]
                elif item.get("set", {}).get("name") == "dropped":
                    for element in item["set"].get("elem", []):
                        value = element["elem"]
                        drops.by_port[value["val"]] = value["counter"]["packets"]
        return drops

    def remove(self) -> None:
        self._nft("-f", "-", script=_delete_tables())
        self._applied = None


def _delete_tables() -> str:
    """Both tables away, in a batch that does not fail where they do not exist."""
    tables = ("bridge ucloud", "inet ucloud_host")
    return "".join(f"add table {table}\ndelete table {table}\n" for table in tables)
