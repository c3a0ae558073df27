"""Pagination of list endpoints, the owner index of VMs (and its migration), and the VNI and /64
cursors, against a real etcd."""

import base64
import ipaddress

import pytest

from common.store import keys
from tests.conftest import Api, ApiClient
from tests.test_ssh_keys import make_key
from ucloud_api import vms
from ucloud_api.paging import HEADER

VM = {"name": "web", "cpu": 1, "ram": "128MiB", "os_ssd": "64MiB", "image": "tiny"}


def _all_pages(client: ApiClient, path: str, limit: int, **extra: str) -> tuple[list, int]:
    """Every item, following the continue tokens; and how many requests it took."""
    items: list = []
    token = None
    requests = 0
    while True:
        query = {"limit": str(limit), **extra, **({"continue": token} if token else {})}
        answer = client.get(path, query_string=query)
        requests += 1
        assert answer.status_code == 200, answer.json
        assert isinstance(answer.json, list) and len(answer.json) <= limit
        items += answer.json
        token = answer.headers.get(HEADER)
        if token is None:
            return items, requests


def test_vm_list_pages(api: Api) -> None:
    alice = api.user("alice")
    created = sorted(alice.post("/v1/vm", {**VM, "name": f"v{i}"}).json["uuid"] for i in range(7))
    whole = alice.get("/v1/vm")
    assert HEADER not in whole.headers and sorted(v["uuid"] for v in whole.json) == created
    items, requests = _all_pages(alice, "/v1/vm", 3)
    assert [v["uuid"] for v in items] == created and requests == 3
    items, requests = _all_pages(alice, "/v1/vm", 7)
    assert len(items) == 7 and requests == 1  # no token when nothing follows
    # the admin pages through everything, or through one owner's
    api.user("bob").post("/v1/vm", VM)
    assert len(_all_pages(api.admin, "/v1/vm", 2)[0]) == 8
    owner_pages = _all_pages(api.admin, "/v1/vm", 2, owner="alice")[0]
    assert [v["uuid"] for v in owner_pages] == created


@pytest.mark.parametrize(
    "query",
    [
        {"limit": "0"},
        {"limit": "1001"},
        {"limit": "-1"},
        {"limit": "x"},
        {"continue": "%%%"},
        {"continue": base64.urlsafe_b64encode(b"/v1/vm-owner/bob/x").decode()},
        {"continue": base64.urlsafe_b64encode(b"\xff\xfe").decode()},
    ],
)
def test_bad_limit_or_token_is_400(api: Api, query: dict) -> None:
    alice = api.user("alice")
    for path in ("/v1/vm", "/v1/network", "/v1/user/ssh-key", "/v1/image"):
        answer = alice.get(path, query_string=query)
        assert answer.status_code == 400, (path, query, answer.json)
        assert ("limit" in answer.json["error"]) == ("limit" in query)


def test_every_list_endpoint_pages(api: Api) -> None:
    alice = api.user("alice")
    for i in range(5):
        assert alice.post("/v1/network", {"name": f"n{i}"}).status_code == 201
        key = {"name": f"k{i}", "key": make_key(i + 1)}
        assert alice.post("/v1/user/ssh-key", key).status_code == 201
        api.user(f"user{i}")
    for port in range(5):
        rule = {"protocol": "tcp", "ports": str(port + 1)}
        vm = alice.get("/v1/vm").json or [alice.post("/v1/vm", VM).json]
        assert alice.post(f"/v1/vm/{vm[0]['uuid']}/firewall", rule).status_code == 201
    for client, path in (
        (alice, "/v1/network"),
        (alice, "/v1/user/ssh-key"),
        (alice, f"/v1/vm/{vm[0]['uuid']}/firewall"),
        (api.admin, "/v1/user"),
        (alice, "/v1/image"),
    ):
        whole = client.get(path).json
        paged, requests = _all_pages(client, path, 2)
        assert sorted(map(str, paged)) == sorted(map(str, whole)), path
        assert requests == max(1, (len(whole) + 1) // 2), path


def test_a_users_vm_list_reads_only_their_vms(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    alice = api.user("alice")
    mine = alice.post("/v1/vm", VM).json["uuid"]
    bob_vm = api.user("bob").post("/v1/vm", VM).json
    # many VMs of another owner, stored directly (the index entries as the API writes them)
    for i in range(300):
        record = {**bob_vm, "uuid": f"bob-{i:04d}"}
        api.store.put(keys.vm(record["uuid"]), record)
        api.store.put(keys.vm_owner("bob", record["uuid"]), {})
    pages: list[str] = []
    read: list[str] = []
    page, get_many = api.store.page, api.store.get_many
    monkeypatch.setattr(api.store, "page", lambda p, *a: pages.append(p) or page(p, *a))
    monkeypatch.setattr(api.store, "get_many", lambda k: read.extend(k) or get_many(k))
    monkeypatch.setattr(api.store, "list", None)  # no listing at all
    answer = alice.get("/v1/vm")
    assert [v["uuid"] for v in answer.json] == [mine]
    assert pages == [keys.vms_of("alice")] and read == [keys.vm(mine)]


def test_migration_indexes_vms_stored_before_the_index(api: Api) -> None:
    alice = api.user("alice")
    uuids = [alice.post("/v1/vm", {**VM, "name": f"v{i}"}).json["uuid"] for i in range(3)]
    api.store.delete(keys.VM_OWNER, prefix=True)  # as data of an earlier version
    assert alice.get("/v1/vm").json == []
    assert vms.index_owners(api.store) == 3
    assert vms.index_owners(api.store) == 0  # idempotent
    assert sorted(v["uuid"] for v in alice.get("/v1/vm").json) == sorted(uuids)
    # and at API start: a new app indexes what it finds
    api.store.delete(keys.vm_owner("alice", uuids[0]))
    from ucloud_api.app import close_app, create_app

    close_app(create_app(api.config, store=api.store))
    assert api.store.get(keys.vm_owner("alice", uuids[0])) is not None
    # released VMs lose their entry with their record
    alice.delete(f"/v1/vm/{uuids[0]}")
    assert api.store.get(keys.vm_owner("alice", uuids[0])) is None


def test_freed_vnis_and_prefixes_are_reused_after_wrapping(api: Api) -> None:
    api.config["network_vnis"] = (100, 103)
    api.config["network_prefixes"] = ipaddress.IPv6Network("fd00::/62")  # four /64s
    alice = api.user("alice")
    got = [alice.post("/v1/network", {"name": f"n{i}"}).json for i in range(3)]
    assert [n["vni"] for n in got] == [100, 101, 102]
    assert api.store.get(keys.VNI_NEXT).value == {"next": 103}
    assert alice.delete("/v1/network/n0").status_code == 200
    assert alice.delete("/v1/network/n1").status_code == 200
    # the cursor goes on to 103 first, then wraps around to the freed 100 and 101
    later = [alice.post("/v1/network", {"name": f"m{i}"}).json for i in range(3)]
    assert [n["vni"] for n in later] == [103, 100, 101]
    assert [n["prefix"] for n in later] == ["fd00:0:0:3::/64", "fd00::/64", "fd00:0:0:1::/64"]
    full = alice.post("/v1/network", {"name": "x"})
    assert full.status_code == 409 and "exhausted" in full.json["error"]


def test_cursor_outside_a_changed_range_starts_over(api: Api) -> None:
    api.store.put(keys.VNI_NEXT, {"next": 9999})
    api.config["network_vnis"] = (200, 300)
    assert api.user("alice").post("/v1/network", {"name": "n"}).json["vni"] == 200
