"""Linux: bridge + VXLAN (IPv6 underlay, no learning, static FDB entries for head-end
replication) + persistent taps, through netlink (pyroute2). Host-side links get no IPv6 address
of their own (addrgenmode none): they must not speak in tenant networks (ucloud-ipam gives the
bridge its router address)."""

import contextlib
import errno
import ipaddress
import logging
import re
from pathlib import Path

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from common import netnames
from common.config import Config
from ucloud_net.driver import NetworkDriver
from ucloud_net.plan import Links

log = logging.getLogger(__name__)

VXLAN_PORT = 4789
ANY_MAC = "00:00:00:00:00:00"
_VXLAN = re.compile(r"^uvx(\d+)$")
_TAP = re.compile(r"^ut[0-9a-f]{12}$")
NO_ADDRESS = {"attrs": [("AF_INET6", {"attrs": [("IFLA_INET6_ADDR_GEN_MODE", 1)]})]}


class LinuxNetwork(NetworkDriver):
    def __init__(self, underlay_address: str, underlay_interface: str = "") -> None:
        self.ipr = IPRoute()
        self.local = str(ipaddress.IPv6Address(underlay_address))
        self.underlay = (
            self._index(underlay_interface) if underlay_interface else self._holder(self.local)
        )

    @classmethod
    def from_config(cls, config: Config) -> "LinuxNetwork":
        return cls(config.underlay_address, config.underlay_interface)

    def _index(self, name: str) -> int | None:
        found = self.ipr.link_lookup(ifname=name)
        return found[0] if found else None

    def _added(self, name: str) -> int:
        """The index of a link just added (netlink confirmed the add: it exists)."""
        index = self._index(name)
        if index is None:
            raise LookupError(f"link {name} is gone right after it was added")
        return index

    def _holder(self, address: str) -> int:
        for entry in self.ipr.get_addr(family=10):
            if entry.get_attr("IFA_ADDRESS") == address:
                return entry["index"]
        raise ValueError(f"no interface holds the underlay address {address}")

    def observe(self) -> Links:
        """One link dump and one FDB dump, whatever the number of networks (a dump per VXLAN
        made a pass over 100 networks take seconds)."""
        links = Links()
        dumped = list(self.ipr.get_links())
        names = {link["index"]: link.get_attr("IFLA_IFNAME") for link in dumped}
        vxlans = {}
        for link in dumped:
            name = link.get_attr("IFLA_IFNAME")
            if (vni := netnames.bridge_vni(name)) is not None:
                links.networks[vni] = link.get_attr("IFLA_MTU")
            elif match := _VXLAN.match(name):
                vxlans[link["index"]] = int(match.group(1))
                links.peers[int(match.group(1))] = set()
            elif _TAP.match(name):
                vni = netnames.bridge_vni(names.get(link.get_attr("IFLA_MASTER"), "") or "")
                links.taps[name] = -1 if vni is None else vni
        # A network with only one of its two links is incomplete (MTU 0): plan adds it again.
        for vni in set(vxlans.values()) ^ set(links.networks):
            links.networks[vni] = 0
        if vxlans:
            for entry in self.ipr.fdb("dump"):
                vni = vxlans.get(entry["ifindex"])
                dst = entry.get_attr("NDA_DST")
                if vni is not None and dst and entry.get_attr("NDA_LLADDR") == ANY_MAC:
                    links.peers[vni].add(dst)
        return links

    def _up_without_address(self, index: int, name: str) -> None:
        """Up, but mute at layer 3: no address of its own, no router advertisements taken
        from a guest, no forwarding (whether or not ucloud-ipam has run yet)."""
        self.ipr.link("set", index=index, IFLA_AF_SPEC=NO_ADDRESS)
        for setting in ("accept_ra", "forwarding"):
            Path(f"/proc/sys/net/ipv6/conf/{name}/{setting}").write_text("0")
        self.ipr.link("set", index=index, state="up")

    def add_network(self, vni: int, mtu: int) -> None:
        bridge = self._index(netnames.bridge(vni))
        if bridge is None:
            self.ipr.link(
                "add",
                ifname=netnames.bridge(vni),
                kind="bridge",
                address=netnames.gateway_mac(vni),
                mtu=mtu,
            )
            bridge = self._added(netnames.bridge(vni))
        self._up_without_address(bridge, netnames.bridge(vni))
        vxlan = self._index(netnames.vxlan(vni))
        if vxlan is None:
            self.ipr.link(
                "add",
                ifname=netnames.vxlan(vni),
                kind="vxlan",
                vxlan_id=vni,
                vxlan_port=VXLAN_PORT,
                vxlan_learning=0,
                vxlan_local6=self.local,
                vxlan_link=self.underlay,
                mtu=mtu,
            )
            vxlan = self._added(netnames.vxlan(vni))
        self.ipr.link("set", index=vxlan, master=bridge)
        self._up_without_address(vxlan, netnames.vxlan(vni))

    def del_network(self, vni: int) -> None:
        for name in (netnames.vxlan(vni), netnames.bridge(vni)):
            self._delete(name)

    def add_tap(self, name: str, vni: int, mtu: int) -> None:
        index = self._index(name)
        if index is None:
            self.ipr.link("add", ifname=name, kind="tuntap", mode="tap")
            index = self._added(name)
        self.ipr.link("set", index=index, master=self._index(netnames.bridge(vni)), mtu=mtu)
        self._up_without_address(index, name)

    def del_tap(self, name: str) -> None:
        self._delete(name)

    def _delete(self, name: str) -> None:
        index = self._index(name)
        if index is not None:
            with contextlib.suppress(NetlinkError):  # gone meanwhile
                self.ipr.link("del", index=index)

    def add_peer(self, vni: int, address: str) -> None:
        self._fdb("append", vni, address)

    def del_peer(self, vni: int, address: str) -> None:
        self._fdb("del", vni, address)

    def _fdb(self, command: str, vni: int, address: str) -> None:
        vxlan = self._index(netnames.vxlan(vni))
        if vxlan is None:
            return
        try:
            self.ipr.fdb(command, ifindex=vxlan, lladdr=ANY_MAC, dst=address)
        except NetlinkError as error:
            if error.code not in (errno.EEXIST, errno.ENOENT):  # already as wanted
                raise

    def close(self) -> None:
        self.ipr.close()
