"""ucloud-ipam's radvd configuration (pure text)."""

from ucloud_ipam.radvd import config

NETS = [
    {"vni": 200, "mtu": 1500, "prefix": "fd00:2::/64"},
    {"vni": 100, "mtu": 1430, "prefix": "fd00:1::/64"},
]


def test_prefix_only_without_dns() -> None:
    text = config(NETS, [])
    assert text.index("interface ubr100") < text.index("interface ubr200")
    assert "AdvLinkMTU 1430;" in text and "prefix fd00:1::/64" in text
    assert text.count("AdvDefaultLifetime 0;") == 2 and "RDNSS" not in text


def test_default_route_and_rdnss_with_dns() -> None:
    text = config(NETS[:1], ["2001:db8::53", "2001:db8::54"])
    assert "AdvDefaultLifetime 1800;" in text
    assert "RDNSS 2001:db8::53 2001:db8::54 { };" in text


def test_no_networks_no_config() -> None:
    assert config([], []) == ""
