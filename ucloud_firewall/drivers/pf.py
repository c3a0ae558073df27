"""pf (FreeBSD 14+, OpenBSD): the same policy as an anchor `ucloud`, loaded atomically with
`pfctl -a ucloud -f -` (pf swaps a whole anchor's rules in one step).

FreeBSD filters bridge members at layer 3 with `net.link.bridge.pfil_member=1` and at layer 2
with pf's `ether` rules (FreeBSD 14). ucloud-net puts its bridges in the interface group
`ucloud_bridges`, so one host rule covers every tenant bridge. pf cannot match the target of
a neighbour advertisement (nft's `foreign_na` class has no pf equivalent); docs/firewall.md
says so. render() is pure and golden-tested; no BSD machine runs it in CI.
"""

from common.config import Config
from ucloud_firewall.driver import Drops, Firewall
from ucloud_firewall.drivers import tool
from ucloud_firewall.drivers.nft import DHCPV6_SERVER_PORT, METADATA_ADDRESS, VXLAN_PORT
from ucloud_firewall.policy import HostPolicy, Port

ANCHOR = "ucloud"
BRIDGE_GROUP = "ucloud_bridges"
PF_PROTOCOL = {"tcp": "tcp", "udp": "udp", "icmpv6": "ipv6-icmp"}


def _port_rules(port: Port) -> list[str]:
    tap = port.tap
    own = ", ".join(port.addresses)
    lines = [
        f"# port {tap} of VM {port.vm}",
        f"ether pass in quick on {tap} from {port.mac}",
        f"ether block in quick on {tap}",
        f"block drop in quick on {tap} inet all",
        f"block drop in quick on {tap} inet6 proto ipv6-icmp icmp6-type {{ routeradv, redir }}",
        f"block drop in quick on {tap} inet6 proto udp from any port {DHCPV6_SERVER_PORT}",
        f"pass in quick on {tap} inet6 proto ipv6-icmp from :: icmp6-type"
        " { neighbrsol, listenrepv2 }",
        f"block drop in quick on {tap} inet6 from ! {{ {own} }}",
        f"pass in quick on {tap} inet6 keep state",
    ]
    if port.guarded:
        for rule in port.ingress:
            protocol = "" if rule.protocol == "any" else f" proto {PF_PROTOCOL[rule.protocol]}"
            ports = f" port {rule.first_port}:{rule.last_port}" if rule.first_port else ""
            lines.append(
                f"pass out quick on {tap} inet6{protocol} from {rule.source} to any{ports}"
                " keep state"
            )
        lines += [
            f"pass out quick on {tap} inet6 proto ipv6-icmp icmp6-type"
            " { unreach, toobig, timex, paramprob, echorep, neighbrsol, neighbradv }",
            f"block drop out quick on {tap} inet6 all",
        ]
    return lines


def render(policy: HostPolicy) -> str:
    """The anchor's rules for `policy` (pure)."""
    peers = ", ".join(policy.peers)
    lines = [
        f"table <ucloud_peers> const {{ {peers} }}",
        "# the host: from tenant bridges only what it serves there",
        f"pass in quick on {BRIDGE_GROUP} inet6 proto ipv6-icmp icmp6-type"
        " { routersol, neighbrsol, neighbradv }",
        f"pass in quick on {BRIDGE_GROUP} inet6 proto tcp to {METADATA_ADDRESS}"
        f" port {policy.metadata_port}",
        f"block drop in quick on {BRIDGE_GROUP} all",
        "# VXLAN only from the other hosts",
        f"block drop in quick inet proto udp to any port {VXLAN_PORT}",
        f"block drop in quick inet6 proto udp from ! <ucloud_peers> to any port {VXLAN_PORT}",
    ]
    if policy.underlay_interface:
        lines.append(
            f"block drop in quick on ! {policy.underlay_interface} proto udp to any"
            f" port {VXLAN_PORT}"
        )
    for port in policy.ports:
        lines += _port_rules(port)
    return "\n".join(lines) + "\n"


class PfFirewall(Firewall):
    def __init__(self) -> None:
        self._applied: str | None = None

    @classmethod
    def from_config(cls, config: Config) -> "PfFirewall":
        return cls()

    def apply(self, policy: HostPolicy) -> bool:
        rules = render(policy)
        if rules == self._applied:
            return False
        tool.run("pfctl", "-a", ANCHOR, "-f", "-", stdin=rules)
        self._applied = rules
        return True

    def drops(self) -> Drops:
        """pf counts per rule, not per class: reported as a whole (class "all")."""
        listing = tool.run("pfctl", "-a", ANCHOR, "-v", "-s", "rules")
        dropped = 0
        for line, counts in zip(listing.splitlines(), listing.splitlines()[1:], strict=False):
            if line.startswith("block") and "Packets:" in counts:
                dropped += int(counts.split("Packets:")[1].split()[0])
        return Drops(by_class={"all": dropped})

    def remove(self) -> None:
        tool.run("pfctl", "-a", ANCHOR, "-F", "all")
        self._applied = None
