"""The lab's network: hosts as network namespaces, each joined by a veth pair to a fabric bridge
in the root namespace, with an IPv6 underlay (a ULA /64 per lab). etcd listens on the bridge's
address, so every host reaches it over the fabric; taking a host's bridge-side veth down cuts
the host off (PLATFORM.md: inside the namespace, link down would delete its address for good).

Names carry a 4-hex lab id so several labs (a user's, CI's) can coexist:
    bridge ucb<id>; namespace uc<id>-host<N>; veth ucv<id>h<N> (root side) / eth0 (host side);
    addresses fd42:<id>::<N>/64 (hosts) and fd42:<id>::fe/64 (the bridge: etcd, API).
"""

import hashlib
import subprocess
from dataclasses import dataclass
from pathlib import Path

# Jumbo frames on the fabric: VXLAN over IPv6 adds 70 bytes, so tenant networks keep MTU 1500.
FABRIC_MTU = 9000
TENANT_MTU = 1500


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {result.stderr.strip()}")
    return result


def _exists(kind: str, name: str) -> bool:
    if kind == "netns":
        return name in _ip("netns", "list").stdout.split()
    return _ip("link", "show", "dev", name, check=False).returncode == 0


@dataclass(frozen=True)
class Fabric:
    lab_id: str

    @classmethod
    def for_state_dir(cls, state_dir: Path) -> "Fabric":
        return cls(hashlib.sha1(str(state_dir).encode()).hexdigest()[:4])

    @property
    def bridge(self) -> str:
        return f"ucb{self.lab_id}"

    @property
    def gateway(self) -> str:
        return f"fd42:{self.lab_id}::fe"

    def netns(self, index: int) -> str:
        return f"uc{self.lab_id}-host{index}"

    def veth(self, index: int) -> str:
        return f"ucv{self.lab_id}h{index}"

    def address(self, index: int) -> str:
        return f"fd42:{self.lab_id}::{index:x}"

    def create(self, count: int) -> None:
        """Idempotent: what exists is kept, what is missing is made."""
        if not _exists("link", self.bridge):
            _ip("link", "add", self.bridge, "mtu", str(FABRIC_MTU), "type", "bridge")
            _ip("addr", "add", f"{self.gateway}/64", "dev", self.bridge, "nodad")
        _ip("link", "set", self.bridge, "up")
        for index in range(1, count + 1):
            self._create_host(index)

    def _create_host(self, index: int) -> None:
        ns, veth = self.netns(index), self.veth(index)
        if not _exists("netns", ns):
            _ip("netns", "add", ns)
        _ip("-n", ns, "link", "set", "lo", "up")
        if not _exists("link", veth):
            peer = f"ucp{self.lab_id}h{index}"
            _ip(
                "link",
                "add",
                veth,
                "mtu",
                str(FABRIC_MTU),
                "type",
                "veth",
                "peer",
                "name",
                peer,
                "mtu",
                str(FABRIC_MTU),
            )
            _ip("link", "set", peer, "netns", ns)
            _ip("-n", ns, "link", "set", peer, "name", "eth0")
            _ip("-n", ns, "addr", "add", f"{self.address(index)}/64", "dev", "eth0", "nodad")
            _ip("link", "set", veth, "master", self.bridge)
        _ip("-n", ns, "link", "set", "eth0", "up")
        _ip("link", "set", veth, "up")

    def exec_prefix(self, index: int) -> list[str]:
        return ["ip", "netns", "exec", self.netns(index)]

    def pids(self, index: int) -> list[int]:
        """Every process in the host's namespace."""
        result = _ip("netns", "pids", self.netns(index), check=False)
        return [int(pid) for pid in result.stdout.split()]

    def cut(self, index: int) -> None:
        _ip("link", "set", self.veth(index), "down")

    def restore(self, index: int) -> None:
        _ip("link", "set", self.veth(index), "up")

    def destroy(self, count: int) -> None:
        """Remove namespaces (their veths go with them) and the bridge. Processes inside must be
        gone first: a process keeps a deleted namespace alive."""
        for index in range(1, count + 1):
            if _exists("netns", self.netns(index)):
                _ip("netns", "del", self.netns(index), check=False)
            if _exists("link", self.veth(index)):
                _ip("link", "del", self.veth(index), check=False)
        if _exists("link", self.bridge):
            _ip("link", "del", self.bridge, check=False)
