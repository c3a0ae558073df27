"""The router advertisement ucloud-ipam sends, byte by byte (RFC 4861 4.2, 4.6; RFC 8106)."""

import struct

from ucloud_ipam.ra import Advert, build


def options(message: bytes) -> dict[int, bytes]:
    found, offset = {}, 16
    while offset < len(message):
        kind, length = message[offset], message[offset + 1] * 8
        found[kind] = message[offset : offset + length]
        offset += length
    return found


def test_prefix_mtu_and_router_identity_without_default_route() -> None:
    message = build(Advert(0x0102, "fd00:1:2:3::/64", 1430))
    kind, code, _, hop_limit, flags, lifetime = struct.unpack("!BBHBBH", message[:8])
    assert (kind, code, hop_limit, flags, lifetime) == (134, 0, 64, 0, 0)
    found = options(message)
    assert found[1][2:] == bytes([0x02, 0x75, 0x00, 0x00, 0x01, 0x02])  # gateway MAC
    assert struct.unpack("!I", found[5][4:8]) == (1430,)
    prefix_length, prefix_flags = found[3][2], found[3][3]
    assert (prefix_length, prefix_flags) == (64, 0xC0)  # on-link, autonomous (SLAAC)
    assert found[3][16:32] == bytes.fromhex("fd000001000200030000000000000000")
    assert 25 not in found


def test_dns_brings_a_default_route_and_rdnss() -> None:
    message = build(Advert(100, "fd00::/64", 1500, ("2001:db8::53",)))
    assert struct.unpack("!H", message[6:8]) == (1800,)
    rdnss = options(message)[25]
    assert rdnss[1] == 3 and rdnss[8:24] == bytes.fromhex("20010db8000000000000000000000053")
