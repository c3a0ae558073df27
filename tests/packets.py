"""Hand-made frames for firewall tests: what a hostile guest can put on the wire (any source MAC,
any IPv6 source, router advertisements, DHCP replies, neighbour advertisements for others'
addresses, IPv4, VXLAN aimed at the host). Sent and sniffed with AF_PACKET sockets inside a
namespace, by scripts run with `ip netns exec` (SEND, SNIFF below)."""

import ipaddress
import struct

ETH_IPV6, ETH_IPV4, ETH_ARP = 0x86DD, 0x0800, 0x0806
ICMPV6, UDP, HOP_BY_HOP = 58, 17, 0
ALL_NODES_MAC = "33:33:00:00:00:01"


def mac_bytes(mac: str) -> bytes:
    return bytes(int(part, 16) for part in mac.split(":"))


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _pseudo(source: str, destination: str, length: int, protocol: int) -> bytes:
    return (
        ipaddress.IPv6Address(source).packed
        + ipaddress.IPv6Address(destination).packed
        + struct.pack("!IxxxB", length, protocol)
    )


def ethernet(source_mac: str, destination_mac: str, ethertype: int, payload: bytes) -> bytes:
    return (
        mac_bytes(destination_mac) + mac_bytes(source_mac) + struct.pack("!H", ethertype) + payload
    )


def ipv6(source: str, destination: str, next_header: int, payload: bytes, hops: int = 255) -> bytes:
    header = struct.pack("!IHBB", 6 << 28, len(payload), next_header, hops)
    return (
        header
        + ipaddress.IPv6Address(source).packed
        + ipaddress.IPv6Address(destination).packed
        + payload
    )


def icmpv6(
    source: str, destination: str, kind: int, body: bytes, hop_by_hop: bool = False
) -> bytes:
    """An IPv6 packet carrying ICMPv6 (optionally behind a hop-by-hop header)."""
    message = struct.pack("!BBH", kind, 0, 0) + body
    checksum = _checksum(_pseudo(source, destination, len(message), ICMPV6) + message)
    message = message[:2] + struct.pack("!H", checksum) + message[4:]
    if hop_by_hop:
        # next header ICMPv6, length 0 (8 bytes), PadN option of 4 bytes + Pad1 x0... (6 bytes)
        extension = struct.pack("!BB", ICMPV6, 0) + bytes([1, 4, 0, 0, 0, 0])
        return ipv6(source, destination, HOP_BY_HOP, extension + message)
    return ipv6(source, destination, ICMPV6, message)


def udp(source: str, destination: str, sport: int, dport: int, payload: bytes) -> bytes:
    length = 8 + len(payload)
    segment = struct.pack("!HHHH", sport, dport, length, 0) + payload
    checksum = _checksum(_pseudo(source, destination, length, UDP) + segment) or 0xFFFF
    return ipv6(source, destination, UDP, segment[:6] + struct.pack("!H", checksum) + segment[8:])


def router_advert(source_mac: str) -> bytes:
    """A router advertisement with a prefix and a default route (lifetime 1800 s)."""
    body = struct.pack("!BBHII", 64, 0, 1800, 0, 0)
    body += struct.pack("!BB", 1, 1) + mac_bytes(source_mac)
    prefix = ipaddress.IPv6Network("2001:db8:bad::/64")
    body += struct.pack("!BBBBIII", 3, 4, 64, 0xC0, 86400, 14400, 0) + prefix.network_address.packed
    return body


def neighbour_advert(target: str, target_mac: str) -> bytes:
    """Override flag set: the receiver replaces its cache entry for `target`."""
    return (
        struct.pack("!I", 0x20000000)
        + ipaddress.IPv6Address(target).packed
        + struct.pack("!BB", 2, 1)
        + mac_bytes(target_mac)
    )


def ipv4_udp(source_mac: str, destination_mac: str, payload: bytes = b"") -> bytes:
    """A DHCPv4-server-like UDP datagram (67 -> 68) to the broadcast address."""
    length = 28 + len(payload)
    header = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, length, 0, 0, 64, UDP, 0, bytes(4), bytes([255] * 4)
    )
    header = header[:10] + struct.pack("!H", _checksum(header)) + header[12:]
    segment = struct.pack("!HHHH", 67, 68, 8 + len(payload), 0) + payload
    return ethernet(source_mac, destination_mac, ETH_IPV4, header + segment)


def vxlan(vni: int, inner: bytes) -> bytes:
    return struct.pack("!II", 0x08000000, vni << 8) + inner


# Run inside a namespace: send hex-encoded frames out of eth0.
SEND = """
import socket, sys
sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
sock.bind(("eth0", 0))
for frame in sys.argv[1:]:
    sock.send(bytes.fromhex(frame))
"""

# Run inside a namespace: print how many frames carrying the marker arrive on eth0 in N seconds.
SNIFF = """
import socket, sys, time
marker, seconds = bytes.fromhex(sys.argv[1]), float(sys.argv[2])
sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
sock.bind(("eth0", 0))
sock.settimeout(0.05)
print("ready", flush=True)
seen, end = 0, time.monotonic() + seconds
while time.monotonic() < end:
    try:
        frame, address = sock.recvfrom(65535)
    except TimeoutError:
        continue
    # What arrives only, not what the guest sends (an ICMP error quotes the marker).
    seen += address[2] != socket.PACKET_OUTGOING and marker in frame
print(seen, flush=True)
"""
