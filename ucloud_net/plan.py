"""What the host's network links should be, and the steps from what they are: pure functions,
table-tested without a kernel (tests/test_net_plan.py)."""

from collections.abc import Iterable
from dataclasses import dataclass, field

from common import ipam, model, netnames
from common.records import VM, Host


@dataclass
class Links:
    """Either side of the comparison: bridges/VXLANs by VNI (with MTU), taps by name (with their
    VNI), head-end replication peers by VNI."""

    networks: dict[int, int] = field(default_factory=dict)  # vni -> mtu
    taps: dict[str, int] = field(default_factory=dict)  # tap name -> vni
    peers: dict[int, set[str]] = field(default_factory=dict)  # vni -> underlay addresses


@dataclass(frozen=True)
class Step:
    action: str  # add_network, add_tap, add_peer, del_peer, del_tap, del_network
    vni: int
    name: str = ""  # tap name
    peer: str = ""
    mtu: int = 0


def desired(hostname: str, vms: Iterable[VM], hosts: Iterable[Host]) -> Links:
    """Networks of the VMs assigned here; peers: the other hosts with VMs on those networks."""
    placed = [
        (vm, host)
        for vm in vms
        if (host := vm.get("host")) is not None and vm["desired"] != model.DELETED
    ]
    links = Links(
        {
            vni: net["mtu"]
            for vni, net in ipam.host_networks(hostname, (vm for vm, _ in placed)).items()
        }
    )
    users: dict[int, set[str]] = {}
    for vm, host in placed:
        for nic in vm.get("networks", []):
            users.setdefault(nic["vni"], set()).add(host)
            if host == hostname:
                links.taps[netnames.tap(nic["mac"])] = nic["vni"]
    underlay = {
        h["hostname"]: address
        for h in hosts
        if h.get("status") == model.ALIVE and (address := h.get("underlay"))
    }
    for vni in links.networks:
        links.peers[vni] = {underlay[h] for h in users[vni] if h != hostname and h in underlay}
    return links


def steps(want: Links, have: Links) -> list[Step]:
    """Creations first (networks, taps, peers), then removals (peers, taps, networks), so a tap
    always has its bridge and a network goes only once nothing uses it."""
    # have.networks[vni] == 0: its bridge or VXLAN is missing (add_network is idempotent)
    out = [
        Step("add_network", vni, mtu=mtu)
        for vni, mtu in sorted(want.networks.items())
        if not have.networks.get(vni)
    ]
    out += [
        Step("add_tap", vni, name=name, mtu=want.networks[vni])
        for name, vni in sorted(want.taps.items())
        if have.taps.get(name) != vni
    ]
    for vni, peers in sorted(want.peers.items()):
        out += [Step("add_peer", vni, peer=p) for p in sorted(peers - have.peers.get(vni, set()))]
    for vni, peers in sorted(have.peers.items()):
        out += [
            Step("del_peer", vni, peer=p)
            for p in sorted(peers - want.peers.get(vni, set()))
            if vni in want.networks
        ]
    out += [
        Step("del_tap", vni, name=name)
        for name, vni in sorted(have.taps.items())
        if name not in want.taps
    ]
    out += [Step("del_network", vni) for vni in sorted(have.networks) if vni not in want.networks]
    return out
