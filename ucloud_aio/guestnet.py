"""Guest-equivalents for metadata tests and benchmarks: a host namespace with a tenant bridge,
and one namespace per "VM" whose eth0 (the VM's MAC) is plugged into the bridge through a veth
named like the VM's tap. Real kernel, real packets, no qemu: a request from such a namespace
looks to ucloud-meta exactly like one from a guest."""

import contextlib
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common import ipam, netnames
from common.poll import wait_until
from common.store import Store, keys
from ucloud_aio.etcd import EtcdServer
from ucloud_aio.procs import spawn

FETCH = """
import http.client, socket, sys
host, port, path, source = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
try:
    conn = http.client.HTTPConnection(host, port, timeout=3,
                                      source_address=(source, 0) if source else None)
    conn.request("GET", path)
    answer = conn.getresponse()
    sys.stdout.write(f"{answer.status}\\n{answer.read().decode()}")
except OSError as error:
    sys.stdout.write(f"0\\n{error}")
"""


def run(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


@dataclass
class GuestNet:
    """Namespaces `<prefix>h` (the host, bridge ubr<vni>) and `<prefix>g<n>` (guests)."""

    prefix: str
    vni: int = 100
    guests: list[str] = field(default_factory=list)

    @property
    def host(self) -> str:
        return f"{self.prefix}h"

    @property
    def bridge(self) -> str:
        return netnames.bridge(self.vni)

    @property
    def uplink_address(self) -> str:
        """This machine's end of the host namespace's uplink (for an etcd the host reaches)."""
        return f"fd77:{abs(hash(self.prefix)) % 65536:x}::1"

    def create(self) -> "GuestNet":
        run("ip", "netns", "add", self.host)
        run("ip", "-n", self.host, "link", "set", "lo", "up")
        uplink = f"{self.prefix}u"
        run(
            "ip",
            "link",
            "add",
            uplink,
            "type",
            "veth",
            "peer",
            "name",
            "uplink",
            "netns",
            self.host,
        )
        run("ip", "addr", "add", f"{self.uplink_address}/64", "dev", uplink, "nodad")
        host_end = self.uplink_address.removesuffix("1") + "2"
        run("ip", "-n", self.host, "addr", "add", f"{host_end}/64", "dev", "uplink", "nodad")
        run("ip", "link", "set", uplink, "up")
        run("ip", "-n", self.host, "link", "set", "uplink", "up")
        run("ip", "-n", self.host, "link", "add", self.bridge, "type", "bridge")
        run("ip", "-n", self.host, "link", "set", self.bridge, "up")
        return self

    def add_guest(self, mac: str, vni: int | None = None) -> str:
        """A guest namespace whose eth0 has this MAC, on the bridge of network `vni` (default:
        this GuestNet's; made if missing); returns its name."""
        name = f"{self.prefix}g{len(self.guests) + 1}"
        bridge = netnames.bridge(self.vni if vni is None else vni)
        if bridge not in run("ip", "-n", self.host, "-o", "link", "show"):
            run("ip", "-n", self.host, "link", "add", bridge, "type", "bridge")
            run("ip", "-n", self.host, "link", "set", bridge, "up")
        run("ip", "netns", "add", name)
        self.guests.append(name)
        tap = netnames.tap(mac)
        run("ip", "-n", self.host, "link", "add", tap, "type", "veth", "peer", "name", "eth0")
        run("ip", "-n", self.host, "link", "set", "eth0", "netns", name)
        run("ip", "-n", self.host, "link", "set", tap, "master", bridge, "up")
        run("ip", "-n", name, "link", "set", "eth0", "address", mac)
        run("ip", "-n", name, "link", "set", "lo", "up")
        run("ip", "-n", name, "link", "set", "eth0", "up")
        return name

    def wait_link_local(self, guest: str, timeout: float = 10.0) -> None:
        """Until the guest's link-local address passed DAD (it cannot send from it before)."""

        def usable() -> bool:
            out = run("ip", "-n", guest, "-6", "addr", "show", "dev", "eth0", "scope", "link")
            return "inet6" in out and "tentative" not in out

        wait_until(usable, timeout, f"a usable link-local address in {guest}")

    def fetch(self, guest: str, path: str, port: int, source: str = "") -> tuple[int, str]:
        """GET http://[fe80::a9fe:a9fe%eth0]:port/path from the guest: (status or 0, body)."""
        host = f"{netnames.METADATA_LINK_LOCAL}%eth0"
        out = run(
            "ip", "netns", "exec", guest, sys.executable, "-c", FETCH, host, str(port), path, source
        )
        status, _, body = out.partition("\n")
        return int(status), body

    def destroy(self) -> None:
        """Namespaces go, and with them every veth end (also this machine's uplink end)."""
        subprocess.run(["ip", "link", "del", f"{self.prefix}u"], check=False, capture_output=True)
        for name in [*self.guests, self.host]:
            subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)


def guest_vm(uuid: str, name: str, owner: str, mac: str, prefix: str = "fd00:aa::/64") -> dict:
    """A VM record on host `h1` with one NIC on VNI 100, as the API and scheduler write it."""
    nic = {"network": "n", "vni": 100, "mac": mac, "prefix": prefix, "mtu": 1500, "slot": 0}
    nic["ipv6"] = ipam.eui64(prefix, mac)
    return {
        "uuid": uuid,
        "name": name,
        "owner": owner,
        "host": "h1",
        "desired": "running",
        "status": "RUNNING",
        "networks": [nic],
    }


@dataclass
class AgentRig:
    """A host agent (`python -m <module>`) serving a GuestNet from its host namespace, with its
    own etcd; its process can be killed and started again."""

    net: GuestNet
    argv: list[str]
    log: Path
    ready: Callable[["AgentRig"], bool]
    store: Store
    process: subprocess.Popen | None = None

    def start(self, timeout: float = 15.0) -> None:
        """Start the agent in the host namespace; return once it is ready."""
        self.process = spawn(["ip", "netns", "exec", self.net.host, *self.argv], self.log)
        wait_until(lambda: self.ready(self), timeout, f"the agent (see {self.log})", interval=0.1)

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


@contextmanager
def agent_rig(
    state: Path,
    net: GuestNet,
    vms: list[tuple[dict[str, Any], dict[str, Any]]],
    module: str,
    settings: dict[str, str],
    ready: Callable[[AgentRig], bool],
) -> Iterator[AgentRig]:
    """The agent in host namespace `<prefix>h` with its own etcd (reached over the uplink), the
    (VM record, VM data) pairs stored, and a guest namespace per VM's first NIC. Yields once
    the agent is ready; removes everything afterwards."""
    etcd = EtcdServer(state / "etcd", extra_hosts=[net.uplink_address])
    conf = state / f"{module}.conf"
    argv = [sys.executable, "-m", module, "--config", str(conf)]
    store = None
    rig = None
    try:
        net.create()
        etcd.start()
        store = Store([etcd.endpoint], timeout=2.0, retry_deadline=10.0)
        for vm, data in vms:
            store.put(keys.vm(vm["uuid"]), vm)
            store.put(keys.vm_data(vm["uuid"]), data)
            nic = vm["networks"][0]
            net.add_guest(nic["mac"], nic["vni"])
        values = {
            "etcd_endpoints": f"[{net.uplink_address}]:{etcd.client_port}",
            "hostname": "h1",
            "metrics_port": "0",
            "log_level": "WARNING",
            **settings,
        }
        conf.write_text("".join(f"{key} = {value}\n" for key, value in values.items()))
        for guest in net.guests:
            net.wait_link_local(guest)
        rig = AgentRig(net, argv, state / f"{module}.log", ready, store)
        rig.start()
        yield rig
    finally:
        if rig is not None:
            rig.kill()
        if store is not None:
            store.close()
        etcd.kill()
        net.destroy()


def metadata_rig(
    state: Path, prefix: str, vms: list[tuple[dict[str, Any], dict[str, Any]]], port: int
) -> "contextlib.AbstractContextManager[AgentRig]":
    """ucloud-meta serving guest namespaces; ready once the first guest is answered."""

    def answered(rig: AgentRig) -> bool:
        return rig.net.fetch(rig.net.guests[0], "/ssh-keys", port)[0] == 200

    settings = {"metadata_port": str(port)}
    return agent_rig(state, GuestNet(prefix), vms, "ucloud_meta", settings, answered)
