"""The tenant links interface: the host's own presence on the bridges of tenant networks, for
ucloud-ipam (the router: fe80::1, router advertisements) and ucloud-meta (fe80::a9fe:a9fe, and
who is calling). Owns the contract only; implementations live in common/drivers/ (chosen by
`network_driver`, like ucloud-net's driver of the same platform). Making the bridges, VXLANs and
taps is ucloud-net's concern (ucloud_net/driver.py), not this one's. Must not import a platform
module.

Every host's bridge of a network carries the same link-local addresses on purpose, and the
bridges of different hosts never see each other's frames from them: they are added without
duplicate address detection.

Interface names and indexes (socket.if_nametoindex) and sockets bound with a scope id are the
standard IPv6 sockets API (RFC 3493), so callers use them directly; the rest is here.
"""

import socket
from abc import ABC, abstractmethod


class TenantLinks(ABC):
    @abstractmethod
    def ensure_address(self, link: str, address: str) -> int | None:
        """`address`/64 on the link, without duplicate address detection; the link's index, or
        None while the link does not exist. Idempotent."""

    @abstractmethod
    def refuse_router_adverts(self, link: str) -> None:
        """The host configures nothing from router advertisements heard on the link (a VM
        could send them)."""

    @abstractmethod
    def icmpv6_socket(self, link: str, index: int, address: str, group: str) -> socket.socket:
        """A non-blocking raw ICMPv6 socket that sends and receives on this link only: bound to
        `address` on it, a member of multicast `group`, hop limits 255 (neighbour discovery
        messages must carry 255, RFC 4861)."""

    @abstractmethod
    def neighbour_macs(self, link: str, address: str) -> set[str]:
        """The MACs of the host's valid neighbour entries for `address` on the link (none while
        the link does not exist)."""

    @abstractmethod
    def learnt_macs(self, port: str) -> set[str]:
        """The MACs the bridge learnt behind one of its ports (none while it does not exist)."""

    @abstractmethod
    def close(self) -> None:
        """Release what the driver holds (its kernel sockets)."""
