"""Firewall drivers, chosen at start-up by name (`firewall` in the config)."""

from common.registry import Registry
from ucloud_firewall.driver import Firewall

FIREWALLS: Registry[Firewall] = Registry(
    "firewall",
    "firewall",
    {
        "nft": "ucloud_firewall.drivers.nft:NftFirewall",
        "pf": "ucloud_firewall.drivers.pf:PfFirewall",
    },
)
