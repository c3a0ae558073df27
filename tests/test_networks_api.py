"""Networks and address management through the API, against a real etcd."""

import ipaddress
import threading

from common import ipam
from common.store import keys
from tests.conftest import Api

VM = {"name": "web", "cpu": 1, "ram": "128MiB", "os_ssd": "64MiB", "image": "tiny"}


def test_eui64_matches_rfc4291() -> None:
    assert ipam.eui64("2001:db8:1:2::/64", "52:54:00:12:34:56") == "2001:db8:1:2:5054:ff:fe12:3456"
    assert ipam.eui64("fd00::/64", "02:00:00:00:00:01") == "fd00::ff:fe00:1"


def test_create_list_show_delete(api: Api) -> None:
    alice = api.user("alice")
    net = alice.post("/v1/network", {"name": "net1"})
    assert net.status_code == 201, net.json
    record = net.json
    assert record["owner"] == "alice" and record["status"] == "ACTIVE"
    prefix = ipaddress.IPv6Network(record["prefix"])
    assert prefix.prefixlen == 64 and prefix.subnet_of(api.config.network_prefixes)
    assert 100 <= record["vni"] <= 65535 and record["mtu"] == api.config.tenant_mtu
    assert alice.get("/v1/network/net1").json["vni"] == record["vni"]
    assert [n["name"] for n in alice.get("/v1/network").json] == ["net1"]
    # names are unique per owner, not globally
    assert alice.post("/v1/network", {"name": "net1"}).status_code == 409
    bob = api.user("bob")
    other = bob.post("/v1/network", {"name": "net1"}).json
    assert other["vni"] != record["vni"] and other["prefix"] != record["prefix"]
    assert [n["owner"] for n in bob.get("/v1/network").json] == ["bob"]
    assert alice.delete("/v1/network/net1").status_code == 200
    assert alice.get("/v1/network/net1").status_code == 404
    assert api.store.get(f"{keys.VNI}{record['vni']}") is None
    # the search goes on after the last one claimed (the freed ones come back when it wraps
    # around: test_freed_vnis_and_prefixes_are_reused_after_wrapping)
    again = alice.post("/v1/network", {"name": "net2"}).json
    assert again["vni"] == other["vni"] + 1


def test_bad_network_input(api: Api) -> None:
    alice = api.user("alice")
    for body, status in (
        ({}, 400),
        ({"name": "bad name"}, 400),
        ({"name": 5}, 400),
        ({"name": "x", "extra": 1}, 400),
    ):
        assert alice.post("/v1/network", body).status_code == status
    assert alice.delete("/v1/network/nope").status_code == 404
    assert api.store.count(keys.NETWORK) == 0


def test_concurrent_creates_never_share_a_vni_or_prefix(api: Api) -> None:
    users = [api.user(f"u{i}") for i in range(8)]
    results: list = []

    def create(user) -> None:
        for n in range(3):
            results.append(user.post("/v1/network", {"name": f"n{n}"}).json)

    threads = [threading.Thread(target=create, args=(u,)) for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 24
    assert len({r["vni"] for r in results}) == 24 and len({r["prefix"] for r in results}) == 24


def test_vni_exhaustion_is_409(api: Api) -> None:
    api.config["network_vnis"] = (100, 101)
    alice = api.user("alice")
    assert alice.post("/v1/network", {"name": "a"}).status_code == 201
    assert alice.post("/v1/network", {"name": "b"}).status_code == 201
    full = alice.post("/v1/network", {"name": "c"})
    assert full.status_code == 409 and "exhausted" in full.json["error"]


def test_vm_nics_attach_detach_and_delete_refused_while_attached(api: Api) -> None:
    alice = api.user("alice")
    net1 = alice.post("/v1/network", {"name": "net1"}).json
    net2 = alice.post("/v1/network", {"name": "net2"}).json
    vm = alice.post("/v1/vm", {**VM, "networks": ["net1"]})
    assert vm.status_code == 201, vm.json
    [nic] = vm.json["networks"]
    assert nic["network"] == "net1" and nic["vni"] == net1["vni"] and nic["slot"] == 0
    assert int(nic["mac"].split(":")[0], 16) & 0x03 == 0x02  # locally administered unicast
    assert nic["ipv6"] == ipam.eui64(net1["prefix"], nic["mac"])
    assert api.store.get(keys.mac(nic["mac"])).value == {"vm": vm.json["uuid"]}
    uuid = vm.json["uuid"]
    deleting = alice.delete("/v1/network/net1")
    assert deleting.status_code == 409 and "attached" in deleting.json["error"]
    assert alice.get("/v1/network/net1").json["status"] == "ACTIVE"
    attached = alice.post(f"/v1/vm/{uuid}/networks", {"network": "net2"})
    assert attached.status_code == 202
    assert [(n["network"], n["slot"]) for n in attached.json["networks"]] == [
        ("net1", 0),
        ("net2", 1),
    ]
    assert attached.json["networks"][1]["ipv6"].startswith(net2["prefix"].split("::")[0])
    assert alice.post(f"/v1/vm/{uuid}/networks", {"network": "net2"}).status_code == 409
    assert alice.post(f"/v1/vm/{uuid}/networks", {"network": "nope"}).status_code == 404
    assert alice.post(f"/v1/vm/{uuid}/networks", {}).status_code == 400
    detached = alice.delete(f"/v1/vm/{uuid}/networks/net1")
    assert detached.status_code == 202
    assert [n["network"] for n in detached.json["networks"]] == ["net2"]
    assert api.store.get(keys.mac(nic["mac"])) is None
    assert alice.delete(f"/v1/vm/{uuid}/networks/net1").status_code == 404
    assert alice.delete("/v1/network/net1").status_code == 200
    # another user cannot use or see alice's networks
    bob = api.user("bob")
    assert bob.post("/v1/vm", {**VM, "networks": ["net2"]}).status_code == 404
    assert bob.post(f"/v1/vm/{uuid}/networks", {"network": "net2"}).status_code == 403
    # deleting the (never placed) VM releases its MACs
    mac = detached.json["networks"][0]["mac"]
    alice.delete(f"/v1/vm/{uuid}")
    assert api.store.get(keys.mac(mac)) is None and api.store.get(keys.vm(uuid)) is None
