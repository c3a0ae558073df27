"""ucloud-firewall on a real kernel: a real ucloud-firewall process in a host namespace, guests as
namespaces behind veths named like VM taps (ucloud_aio.guestnet), hand-made hostile frames
(tests/packets.py). Every attack is dropped and counted while legitimate traffic still flows;
kill -9 keeps the rules; a restart converges; ingress rules apply to a running VM."""

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from common import ipam, netnames
from common.store import keys
from tests import packets
from tests.daemons import eventually
from ucloud_aio.guestnet import AgentRig, GuestNet, agent_rig, guest_vm, run
from ucloud_firewall.drivers.nft import NftFirewall

PREFIX = "fd00:aa::/64"
MACS = {
    "a": "02:00:00:00:00:0a",  # the victim
    "r": "02:00:00:00:00:0b",  # the rogue
    "g": "02:00:00:00:00:0c",  # guarded by ingress rules
    "c": "02:00:00:00:00:0d",  # another tenant, on VNI 200
}
GUARD_RULES = [{"protocol": "udp", "ports": [5001, 5001], "source": "::/0"}]
HOST_SERVICE_PORT = 2379
METRICS_PORT = 9471  # inside the host namespace: its own loopback


def ll(name: str) -> str:
    return ipam.eui64("fe80::/64", MACS[name])


def record(name: str) -> dict:
    vm = guest_vm(f"00000000-0000-4000-8000-0000000000{ord(name):02x}", name, "alice", MACS[name])
    if name == "c":
        vm["networks"][0]["vni"] = 200
    if name == "g":
        vm["firewall"] = GUARD_RULES
    return vm


UDP_SEND = """
import socket, sys
source, sport, target, dport, payload = sys.argv[1:6]
link = socket.if_nametoindex("eth0")
sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
sock.bind((source, int(sport), 0, link))
for _ in range(3):
    sock.sendto(bytes.fromhex(payload), (target, int(dport), 0, link))
"""

TCP_CONNECT = """
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2).close()
    print("connected")
except OSError as error:
    print("refused", error)
"""


LISTEN = """
import socket, time
server = socket.create_server(("::", {port}), family=socket.AF_INET6)
print("listening", flush=True)
time.sleep(600)
"""


class Firewalled:
    def __init__(self, rig: AgentRig) -> None:
        self.rig = rig
        self.net = rig.net
        self.guest = dict(zip("argc", rig.net.guests, strict=False))
        self.nft = NftFirewall(("ip", "netns", "exec", self.net.host, "nft"))

    def exec(self, guest: str) -> list[str]:
        return ["ip", "netns", "exec", self.guest[guest]]

    def sniff(self, guest: str, marker: bytes, seconds: float = 1.5) -> subprocess.Popen:
        process = subprocess.Popen(
            [*self.exec(guest), sys.executable, "-c", packets.SNIFF, marker.hex(), str(seconds)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
        return process

    @staticmethod
    def seen(sniffer: subprocess.Popen) -> int:
        out, _ = sniffer.communicate(timeout=30)
        return int(out.strip())

    def send(self, guest: str, *frames: bytes) -> None:
        script = [sys.executable, "-c", packets.SEND, *(frame.hex() for frame in frames)]
        run("ip", "netns", "exec", self.guest[guest], *script)

    def udp(self, guest: str, sport: int, target: str, dport: int, payload: bytes) -> None:
        args = [ll(guest), str(sport), target, str(dport), payload.hex()]
        run("ip", "netns", "exec", self.guest[guest], sys.executable, "-c", UDP_SEND, *args)

    def delivered(self, sender: str, receiver: str, frame: bytes, marker: bytes) -> int:
        sniffer = self.sniff(receiver, marker)
        self.send(sender, frame, frame, frame)
        return self.seen(sniffer)

    def dropped(self, rule: str) -> int:
        return self.nft.drops().by_class.get(rule, 0)

    def port_drops(self, guest: str) -> int:
        return self.nft.drops().by_port.get(netnames.tap(MACS[guest]), 0)


def marks_made(run_dir: Path, names: str) -> bool:
    return all(
        (netnames.firewall_marks(str(run_dir)) / netnames.tap(MACS[n])).exists() for n in names
    )


@pytest.fixture(scope="module")
def fw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Firewalled]:
    state = tmp_path_factory.mktemp("firewall")
    run_dir = state / "run"
    net = GuestNet(f"ufw{os.getpid() % 10000}")
    vms = [(record(name), {}) for name in "argc"]
    settings = {
        "run_dir": str(run_dir),
        "metadata_port": "8775",
        "firewall": "nft",
        "metrics_port": str(METRICS_PORT),
    }
    with agent_rig(
        state, net, vms, "ucloud_firewall", settings, lambda _: marks_made(run_dir, "argc")
    ) as rig:
        host = net.host
        # What ucloud-ipam and ucloud-net would have made: the router address on the bridge,
        # and a VXLAN for VNI 200 on the host's uplink. The bridge takes RAs as a host
        # without ucloud-ipam's accept_ra=0 would.
        run("ip", "-n", host, "addr", "add", "fe80::1/64", "dev", "ubr100", "nodad")
        run("ip", "netns", "exec", host, "sysctl", "-qw", "net.ipv6.conf.ubr100.accept_ra=2")
        local = net.uplink_address.removesuffix("1") + "2"
        run(
            "ip", "-n", host, "link", "add", "uvx200", "type", "vxlan", "id", "200",
            "dstport", "4789", "local", local, "nolearning",
        )  # fmt: skip
        run("ip", "-n", host, "link", "set", "uvx200", "master", "ubr200", "up")
        yield Firewalled(rig)


def frame(source_mac: str, target: str, packet: bytes) -> bytes:
    return packets.ethernet(source_mac, MACS[target], packets.ETH_IPV6, packet)


def hello(sender: str, marker: bytes) -> bytes:
    """A well-formed UDP datagram from the sender's own MAC and address to the victim a."""
    return frame(MACS[sender], "a", packets.udp(ll(sender), ll("a"), 4000, 4001, marker))


def test_legitimate_traffic_passes(fw: Firewalled) -> None:
    marker = b"legit-a-to-r"
    assert fw.delivered("r", "a", hello("r", marker), marker) == 3


SPOOFS = {
    "wrong_mac": lambda m: frame(
        "02:00:00:00:00:99", "a", packets.udp(ll("r"), ll("a"), 4000, 4001, m)
    ),
    "dhcp_server": lambda m: frame(MACS["r"], "a", packets.udp(ll("r"), ll("a"), 547, 546, m)),
    "wrong_source": lambda m: frame(MACS["r"], "a", packets.udp(ll("a"), ll("a"), 4000, 4001, m)),
    "not_ipv6": lambda m: packets.ipv4_udp(MACS["r"], MACS["a"], m),
}


@pytest.mark.parametrize("rule", sorted(SPOOFS))
def test_spoofed_frames_are_dropped(fw: Firewalled, rule: str) -> None:
    marker = f"spoof-{rule}".encode()
    before, port_before = fw.dropped(rule), fw.port_drops("r")
    assert fw.delivered("r", "a", SPOOFS[rule](marker), marker) == 0
    assert fw.dropped(rule) >= before + 3
    assert fw.port_drops("r") >= port_before + 3


def test_drops_are_in_the_metrics(fw: Firewalled) -> None:
    fetch = (
        "import urllib.request as u, sys; sys.stdout.write(u.urlopen(sys.argv[1]).read().decode())"
    )
    url = f"http://127.0.0.1:{METRICS_PORT}/metrics"
    text = run("ip", "netns", "exec", fw.net.host, sys.executable, "-c", fetch, url)
    lines = {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("ucloud_firewall")
    }
    assert lines['ucloud_firewall_dropped_packets_total{rule="wrong_mac"}'] >= 3
    labels = f'tap="{netnames.tap(MACS["r"])}",vm="{record("r")["uuid"]}"'
    assert lines[f"ucloud_firewall_port_dropped_packets_total{{{labels}}}"] >= 3


def to_all_nodes(kind: int, body: bytes, hop_by_hop: bool = False) -> bytes:
    """An ICMPv6 message from the rogue to every node on the link."""
    message = packets.icmpv6(ll("r"), "ff02::1", kind, body, hop_by_hop)
    return packets.ethernet(MACS["r"], packets.ALL_NODES_MAC, packets.ETH_IPV6, message)


@pytest.mark.parametrize("hop_by_hop", [False, True])
def test_router_advertisements_reach_no_one(fw: Firewalled, hop_by_hop: bool) -> None:
    advert = to_all_nodes(134, packets.router_advert(MACS["r"]), hop_by_hop)
    marker = bytes.fromhex("20010db80bad0000")  # the advertised prefix
    before = fw.dropped("router_advert")
    assert fw.delivered("r", "a", advert, marker) == 0
    assert fw.dropped("router_advert") >= before + 3
    routes = run("ip", "-n", fw.net.host, "-6", "route", "show")
    assert "2001:db8:bad" not in routes and "default" not in routes
    assert "2001:db8:bad" not in run("ip", "-n", fw.net.host, "-6", "addr", "show")


def test_neighbour_advert_for_another_vm_is_dropped(fw: Firewalled) -> None:
    foreign = packets.neighbour_advert(ll("a"), MACS["r"])
    before = fw.dropped("foreign_na")
    assert fw.delivered("r", "a", to_all_nodes(136, foreign), foreign) == 0
    assert fw.dropped("foreign_na") >= before + 3
    # Its own address it may advertise.
    own = packets.neighbour_advert(ll("r"), MACS["r"])
    assert fw.delivered("r", "a", to_all_nodes(136, own), own) == 3


def inject_vxlan(fw: Firewalled, marker: bytes) -> int:
    """The rogue (VNI 100) sends a VXLAN packet for VNI 200 to the host's router address: the
    host's VXLAN socket would decapsulate it into the other tenant's network."""
    inner = frame(MACS["r"], "c", packets.udp(ll("r"), ll("c"), 4000, 4001, marker))
    sniffer = fw.sniff("c", marker)
    fw.udp("r", 4789, "fe80::1", 4789, packets.vxlan(200, inner))
    return fw.seen(sniffer)


def connect_to_host(fw: Firewalled) -> str:
    return run(
        "ip",
        "netns",
        "exec",
        fw.guest["r"],
        sys.executable,
        "-c",
        TCP_CONNECT,
        "fe80::1%eth0",
        str(HOST_SERVICE_PORT),
    )


@pytest.fixture(scope="module")
def host_service(fw: Firewalled) -> Iterator[None]:
    """Something listening on every address of the host (as etcd, the API or sshd may)."""
    script = LISTEN.format(port=HOST_SERVICE_PORT)
    listener = subprocess.Popen(
        ["ip", "netns", "exec", fw.net.host, sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert listener.stdout is not None and listener.stdout.readline().strip() == "listening"
    yield
    listener.kill()
    listener.wait()


def test_host_and_other_networks_are_shielded_kill9_keeps_rules(
    fw: Firewalled, host_service: None
) -> None:
    before = fw.dropped("to_host")
    assert inject_vxlan(fw, b"vxlan-injected-1") == 0
    assert connect_to_host(fw).startswith("refused")
    assert fw.dropped("to_host") > before
    # Without the rules both attacks work: the test can tell.
    fw.nft.remove()
    assert inject_vxlan(fw, b"vxlan-injected-2") > 0
    assert connect_to_host(fw).startswith("connected")
    # A restarted ucloud-firewall puts them back; a killed one leaves them in place.
    fw.rig.kill()
    fw.rig.start()
    eventually(lambda: inject_vxlan(fw, b"vxlan-injected-3") == 0, timeout=10)
    fw.rig.kill()
    assert inject_vxlan(fw, b"vxlan-injected-4") == 0
    assert connect_to_host(fw).startswith("refused")
    fw.rig.start()


def test_ingress_rules_and_replies(fw: Firewalled) -> None:
    target = ll("g")
    allowed, blocked = b"to-g-5001", b"to-g-5002"
    sniffer = fw.sniff("g", allowed)
    fw.udp("a", 4000, target, 5001, allowed)
    assert fw.seen(sniffer) == 3
    before = fw.dropped("ingress")
    sniffer = fw.sniff("g", blocked)
    fw.udp("a", 4000, target, 5002, blocked)
    assert fw.seen(sniffer) == 0 and fw.dropped("ingress") >= before + 3
    # g talks first: the replies come back although no rule allows port 7001.
    fw.udp("g", 7001, ll("a"), 7000, b"hello")
    sniffer = fw.sniff("g", b"reply-to-g")
    fw.udp("a", 7000, target, 7001, b"reply-to-g")
    assert fw.seen(sniffer) == 3


def test_rule_change_applies_to_a_running_vm(fw: Firewalled) -> None:
    vm = record("g")
    vm["firewall"] = [*GUARD_RULES, {"protocol": "udp", "ports": [5002, 5002]}]
    fw.rig.store.put(keys.vm(vm["uuid"]), vm)

    def reaches() -> bool:
        sniffer = fw.sniff("g", b"now-allowed", seconds=0.8)
        fw.udp("a", 4000, ll("g"), 5002, b"now-allowed")
        return fw.seen(sniffer) == 3

    eventually(reaches, timeout=10)


def test_unknown_and_deleted_ports_pass_nothing(fw: Firewalled) -> None:
    stranger = fw.net.add_guest("02:00:00:00:00:0e")
    fw.guest["u"] = stranger
    fw.net.wait_link_local(stranger)
    MACS["u"] = "02:00:00:00:00:0e"
    marker = b"from-a-stranger"
    before = fw.dropped("unknown_port")
    assert fw.delivered("u", "a", hello("u", marker), marker) == 0
    assert fw.dropped("unknown_port") >= before + 3
    # The rogue's VM is deleted: its tap (still there) passes nothing from then on.
    fw.rig.store.delete(keys.vm(record("r")["uuid"]))
    run_dir = Path(fw.rig.argv[-1]).parent / "run"
    eventually(
        lambda: not (netnames.firewall_marks(str(run_dir)) / netnames.tap(MACS["r"])).exists()
    )
    marker = b"from-a-deleted-vm"
    assert fw.delivered("r", "a", hello("r", marker), marker) == 0
