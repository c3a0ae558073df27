"""Per-user quotas through the API, against a real etcd: every quota refuses with its name and
writes nothing, releases free it, concurrent creates at the limit cannot both pass, the admin
overrides limits."""

import threading

import pytest

from common import model
from common.store import Transaction, keys
from tests.conftest import Api
from tests.test_ssh_keys import make_key

VM = {"name": "web", "cpu": 1, "ram": "128MiB", "os_ssd": "64MiB", "image": "tiny"}
MiB = 1024**2


def _snapshot(api: Api) -> dict[str, bytes]:
    return {e.key: e.raw for e in api.store.list("/v1/").entries}


@pytest.mark.parametrize(
    ("limit", "value", "spec", "named"),
    [
        ("quota_vms", 1, {}, "at most 1 VMs (you have 1)"),
        ("quota_cpu", 2, {"cpu": 2}, "at most 2 vCPUs (you have 2, this asks for 2)"),
        ("quota_ram", 200 * MiB, {"ram": "128MiB"}, "bytes of RAM"),
        ("quota_disk", 100 * MiB, {"os_ssd": "64MiB"}, "bytes of disk"),
        ("quota_user_data", 5, {"user_data": "abc"}, "at most 5 bytes of user data"),
    ],
)
def test_vm_quotas(api: Api, limit: str, value: int, spec: dict, named: str) -> None:
    api.config[limit] = value
    alice = api.user("alice")
    first = alice.post("/v1/vm", {**VM, **spec})
    assert first.status_code == 201, first.json
    before = _snapshot(api)
    refused = alice.post("/v1/vm", {**VM, **spec, "name": "web2"})
    assert refused.status_code == 403, refused.json
    assert refused.json["error"].startswith("quota: ") and named in refused.json["error"]
    assert _snapshot(api) == before  # nothing written
    # another user has a quota of their own
    assert api.user("bob").post("/v1/vm", {**VM, **spec}).status_code == 201
    # deleting the (never placed) VM frees its share
    assert alice.delete(f"/v1/vm/{first.json['uuid']}").status_code == 202
    assert api.store.get(keys.vm(first.json["uuid"])) is None
    assert alice.post("/v1/vm", {**VM, **spec, "name": "web2"}).status_code == 201


def test_usage_counts_and_release_by_the_vm_agent(api: Api) -> None:
    alice = api.user("alice")
    vm = alice.post("/v1/vm", {**VM, "cpu": 3, "hdd": ["1MiB"], "user_data": "hello"}).json
    usage = alice.get("/v1/user/alice/quota").json["usage"]
    assert usage == {
        "vms": 1,
        "cpu": 3,
        "ram": 128 * MiB,
        "disk": 65 * MiB,
        "networks": 0,
        "ssh_keys": 0,
        "user_data": 5,
    }
    # A placed VM is released by its host's agent, with common/model.release as the agent does.
    api.store.update(keys.vm(vm["uuid"]), lambda v: {**v, "host": "h1", "status": "RUNNING"})

    def release(txn: Transaction) -> None:
        model.release(txn, txn.get(keys.vm(vm["uuid"])).value)

    api.store.transact(release)
    assert api.store.get(keys.vm_owner("alice", vm["uuid"])) is None
    assert set(alice.get("/v1/user/alice/quota").json["usage"].values()) == {0}


def test_network_quota(api: Api) -> None:
    api.config["quota_networks"] = 1
    alice = api.user("alice")
    assert alice.post("/v1/network", {"name": "n1"}).status_code == 201
    before = _snapshot(api)
    refused = alice.post("/v1/network", {"name": "n2"})
    assert refused.status_code == 403
    assert refused.json["error"] == "quota: at most 1 networks (you have 1)"
    assert _snapshot(api) == before
    assert alice.delete("/v1/network/n1").status_code == 200
    assert alice.post("/v1/network", {"name": "n2"}).status_code == 201


def test_ssh_key_quota(api: Api) -> None:
    api.config["quota_ssh_keys"] = 1
    alice = api.user("alice")
    assert alice.post("/v1/user/ssh-key", {"name": "k1", "key": make_key(1)}).status_code == 201
    before = _snapshot(api)
    refused = alice.post("/v1/user/ssh-key", {"name": "k2", "key": make_key(2)})
    assert refused.status_code == 403 and "at most 1 ssh keys" in refused.json["error"]
    assert _snapshot(api) == before
    assert alice.delete("/v1/user/ssh-key/k1").status_code == 200
    assert alice.post("/v1/user/ssh-key", {"name": "k2", "key": make_key(2)}).status_code == 201


def test_concurrent_creates_at_the_limit_one_wins(api: Api) -> None:
    api.config["quota_vms"] = 3
    api.config["quota_networks"] = 2
    alice = api.user("alice")
    assert alice.post("/v1/vm", {**VM, "name": "a"}).status_code == 201
    assert alice.post("/v1/vm", {**VM, "name": "b"}).status_code == 201
    assert alice.post("/v1/network", {"name": "first"}).status_code == 201
    answers: list[int] = []

    def create(path: str, body: dict) -> None:
        answers.append(alice.post(path, body).status_code)

    for path, body in (("/v1/vm", {**VM, "name": "c"}), ("/v1/network", {"name": "n"})):
        answers.clear()
        threads = [
            threading.Thread(target=create, args=(path, {**body, "name": f"{body['name']}{i}"}))
            for i in range(6)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(answers) == [201, 403, 403, 403, 403, 403], path
    assert api.store.count(keys.vms_of("alice")) == 3
    assert api.store.count(f"{keys.NETWORK}alice/") == 2
    usage = alice.get("/v1/user/alice/quota").json["usage"]
    assert (usage["vms"], usage["networks"]) == (3, 2)


def test_admin_override(api: Api) -> None:
    alice = api.user("alice")
    shown = alice.get("/v1/user/alice/quota")
    assert shown.status_code == 200
    assert shown.json["limits"]["vms"] == 50 and shown.json["overrides"] == {}
    assert shown.json["limits"]["ram"] == 256 * 1024**3
    # only the admin sets quotas; a user sees only their own
    assert alice.request("PUT", "/v1/user/alice/quota", {"vms": 99}).status_code == 403
    assert alice.get("/v1/user/admin/quota").status_code == 403
    assert api.user("bob").get("/v1/user/alice/quota").status_code == 403
    for bad in ({"vms": -1}, {"vms": "x"}, {"nope": 1}, {"ram": "lots"}):
        assert api.admin.request("PUT", "/v1/user/alice/quota", bad).status_code == 400
    changed = api.admin.request("PUT", "/v1/user/alice/quota", {"vms": 1, "ram": "1GiB"})
    assert changed.status_code == 200, changed.json
    assert changed.json["limits"]["vms"] == 1 and changed.json["limits"]["ram"] == 1024**3
    assert changed.json["overrides"] == {"vms": 1, "ram": 1024**3}
    assert alice.post("/v1/vm", VM).status_code == 201
    refused = alice.post("/v1/vm", {**VM, "name": "two"})
    assert refused.status_code == 403 and "at most 1 VMs" in refused.json["error"]
    # null goes back to the default
    reset = api.admin.request("PUT", "/v1/user/alice/quota", {"vms": None})
    assert reset.json["overrides"] == {"ram": 1024**3} and reset.json["limits"]["vms"] == 50
    assert alice.post("/v1/vm", {**VM, "name": "two"}).status_code == 201
    assert api.admin.get("/v1/user/alice/quota").json["usage"]["vms"] == 2


def test_usage_of_data_from_before_quotas_is_counted(api: Api) -> None:
    """No usage record (VMs, networks, keys stored before quotas): counted at first use."""
    api.config["quota_vms"] = 2
    alice = api.user("alice")
    assert alice.post("/v1/vm", VM).status_code == 201
    assert alice.post("/v1/network", {"name": "n1"}).status_code == 201
    api.store.delete(keys.usage("alice"))
    assert alice.get("/v1/user/alice/quota").json["usage"]["vms"] == 1
    assert alice.post("/v1/vm", {**VM, "name": "two"}).status_code == 201
    assert alice.post("/v1/vm", {**VM, "name": "three"}).status_code == 403
    assert api.store.get(keys.usage("alice")).value["networks"] == 1
