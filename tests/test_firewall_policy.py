"""ucloud-firewall's policy (pure) and its renderings: nft as text (nft itself checks it in
tests/test_firewall.py), pf against golden files (no BSD machine here)."""

from pathlib import Path

import pytest

from ucloud_firewall import policy
from ucloud_firewall.drivers import nft, pf

GOLDEN = Path(__file__).parent / "golden"
PREFIX = "fd00:aa::/64"


def vm(uuid: str, mac: str, host: str = "h1", **extra: object) -> dict:
    nic = {"network": "n", "vni": 100, "mac": mac, "prefix": PREFIX, "mtu": 1430, "slot": 0}
    return {"uuid": uuid, "host": host, "desired": "running", "networks": [nic], **extra}


HOSTS = [
    {"hostname": "h1", "underlay": "fd42::1", "status": "ALIVE"},
    {"hostname": "h2", "underlay": "fd42:0::2", "status": "ALIVE"},
    {"hostname": "h3", "underlay": "fd42::3", "status": "DEAD"},
    {"hostname": "h4", "status": "ALIVE"},
]
RULES = [
    {"protocol": "tcp", "ports": [22, 22], "source": "2001:db8::/32"},
    {"protocol": "udp", "ports": [5000, 5010]},
    {"protocol": "icmpv6", "source": "2001:db8:1::1/128"},
    {"protocol": "any", "source": "fd00::/8"},
]


def test_ports_for_every_nic_here_running_or_not() -> None:
    vms = [
        vm("a", "02:00:00:00:00:0a", status="STOPPED"),
        vm("b", "02:00:00:00:00:0b", host="h2"),
        vm("c", "02:00:00:00:00:0c", desired="deleted"),
    ]
    wanted = policy.desired("h1", vms, HOSTS, 80)
    (port,) = wanted.ports
    assert port.tap == "ut02000000000a" and port.mac == "02:00:00:00:00:0a"
    assert port.addresses == ("fe80::ff:fe00:a", "fd00:aa::ff:fe00:a")
    assert not port.guarded
    assert wanted.peers == ("fd42::2",)  # the other live hosts with an underlay address


def test_rules_guard_a_port_and_default_deny_guards_all() -> None:
    guarded = policy.desired("h1", [vm("a", "02:00:00:00:00:0a", firewall=RULES)], [], 80)
    port = guarded.ports[0]
    assert port.guarded
    assert policy.IngressRule("tcp", "2001:db8::/32", 22, 22) in port.ingress
    assert policy.IngressRule("udp", "::/0", 5000, 5010) in port.ingress
    assert policy.IngressRule("icmpv6", "2001:db8:1::1/128") in port.ingress
    everyone = policy.desired("h1", [vm("a", "02:00:00:00:00:0a")], [], 80, default_deny=True)
    assert everyone.ports[0].guarded and everyone.ports[0].ingress == ()


@pytest.mark.parametrize(
    "rule",
    [
        {"protocol": "sctp"},
        {"protocol": "tcp", "ports": [0, 22]},
        {"protocol": "tcp", "ports": [23, 22]},
        {"protocol": "udp", "ports": [1, 65536]},
        {"protocol": "tcp", "source": "example.com"},
    ],
)
def test_a_record_with_a_bad_rule_is_refused(rule: dict) -> None:
    """The API validates rules; a record changed behind its back must not reach nft."""
    with pytest.raises(ValueError):
        policy.desired("h1", [vm("a", "02:00:00:00:00:0a", firewall=[rule])], [], 80)


def sample() -> policy.HostPolicy:
    vms = [vm("a", "02:00:00:00:00:0a", firewall=RULES), vm("b", "02:00:00:00:00:0b")]
    return policy.desired("h1", vms, HOSTS, 80, underlay_interface="eth0")


def test_nft_batch_declares_flushes_and_fills() -> None:
    script = nft.render(sample())
    lines = script.splitlines()
    # Declarations first (idempotent: counters keep their values), then flushes, then rules.
    assert lines.index("add counter bridge ucloud wrong_mac") < lines.index(
        "flush chain bridge ucloud from_vm"
    )
    assert not any(line.startswith("delete") for line in lines)
    assert 'add element bridge ucloud ports { "ut02000000000a", "ut02000000000b" }' in lines
    assert (
        'add element bridge ucloud port_mac { "ut02000000000a" . 02:00:00:00:00:0a,'
        ' "ut02000000000b" . 02:00:00:00:00:0b }' in lines
    )
    assert 'add element bridge ucloud guarded { "ut02000000000a" }' in lines
    assert (
        'add element bridge ucloud allow_ports { "ut02000000000a" . tcp . 22-22 . 2001:db8::/32,'
        ' "ut02000000000a" . udp . 5000-5010 . ::/0 }' in lines
    )
    assert "add element inet ucloud_host peers { fd42::2 }" in lines
    assert (
        'add rule inet ucloud_host input udp dport 4789 iifname != "eth0"'
        " counter name vxlan_foreign drop" in lines
    )


def test_a_record_with_a_bad_mac_is_refused() -> None:
    with pytest.raises(ValueError):
        policy.desired("h1", [vm("a", '02:00:00:00:00:0a" accept')], [], 80)


def test_nft_refuses_a_strange_interface_name() -> None:
    with pytest.raises(ValueError):
        nft.render(policy.HostPolicy((), (), 80, underlay_interface='eth0" accept #'))


@pytest.mark.parametrize("name", ["pf-two-ports"])
def test_pf_golden(name: str) -> None:
    expected = (GOLDEN / f"{name}.conf").read_text()
    assert pf.render(sample()) == expected, f"pf rendering changed: compare {name}.conf"
