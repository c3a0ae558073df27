"""The network driver interface of ucloud-net: tenant networks' bridges, VXLANs, taps and peers
(Linux now; FreeBSD's ifconfig later). Owns the contract only; drivers are in ucloud_net/drivers/
(chosen by `network_driver`). The host's own addresses and sockets on those bridges are another
concern (common/tenantlinks.py). Each method is idempotent: doing it twice leaves the same result
as once."""

from abc import ABC, abstractmethod

from ucloud_net.plan import Links


class NetworkDriver(ABC):
    @abstractmethod
    def observe(self) -> Links:
        """The tenant-network links this host has now (only ucloud's own, by name)."""

    @abstractmethod
    def add_network(self, vni: int, mtu: int) -> None:
        """The network's bridge (gateway MAC, no automatic IPv6 address) and its VXLAN on the
        underlay, plugged in and up."""

    @abstractmethod
    def del_network(self, vni: int) -> None:
        """Remove the VXLAN and the bridge."""

    @abstractmethod
    def add_tap(self, name: str, vni: int, mtu: int) -> None:
        """A persistent tap for a VM NIC, in the network's bridge, up."""

    @abstractmethod
    def del_tap(self, name: str) -> None: ...

    @abstractmethod
    def add_peer(self, vni: int, address: str) -> None:
        """Head-end replication: flood the network's broadcast/unknown traffic to that host."""

    @abstractmethod
    def del_peer(self, vni: int, address: str) -> None: ...

    @abstractmethod
    def close(self) -> None:
        """Release what the driver holds (its kernel sockets)."""
