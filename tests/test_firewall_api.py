"""A VM's ingress rules through the API (real etcd): add, list, delete, and every class of bad
input refused with a 4xx naming the field, nothing written."""

import pytest

from common.store import keys
from tests.conftest import Api

VM = {"name": "web", "cpu": 1, "ram": "128MiB", "os_ssd": "64MiB", "image": "tiny"}


def test_add_list_delete(api: Api) -> None:
    alice = api.user("alice")
    uuid = alice.post("/v1/vm", VM).json["uuid"]
    rules = f"/v1/vm/{uuid}/firewall"
    assert alice.get(rules).json == []
    ssh = alice.post(rules, {"protocol": "tcp", "ports": "22", "source": "2001:DB8::1/32"})
    assert ssh.status_code == 201, ssh.json
    assert ssh.json["ports"] == [22, 22] and ssh.json["source"] == "2001:db8::/32"
    web = alice.post(rules, {"protocol": "tcp", "ports": "8000-8080"}).json
    assert web["source"] == "::/0"
    ping = alice.post(rules, {"protocol": "icmpv6"}).json
    assert ping["ports"] is None
    assert (
        alice.post(rules, {"protocol": "tcp", "ports": 22, "source": "2001:db8::/32"}).status_code
        == 409
    )
    assert [r["id"] for r in alice.get(rules).json] == [ssh.json["id"], web["id"], ping["id"]]
    stored = api.store.get(keys.vm(uuid)).value
    assert [r["protocol"] for r in stored["firewall"]] == ["tcp", "tcp", "icmpv6"]
    assert alice.delete(f"{rules}/{web['id']}").status_code == 200
    assert alice.delete(f"{rules}/{web['id']}").status_code == 404
    assert [r["id"] for r in alice.get(rules).json] == [ssh.json["id"], ping["id"]]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"protocol": "sctp"}, "protocol"),
        ({}, "protocol"),
        ({"protocol": "tcp", "ports": "0"}, "ports"),
        ({"protocol": "tcp", "ports": "22-21"}, "ports"),
        ({"protocol": "udp", "ports": 70000}, "ports"),
        ({"protocol": "tcp", "ports": "ssh"}, "ports"),
        ({"protocol": "icmpv6", "ports": "22"}, "ports"),
        ({"protocol": "tcp", "source": "2001:db8::/129"}, "source"),
        ({"protocol": "tcp", "source": "192.0.2.0/24"}, "source"),
        ({"protocol": "tcp", "source": "example.com"}, "source"),
        ({"protocol": "tcp", "source": "٢٠٠١::/16"}, "source"),
        ({"protocol": "tcp", "extra": 1}, "extra"),
    ],
)
def test_bad_rules_are_refused(api: Api, body: dict, field: str) -> None:
    alice = api.user("alice")
    uuid = alice.post("/v1/vm", VM).json["uuid"]
    answer = alice.post(f"/v1/vm/{uuid}/firewall", body)
    assert answer.status_code == 400 and field in answer.json["error"], answer.json
    assert "firewall" not in api.store.get(keys.vm(uuid)).value


def test_another_users_vm(api: Api) -> None:
    uuid = api.user("alice").post("/v1/vm", VM).json["uuid"]
    bob = api.user("bob")
    assert bob.get(f"/v1/vm/{uuid}/firewall").status_code == 403
    assert bob.post(f"/v1/vm/{uuid}/firewall", {"protocol": "any"}).status_code == 403
    assert bob.get("/v1/vm/not-a-vm/firewall").status_code == 404
    assert "firewall" not in api.store.get(keys.vm(uuid)).value
