"""The REST API against a real etcd: every endpoint, every class of bad input, auth, ownership."""

import time

import pyotp
import pytest

from common.poll import poll
from common.store import Store, keys
from tests.conftest import Api, make_config, serving_api, truncated_qcow2

VM = {"name": "web1", "cpu": 2, "ram": "2GB", "os_ssd": "10GiB", "image": "tiny"}


def test_health_metrics_openapi_need_no_credentials(api: Api) -> None:
    client = api.app.test_client()
    assert client.get("/healthz").json == {"status": "ok"}
    metrics = client.get("/metrics")
    assert b"ucloud_api_requests_total" in metrics.data
    assert metrics.headers["Content-Type"].count("charset") == 1
    spec = client.get("/openapi.json").json
    assert spec["openapi"].startswith("3.")
    assert {"/v1/vm", "/v1/vm/{uuid}", "/v1/image", "/v1/host", "/v1/user", "/v1/session"} <= set(
        spec["paths"]
    )
    assert (
        "cpu"
        in spec["paths"]["/v1/vm"]["post"]["requestBody"]["content"]["application/json"]["schema"][
            "properties"
        ]
    )


def test_create_show_list_vm(api: Api) -> None:
    alice = api.user("alice")
    created = alice.post("/v1/vm", {**VM, "hdd": ["1 GiB", 2048 * 1024 * 1024]})
    assert created.status_code == 201, created.json
    vm = created.json
    assert vm["specs"] == {
        "cpu": 2,
        "ram": 2_000_000_000,
        "os_ssd": 10 * 1024**3,
        "hdd": [1024**3, 2 * 1024**3],
    }
    assert vm["status"] == "PENDING" and vm["desired"] == "running" and vm["host"] is None
    assert vm["owner"] == "alice" and vm["name"] == "web1" and vm["networks"] == []
    for field in ("uuid", "image", "log", "created"):
        assert field in vm
    # stored as JSON in etcd, sizes as integers of bytes
    assert api.store.get(keys.vm(vm["uuid"])).value["specs"]["ram"] == 2_000_000_000
    assert alice.get(f"/v1/vm/{vm['uuid']}").json["uuid"] == vm["uuid"]
    assert [v["uuid"] for v in alice.get("/v1/vm").json] == [vm["uuid"]]


def test_image_by_uuid_and_single_hdd(api: Api) -> None:
    image = api.admin.get("/v1/image").json[0]
    answer = api.user("bob").post("/v1/vm", {**VM, "image": image["uuid"], "hdd": "5GB"})
    assert answer.status_code == 201
    assert answer.json["specs"]["hdd"] == [5_000_000_000]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"name": None}, "missing field(s): name"),
        ({"cpu": None, "ram": None}, "missing field(s): cpu, ram"),
        ({"colour": "blue"}, "unknown field(s): colour"),
        ({"ram": "2 parsecs"}, "unknown unit"),
        ({"ram": "lots"}, "cannot parse"),
        ({"os_ssd": -5}, "must be greater than zero"),
        ({"os_ssd": "-5GB"}, "cannot parse"),
        ({"ram": "1MiB"}, "ram: must be between"),
        ({"cpu": 0}, "cpu: must be between 1 and 128"),
        ({"cpu": "2"}, "cpu: expected an integer, got string"),
        ({"cpu": True}, "cpu: expected an integer, got boolean"),
        ({"cpu": 2.5}, "cpu: expected an integer, got number"),
        ({"name": 7}, "name: expected a string"),
        ({"name": "bad name!"}, "not a valid name"),
        ({"hdd": ["1GB", "x"]}, "hdd[1]: cannot parse"),
        ({"hdd": ["1GB"] * 9}, "at most 8 entries"),
        ({"os_ssd": "1MiB"}, "smaller than image"),
        ({"user_data": "x" * 70000}, "user_data: at most 65536 bytes"),
        ({"ram": [1]}, "ram: expected a size"),
        ({"name": "web\n"}, "not a valid name"),  # "$" alone would let the newline through
        ({"ram": "\u0666\u0664MiB"}, "cannot parse"),  # Arabic-Indic digits are no size
    ],
)
def test_bad_vm_input_is_400_and_writes_nothing(api: Api, change: dict, message: str) -> None:
    alice = api.user("alice")
    request = {k: v for k, v in {**VM, **change}.items() if v is not None}
    answer = alice.post("/v1/vm", request)
    assert answer.status_code == 400, answer.json
    assert message in answer.json["error"]
    assert api.store.count(keys.VM) == 0


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object, got array"),
        (b'"vm"', "must be a JSON object, got string"),
        (b"", "missing field(s): name, cpu, ram, os_ssd, image"),
    ],
)
def test_malformed_bodies_are_400(api: Api, data: bytes, message: str) -> None:
    alice = api.user("alice")
    answer = alice.client.post(
        "/v1/vm", data=data, headers={**alice.headers(), "Content-Type": "application/json"}
    )
    assert answer.status_code == 400
    assert message in answer.json["error"]
    assert api.store.count(keys.VM) == 0


def test_oversized_body_is_413(api: Api) -> None:
    alice = api.user("alice")
    answer = alice.post("/v1/vm", {**VM, "user_data": "x" * (2 * 1024 * 1024)})
    assert answer.status_code == 413
    assert "too large" in answer.json["error"]
    assert api.store.count(keys.VM) == 0


def test_unknown_image_network_key_are_404(api: Api) -> None:
    alice = api.user("alice")
    for change, message in (
        ({"image": "nope"}, "unknown image"),
        ({"networks": ["n1"]}, "unknown network"),
        ({"ssh_keys": ["k1"]}, "unknown ssh key"),
    ):
        answer = alice.post("/v1/vm", {**VM, **change})
        assert answer.status_code == 404 and message in answer.json["error"]
    assert api.store.count(keys.VM) == 0


def test_unknown_endpoint_and_method(api: Api) -> None:
    alice = api.user("alice")
    assert alice.get("/v1/nothing").status_code == 404
    assert alice.get("/v1/nothing").json["error"] == "no such endpoint"
    refused = alice.request("PUT", "/v1/vm")
    assert refused.status_code == 405 and refused.json["error"]
    assert set(refused.headers["Allow"].replace(" ", "").split(",")) >= {"GET", "POST"}


# -- authentication ------------------------------------------------------------------------


def test_missing_wrong_and_expired_tokens_are_401(api: Api) -> None:
    alice = api.user("alice")
    client = api.app.test_client()
    assert client.get("/v1/vm").status_code == 401
    assert "missing credentials" in client.get("/v1/vm").json["error"]
    base = {"X-Ucloud-Name": "alice", "X-Ucloud-Realm": "users"}
    totp = pyotp.TOTP(alice.seed)
    expired = totp.at(time.time() - 300)
    for token in ("000000" if totp.now() != "000000" else "111111", expired, "abc", ""):
        answer = client.get("/v1/vm", headers={**base, "X-Ucloud-Token": token})
        assert answer.status_code == 401, token
    wrong_realm = {**base, "X-Ucloud-Realm": "other", "X-Ucloud-Token": totp.now()}
    assert client.get("/v1/vm", headers=wrong_realm).status_code == 401
    unknown = {"X-Ucloud-Name": "mallory", "X-Ucloud-Realm": "users", "X-Ucloud-Token": "123456"}
    assert client.get("/v1/vm", headers=unknown).status_code == 401
    partial = {"X-Ucloud-Name": "alice"}
    assert client.get("/v1/vm", headers=partial).status_code == 401


def test_credentials_in_body(api: Api) -> None:
    alice = api.user("alice")
    client = api.app.test_client()
    now = time.time()
    creds = {"name": "alice", "realm": "users", "token": pyotp.TOTP(alice.seed).at(now)}
    answer = client.post(
        "/v1/vm",
        json={**creds, **{k: v for k, v in VM.items() if k != "name"}, "vm_name": "fromBody"},
    )
    assert answer.status_code == 201, answer.json
    assert answer.json["name"] == "fromBody" and answer.json["owner"] == "alice"
    # a code is accepted once: the next step's (valid already) for the next request
    listed = client.get("/v1/vm", json={**creds, "token": pyotp.TOTP(alice.seed).at(now + 30)})
    assert [vm["name"] for vm in listed.json] == ["fromBody"]


# -- ownership -----------------------------------------------------------------------------


def test_users_see_and_change_only_their_own(api: Api) -> None:
    alice, bob = api.user("alice"), api.user("bob")
    vm = alice.post("/v1/vm", VM).json
    assert bob.get("/v1/vm").json == []
    for method, path in (
        ("GET", ""),
        ("POST", "/stop"),
        ("POST", "/start"),
        ("POST", "/reboot"),
        ("DELETE", ""),
    ):
        answer = bob.request(method, f"/v1/vm/{vm['uuid']}{path}")
        assert answer.status_code == 403, (method, path)
    assert api.store.get(keys.vm(vm["uuid"])).value["desired"] == "running"
    # the admin realm sees and acts on everything
    assert [v["uuid"] for v in api.admin.get("/v1/vm").json] == [vm["uuid"]]
    assert api.admin.get(f"/v1/vm/{vm['uuid']}").status_code == 200
    assert [v["uuid"] for v in api.admin.get("/v1/vm?owner=bob").json] == []


def test_admin_only_endpoints(api: Api) -> None:
    alice = api.user("alice")
    assert alice.get("/v1/host").status_code == 403
    assert alice.post("/v1/user", {"name": "eve", "realm": "users"}).status_code == 403
    assert alice.get("/v1/user").status_code == 403
    assert alice.post("/v1/image", {"name": "x", "file": str(api.image_file)}).status_code == 403


# -- desired state -------------------------------------------------------------------------


def test_start_stop_reboot_delete(api: Api) -> None:
    alice = api.user("alice")
    vm = alice.post("/v1/vm", VM).json
    path = f"/v1/vm/{vm['uuid']}"
    stopped = alice.post(f"{path}/stop")
    assert stopped.status_code == 202 and stopped.json["desired"] == "stopped"
    assert alice.post(f"{path}/start").json["desired"] == "running"
    # reboot needs a running VM
    answer = alice.post(f"{path}/reboot")
    assert answer.status_code == 409 and "not running" in answer.json["error"]
    # a VM on a host: delete only requests it
    api.store.update(keys.vm(vm["uuid"]), lambda v: {**v, "host": "h1", "status": "RUNNING"})
    assert alice.post(f"{path}/reboot").json["reboot_requested"]
    deleting = alice.delete(path)
    assert deleting.status_code == 202 and deleting.json["desired"] == "deleted"
    assert api.store.get(keys.vm(vm["uuid"])).value["desired"] == "deleted"
    assert alice.post(f"{path}/start").status_code == 409
    # a VM without a host disappears at once
    other = alice.post("/v1/vm", VM).json
    assert alice.delete(f"/v1/vm/{other['uuid']}").status_code == 202
    assert alice.get(f"/v1/vm/{other['uuid']}").status_code == 404
    assert alice.get("/v1/vm/not-a-uuid").status_code == 404


# -- users, hosts, images ------------------------------------------------------------------


def test_create_user_returns_seed_once(api: Api) -> None:
    created = api.admin.post("/v1/user", {"name": "carol", "realm": "users"})
    assert created.status_code == 201 and len(created.json["seed"]) >= 16
    assert api.admin.post("/v1/user", {"name": "carol", "realm": "users"}).status_code == 409
    listed = api.admin.get("/v1/user").json
    assert {u["name"] for u in listed} == {"admin", "carol"}
    assert all("seed" not in u for u in listed)
    assert api.admin.post("/v1/user", {"name": "x y", "realm": "users"}).status_code == 400
    carol = api.app.test_client().get(
        "/v1/vm",
        headers={
            "X-Ucloud-Name": "carol",
            "X-Ucloud-Realm": "users",
            "X-Ucloud-Token": pyotp.TOTP(created.json["seed"]).now(),
        },
    )
    assert carol.status_code == 200


def test_hosts_listing(api: Api) -> None:
    api.store.put(
        keys.host("h1"),
        {
            "hostname": "h1",
            "status": "ALIVE",
            "capacity": {"cpu": 4, "ram": 8 * 1024**3, "disk": 10**11},
        },
    )
    api.store.put(keys.alive("h1"), {"hostname": "h1"})
    vm = api.user("alice").post("/v1/vm", VM).json
    api.store.update(keys.vm(vm["uuid"]), lambda v: {**v, "host": "h1"})
    hosts = api.admin.get("/v1/host").json
    assert hosts[0]["hostname"] == "h1" and hosts[0]["alive"] is True
    assert hosts[0]["allocated"] == {"cpu": 2, "ram": 2_000_000_000, "disk": 10 * 1024**3, "vms": 1}


def test_image_register_checks_and_delete(api: Api, tmp_path) -> None:
    images = api.admin.get("/v1/image").json
    assert [i["name"] for i in images] == ["tiny"]
    assert images[0]["public"] and images[0]["size"] == 64 * 1024**2
    # duplicate name, missing file, not qcow2, backing file, truncated
    assert (
        api.admin.post("/v1/image", {"name": "tiny", "file": str(api.image_file)}).status_code
        == 409
    )
    assert api.admin.post("/v1/image", {"name": "x", "file": "/nonexistent"}).status_code == 400
    assert api.admin.post("/v1/image", {"name": "x", "file": "relative"}).status_code == 400
    raw = tmp_path / "raw.img"
    raw.write_bytes(b"\0" * 65536)
    answer = api.admin.post("/v1/image", {"name": "x", "file": str(raw)})
    assert answer.status_code == 400 and "qcow2" in answer.json["error"]
    backed = tmp_path / "backed.qcow2"
    import subprocess

    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", "-b", "/etc/passwd", "-F", "raw", str(backed)],
        check=True,
    )
    answer = api.admin.post("/v1/image", {"name": "x", "file": str(backed)})
    assert answer.status_code == 400 and "backing file" in answer.json["error"]
    full = truncated_qcow2(tmp_path / "full.qcow2")
    answer = api.admin.post("/v1/image", {"name": "x", "file": str(full)})
    assert answer.status_code == 400 and "truncated" in answer.json["error"]
    assert [i["name"] for i in api.admin.get("/v1/image").json] == ["tiny"]
    # in use -> 409; unused -> deleted, with its file
    alice = api.user("alice")
    vm = alice.post("/v1/vm", VM).json
    image = images[0]
    assert alice.delete(f"/v1/image/{image['uuid']}").status_code == 403
    assert api.admin.delete(f"/v1/image/{image['uuid']}").status_code == 409
    alice.delete(f"/v1/vm/{vm['uuid']}")
    assert api.admin.delete(f"/v1/image/{image['uuid']}").status_code == 200
    assert api.admin.get("/v1/image").json == []
    import os

    assert not os.path.exists(image["file"])


def test_etcd_away_is_a_quick_503(private_etcd, tmp_path) -> None:
    """Every request waits for etcd at most its deadline, then answers 503 with Retry-After;
    /healthz answers within a second: no worker thread hangs while etcd is away."""
    config = make_config(private_etcd, tmp_path, api_request_deadline=1.0)
    store = Store([private_etcd.endpoint], timeout=0.5, retry_deadline=1.0)
    with serving_api(store, config, tmp_path) as api:
        alice = api.user("alice")
        assert alice.get("/v1/vm").status_code == 200
        private_etcd.kill()
        started = time.monotonic()
        answer = alice.get("/v1/vm")
        assert answer.status_code == 503 and answer.headers["Retry-After"] == "2"
        assert "etcd unavailable" in answer.json["error"]
        assert time.monotonic() - started < 3
        started = time.monotonic()
        health = api.app.test_client().get("/healthz")
        assert health.status_code == 503 and health.json["status"] == "unhealthy"
        assert time.monotonic() - started < 1.5
    store.close()


def test_migration_with_nowhere_to_go_is_409(store, etcd_server, tmp_path) -> None:
    """Before: 202, and the VM stayed MIGRATING with no host for ever."""
    config = make_config(etcd_server, tmp_path, shared_storage="true")
    with serving_api(store, config, tmp_path) as api:
        alice = api.user("alice")
        uuid = alice.post("/v1/vm", VM).json["uuid"]
        store.update(keys.vm(uuid), lambda vm: {**vm, "host": "h1", "status": "RUNNING"})
        for name, maintenance in (("h1", False), ("h2", True)):
            store.put(
                keys.host(name), {"hostname": name, "status": "ALIVE", "maintenance": maintenance}
            )
        refused = alice.post(f"/v1/vm/{uuid}/migrate", {})
        assert refused.status_code == 409 and "nowhere to migrate" in refused.json["error"]
        assert "migrate" not in store.get(keys.vm(uuid)).value
        store.put(keys.host("h3"), {"hostname": "h3", "status": "ALIVE"})
        assert alice.post(f"/v1/vm/{uuid}/migrate", {}).status_code == 202


def wrong(token: str) -> str:
    return "000000" if token != "000000" else "111111"


def test_guessing_a_token_is_stopped(api: Api) -> None:
    """Before: every guess was checked, without limit. Now the 6th failure of an identity
    within the window is refused with 429 without its code being looked at, even a right one;
    other identities are not affected."""
    alice, bob = api.user("alice"), api.user("bob")
    client = api.app.test_client()
    base = {"X-Ucloud-Name": "alice", "X-Ucloud-Realm": "users"}
    for _ in range(api.config.auth_failures_per_identity):
        guess = wrong(pyotp.TOTP(alice.seed).now())
        assert client.get("/v1/vm", headers={**base, "X-Ucloud-Token": guess}).status_code == 401

    def locked() -> bool:
        answer = client.get("/v1/vm", headers=alice.totp_headers())  # even the right code
        return answer.status_code == 429

    assert poll(locked, 5)  # the counter reaches this worker's copy within milliseconds
    answer = client.get("/v1/vm", headers=alice.totp_headers())
    assert 0 < int(answer.headers["Retry-After"]) <= api.config.auth_lockout
    assert "too many failed logins" in answer.json["error"]
    assert bob.get("/v1/vm").status_code == 200


def test_one_address_guessing_many_names_is_stopped(api: Api) -> None:
    carol = api.user("carol")
    assert carol.get("/v1/vm").status_code == 200  # a session made before
    client = api.app.test_client()
    for index in range(api.config.auth_failures_per_address):
        headers = {"X-Ucloud-Name": f"u{index}", "X-Ucloud-Realm": "users", "X-Ucloud-Token": "1"}
        assert client.get("/v1/vm", headers=headers).status_code == 401
    assert poll(lambda: carol.get("/v1/vm").status_code == 429, 5)  # the session too
