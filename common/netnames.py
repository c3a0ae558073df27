"""Names of the host-side network links of tenant networks, shared by ucloud-net (creates them),
ucloud-vm (plugs NICs into taps) and ucloud-ipam (router advertisements on bridges).
Linux allows 15 characters."""

import re
from pathlib import Path

GATEWAY_LINK_LOCAL = "fe80::1"  # the same router address on every host's bridge of a network
# ucloud-meta on every bridge: the link-local address OpenStack uses for IPv6 metadata
METADATA_LINK_LOCAL = "fe80::a9fe:a9fe"
_BRIDGE = re.compile(r"^ubr(\d+)$")


def bridge(vni: int) -> str:
    return f"ubr{vni}"


def bridge_vni(name: str) -> int | None:
    """The VNI of a bridge named by bridge(); None for any other name."""
    match = _BRIDGE.match(name)
    return int(match.group(1)) if match else None


def vxlan(vni: int) -> str:
    return f"uvx{vni}"


def tap(mac: str) -> str:
    """One tap per VM NIC, named after its MAC (unique: MACs are claimed in etcd)."""
    return "ut" + mac.replace(":", "")


def gateway_mac(vni: int) -> str:
    """The bridge's MAC, the same on every host: the router looks the same from any VM, and a
    bridge drops frames from another host's bridge (its own address as source), so router
    advertisements of different hosts never meet."""
    return "02:75:00:" + ":".join(f"{(vni >> shift) & 0xFF:02x}" for shift in (16, 8, 0))


def firewall_marks(run_dir: str) -> Path:
    """ucloud-firewall makes a file named after each tap here once the tap's rules are in
    force; ucloud-vm plugs a NIC into its tap only then, so no NIC sends unfiltered."""
    return Path(run_dir) / "firewall"
