"""Router advertisements, sent by ucloud-ipam itself (RFC 4861, RFC 8106).

radvd answers a router solicitation only MinDelayBetweenRAs (at least 3 s) after its last
multicast RA, which kept a new NIC waiting ~4 s for its address. This sender answers every
solicitation at once (rate-limited per interface to one answer per 50 ms), advertises often for
a few seconds when a NIC joins a bridge, and repeats unsolicited RAs every 10 s.

Every bridge of a network has the same router identity on every host (common.netnames:
gateway MAC, fe80::1), so a VM sees one router wherever it runs, and RAs of other hosts never
reach it: a bridge drops frames that carry its own MAC as source.

`build` is pure (bytes out of an Advert); the sockets come from the tenant links driver
(common/tenantlinks.py): this module must not confine sockets to a device itself.
"""

import ipaddress
import logging
import select
import socket
import struct
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

from common import netnames
from common.tenantlinks import TenantLinks

log = logging.getLogger(__name__)

ROUTER_SOLICITATION, ROUTER_ADVERTISEMENT = 133, 134
ALL_NODES, ALL_ROUTERS = "ff02::1", "ff02::2"
UNSOLICITED_INTERVAL = 10.0
MIN_ANSWER_GAP = 0.05
# A new NIC: a guest only solicits after its link-local address passed DAD plus a random delay
# (1-2 s); RAs every 100 ms for a few seconds let it start the global address's DAD as soon as
# its link is up (measured: p50 NIC up -> address valid 2.0 s -> 1.6 s).
BURST_INTERVAL, BURST_LENGTH = 0.1, 5.0
PREFIX_VALID, PREFIX_PREFERRED = 86400, 14400
# Neighbor solicitation interval on our links (RFC 4861 default 1 s). Linux also times DAD with
# it, so a new address is usable sooner. 250 ms gave 0.2 s more, but three unanswered probes
# then fail a neighbour after 0.75 s, too short for a busy (TCG) guest.
RETRANS_TIMER_MS = 500
ROUTER_LIFETIME = 1800  # only when a default route is announced (network_dns set)
CUR_HOP_LIMIT = 64
# Option types (RFC 4861 4.6, RFC 8106 5.1) and prefix flags (L: on-link, A: autonomous).
SOURCE_LINK_LAYER_ADDRESS, PREFIX_INFORMATION, MTU_OPTION, RDNSS = 1, 3, 5, 25
ON_LINK_AND_AUTONOMOUS = 0xC0


@dataclass(frozen=True)
class Advert:
    """What one network's RAs say."""

    vni: int
    prefix: str
    mtu: int
    dns: tuple[str, ...] = ()

    @property
    def interface(self) -> str:
        return netnames.bridge(self.vni)


def build(advert: Advert) -> bytes:
    """The ICMPv6 RA message; the kernel fills in the checksum of raw ICMPv6 sockets."""
    lifetime = ROUTER_LIFETIME if advert.dns else 0  # no default route without an upstream
    message = struct.pack(
        "!BBHBBHII", ROUTER_ADVERTISEMENT, 0, 0, CUR_HOP_LIMIT, 0, lifetime, 0, RETRANS_TIMER_MS
    )
    mac = bytes(int(part, 16) for part in netnames.gateway_mac(advert.vni).split(":"))
    # Option lengths count 8-byte units.
    message += struct.pack("!BB", SOURCE_LINK_LAYER_ADDRESS, 1) + mac
    message += struct.pack("!BBHI", MTU_OPTION, 1, 0, advert.mtu)
    prefix = ipaddress.IPv6Network(advert.prefix)
    message += (
        struct.pack(
            "!BBBBIII",
            PREFIX_INFORMATION,
            4,
            prefix.prefixlen,
            ON_LINK_AND_AUTONOMOUS,
            PREFIX_VALID,
            PREFIX_PREFERRED,
            0,
        )
        + prefix.network_address.packed
    )
    if advert.dns:
        servers = b"".join(ipaddress.IPv6Address(a).packed for a in advert.dns)
        message += struct.pack("!BBHI", RDNSS, 1 + 2 * len(advert.dns), 0, ROUTER_LIFETIME)
        message += servers
    return message


class Sender:
    """One raw ICMPv6 socket per bridge, served by one thread."""

    def __init__(self, links: TenantLinks) -> None:
        self._links = links
        # interface -> (what it says, socket bound to it, the message, interface index)
        self._adverts: dict[str, tuple[Advert, socket.socket, bytes, int]] = {}
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._bursts: dict[str, float] = {}  # interface -> until (monotonic)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ra", daemon=True)
        self._thread.start()

    def serve(self, adverts: Iterable[Advert]) -> None:
        """Advertise exactly these (interfaces must exist and carry fe80::1)."""
        wanted = {a.interface: a for a in adverts}
        with self._lock:
            for name in set(self._adverts) - set(wanted):
                self._adverts.pop(name)[1].close()
            for name, advert in wanted.items():
                current = self._adverts.get(name)
                index = socket.if_nametoindex(name)
                if current is not None and current[0] == advert and current[3] == index:
                    continue  # a bridge made anew (other index) needs a socket bound to it
                if current is not None:
                    current[1].close()
                sock = self._links.icmpv6_socket(
                    name, index, netnames.GATEWAY_LINK_LOCAL, ALL_ROUTERS
                )
                self._adverts[name] = (advert, sock, build(advert), index)
                self._send(name, ALL_NODES)  # tell the link at once
                log.info("advertising %s on %s (MTU %d)", advert.prefix, name, advert.mtu)

    def burst(self, interface: str) -> None:
        """A NIC joined this network here: advertise often for a few seconds."""
        with self._lock:
            self._bursts[interface] = time.monotonic() + BURST_LENGTH

    def _send(self, name: str, destination: str) -> None:
        entry = self._adverts.get(name)
        if entry is None:
            return
        _, sock, message, index = entry
        try:
            sock.sendto(message, (destination, 0, 0, index))
            self._last[name] = time.monotonic()
        except OSError as error:
            log.warning("RA on %s to %s failed: %s", name, destination, error)

    def _run(self) -> None:
        next_round = time.monotonic() + UNSOLICITED_INTERVAL
        while not self._stop.is_set():
            with self._lock:
                sockets = {entry[1]: name for name, entry in self._adverts.items()}
            timeout = max(0.0, min(next_round - time.monotonic(), 0.1))
            try:
                readable, _, _ = select.select(list(sockets), [], [], timeout)
            except (OSError, ValueError):  # a socket closed meanwhile
                continue
            for sock in readable:
                try:
                    data, _ = sock.recvfrom(1500)
                except OSError:
                    continue
                name = sockets[sock]
                if (
                    data[:1] == bytes([ROUTER_SOLICITATION])
                    and time.monotonic() - self._last.get(name, 0) >= MIN_ANSWER_GAP
                ):
                    with self._lock:
                        self._send(name, ALL_NODES)
            now = time.monotonic()
            with self._lock:
                for name, until in list(self._bursts.items()):
                    if now > until:
                        del self._bursts[name]
                    elif now - self._last.get(name, 0) >= BURST_INTERVAL:
                        self._send(name, ALL_NODES)
            if time.monotonic() >= next_round:
                with self._lock:
                    for name in list(self._adverts):
                        self._send(name, ALL_NODES)
                next_round = time.monotonic() + UNSOLICITED_INTERVAL

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        with self._lock:
            for _, sock, _, _ in self._adverts.values():
                sock.close()
            self._adverts.clear()
