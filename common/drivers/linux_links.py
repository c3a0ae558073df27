"""Linux tenant links: addresses and neighbour/FDB lookups through netlink (pyroute2), sysctls
in /proc/sys, raw sockets pinned to a device (SO_BINDTODEVICE). It acts and answers only: which
address goes where and who is a genuine caller is decided by ucloud-ipam and ucloud-meta."""

import socket
import struct
import threading
from pathlib import Path

from pyroute2 import IPRoute

from common.config import Config
from common.tenantlinks import TenantLinks

IFA_F_NODAD = 0x02
NUD_VALID = 0x02 | 0x04 | 0x08 | 0x10 | 0x40 | 0x80  # reachable stale delay probe noarp permanent


def _index(name: str) -> int | None:
    try:  # one syscall; pyroute2's link_lookup dumps every link
        return socket.if_nametoindex(name)
    except OSError:
        return None


class LinuxTenantLinks(TenantLinks):
    def __init__(self) -> None:
        self._ipr = IPRoute()
        self._lock = threading.Lock()  # one netlink socket; ucloud-meta asks from many threads

    @classmethod
    def from_config(cls, config: Config) -> "LinuxTenantLinks":
        return cls()

    def ensure_address(self, link: str, address: str) -> int | None:
        index = _index(link)
        if index is None:
            return None
        with self._lock:
            present = {
                a.get_attr("IFA_ADDRESS") for a in self._ipr.get_addr(index=index, family=10)
            }
            if address not in present:
                self._ipr.addr("add", index=index, address=address, prefixlen=64, flags=IFA_F_NODAD)
        return index

    def refuse_router_adverts(self, link: str) -> None:
        Path(f"/proc/sys/net/ipv6/conf/{link}/accept_ra").write_text("0")

    def icmpv6_socket(self, link: str, index: int, address: str, group: str) -> socket.socket:
        sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, link.encode())
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, 255)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, index)
        sock.setsockopt(
            socket.IPPROTO_IPV6,
            socket.IPV6_JOIN_GROUP,
            socket.inet_pton(socket.AF_INET6, group) + struct.pack("@I", index),
        )
        sock.bind((address, 0, 0, index))
        sock.setblocking(False)
        return sock

    def neighbour_macs(self, link: str, address: str) -> set[str]:
        index = _index(link)
        if index is None:
            return set()
        with self._lock:  # pyroute2 may answer with a generator: read it under the lock
            neighbours = self._ipr.get_neighbours(family=10, ifindex=index, dst=address)
            return {n.get_attr("NDA_LLADDR") for n in neighbours if n["state"] & NUD_VALID}

    def learnt_macs(self, port: str) -> set[str]:
        index = _index(port)
        if index is None:
            return set()
        with self._lock:
            learnt = self._ipr.fdb("dump", ifindex=index)
            return {e.get_attr("NDA_LLADDR") for e in learnt if e["ifindex"] == index}

    def close(self) -> None:
        self._ipr.close()
