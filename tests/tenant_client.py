"""A machine on a tenant network, for tests that talk to a guest the way a user would (ssh): a
namespace whose eth0 is a veth port of the network's bridge on the VM's lab host, with a fixed
address in the network's /64. It is not a VM port (`ut*`), so the firewall's per-VM-port rules
do not apply to what it sends; what the VM receives is still subject to its ingress rules."""

import ipaddress
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from common import netnames
from ucloud_aio.cloud import AllInOne


def _ip(*args: str) -> str:
    return subprocess.run(["ip", *args], check=True, capture_output=True, text=True).stdout


@contextmanager
def tenant_client(lab: AllInOne, host: str, nic: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(namespace, its address) on the network of `nic` (a VM's NIC record) at `host`;
    the namespace and its veth are removed afterwards."""
    tag = f"{os.getpid() % 100000}"
    ns, port = f"ucclient{tag}", f"ucc{tag}"
    host_ns = lab.fabric.netns(lab.host_index(host))
    bridge = netnames.bridge(nic["vni"])
    network = ipaddress.ip_network(f"{nic['ipv6']}/64", strict=False)
    address = str(network.network_address + 0xC1)
    _ip("netns", "add", ns)
    try:
        _ip("-n", host_ns, "link", "add", port, "mtu", str(nic["mtu"]), "type", "veth",
            "peer", "name", "eth0", "mtu", str(nic["mtu"]), "netns", ns)  # fmt: skip
        _ip("-n", host_ns, "link", "set", port, "master", bridge, "up")
        _ip("-n", ns, "link", "set", "lo", "up")
        _ip("-n", ns, "link", "set", "eth0", "up")
        _ip("-n", ns, "addr", "add", f"{address}/64", "dev", "eth0", "nodad")
        yield ns, address
    finally:
        subprocess.run(["ip", "-n", host_ns, "link", "del", port], capture_output=True)
        _ip("netns", "del", ns)
