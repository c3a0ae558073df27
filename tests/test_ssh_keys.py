"""ssh keys through the API: add, list, delete, bad keys, duplicates, ownership, VM data."""

import base64
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from common.store import Store, keys
from tests.conftest import Api, make_config, serving_api
from tests.slapd import Slapd
from ucloud_aio.etcd import EtcdServer

VM = {"name": "web1", "cpu": 1, "ram": "512MiB", "os_ssd": "1GiB", "image": "tiny"}


def make_key(seed: int, kind: str = "ssh-ed25519", comment: str = "me@laptop") -> str:
    """A well-formed public key line (the blob need not be a point on the curve)."""
    name = kind.encode()
    blob = struct.pack(">I", len(name)) + name + struct.pack(">I", 32) + bytes([seed]) * 32
    return f"{kind} {base64.b64encode(blob).decode()} {comment}".strip()


KEY1, KEY2 = make_key(1), make_key(2)


def test_add_list_delete(api: Api) -> None:
    alice = api.user("alice")
    added = alice.post("/v1/user/ssh-key", {"name": "laptop", "key": f"  {KEY1}\n"})
    assert added.status_code == 201, added.json
    assert added.json["key"] == KEY1 and added.json["fingerprint"].startswith("SHA256:")
    assert alice.post("/v1/user/ssh-key", {"name": "desk", "key": KEY2}).status_code == 201
    listed = alice.get("/v1/user/ssh-key").json
    assert [(k["name"], k["source"]) for k in listed] == [("desk", "api"), ("laptop", "api")]
    assert api.user("bob").get("/v1/user/ssh-key").json == []  # only the caller's keys
    assert alice.delete("/v1/user/ssh-key/laptop").status_code == 200
    assert [k["name"] for k in alice.get("/v1/user/ssh-key").json] == ["desk"]
    # the fingerprint claim went with it: the same key may be added again
    assert alice.post("/v1/user/ssh-key", {"name": "again", "key": KEY1}).status_code == 201


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("", "key: empty"),
        ("ssh-foo AAAA", "unsupported key type"),
        ('from="10.0.0.1" ' + KEY1, "unsupported key type"),
        ("ssh-ed25519", "base64 key data is missing"),
        ("ssh-ed25519 not*base64", "not valid base64"),
        (make_key(1).replace("ssh-ed25519", "ssh-rsa", 1), "not a ssh-rsa key"),
        ("ssh-ed25519 " + KEY1.split()[1][:20], "not a ssh-ed25519 key"),
        (KEY1 + "\n" + KEY2, "one key per request"),
        ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn\n-----END", "private key"),
        (make_key(1, comment="a\x07b"), "control characters"),
        ("ssh-rsa " + "A" * 9000, "at most 8192 bytes"),
    ],
)
def test_bad_keys_are_400_and_store_nothing(api: Api, key: str, message: str) -> None:
    alice = api.user("alice")
    answer = alice.post("/v1/user/ssh-key", {"name": "k", "key": key})
    assert answer.status_code == 400 and message in answer.json["error"], answer.json
    assert api.store.count(keys.ssh_keys("alice")) == 0


def test_duplicates_and_bad_names(api: Api) -> None:
    alice = api.user("alice")
    assert alice.post("/v1/user/ssh-key", {"name": "k1", "key": KEY1}).status_code == 201
    same_name = alice.post("/v1/user/ssh-key", {"name": "k1", "key": KEY2})
    assert same_name.status_code == 409 and "named 'k1' already" in same_name.json["error"]
    same_key = alice.post("/v1/user/ssh-key", {"name": "k2", "key": make_key(1, comment="x")})
    assert same_key.status_code == 409 and "stored already, as 'k1'" in same_key.json["error"]
    reserved = alice.post("/v1/user/ssh-key", {"name": "ldap-1", "key": KEY2})
    assert reserved.status_code == 400 and "directory" in reserved.json["error"]
    assert alice.post("/v1/user/ssh-key", {"name": "a/b", "key": KEY2}).status_code == 400
    assert alice.post("/v1/user/ssh-key", {"key": KEY2}).status_code == 400
    assert alice.delete("/v1/user/ssh-key/nope").status_code == 404
    assert alice.delete("/v1/user/ssh-key/ldap-0123").status_code == 409
    # another user may store the same key under the same name
    assert api.user("bob").post("/v1/user/ssh-key", {"name": "k1", "key": KEY1}).status_code == 201


def test_vm_gets_chosen_or_all_keys_and_user_data(api: Api) -> None:
    alice = api.user("alice")
    for name, key in (("k1", KEY1), ("k2", KEY2)):
        assert alice.post("/v1/user/ssh-key", {"name": name, "key": key}).status_code == 201
    every = alice.post("/v1/vm", {**VM, "user_data": "#cloud-config\n"}).json
    assert every["ssh_keys"] == ["k1", "k2"] and "user_data" not in every
    data = api.store.get(keys.vm_data(every["uuid"])).value
    assert data == {
        "ssh_keys": [{"name": "k1", "key": KEY1}, {"name": "k2", "key": KEY2}],
        "user_data": "#cloud-config\n",
    }
    one = alice.post("/v1/vm", {**VM, "name": "web2", "ssh_keys": ["k2"]}).json
    assert api.store.get(keys.vm_data(one["uuid"])).value["ssh_keys"] == [
        {"name": "k2", "key": KEY2}
    ]
    # bob cannot name alice's keys
    answer = api.user("bob").post("/v1/vm", {**VM, "ssh_keys": ["k1"]})
    assert answer.status_code == 404 and "unknown ssh key 'k1'" in answer.json["error"]
    # deleting a VM that never got a host removes its data too
    assert alice.delete(f"/v1/vm/{one['uuid']}").status_code == 202
    assert api.store.get(keys.vm_data(one["uuid"])) is None


@pytest.fixture
def ldap_api(
    store: Store, etcd_server: EtcdServer, tmp_path: Path, slapd: Slapd
) -> Iterator[tuple[Api, Slapd]]:
    config = make_config(etcd_server, tmp_path, **slapd.settings(), ldap_timeout=1)
    with serving_api(store, config, tmp_path) as api:
        yield api, slapd


def test_ldap_keys_are_offered_cached_and_refreshed(ldap_api: tuple[Api, Slapd]) -> None:
    api, slapd = ldap_api
    slapd.add_user("carol", [KEY1, "not a key"])
    carol = api.user("carol")  # local OTP seed; the keys come from LDAP
    assert carol.post("/v1/user/ssh-key", {"name": "own", "key": KEY2}).status_code == 201
    listed = carol.get("/v1/user/ssh-key").json
    assert [(k["source"], k["key"]) for k in listed] == [("api", KEY2), ("ldap", KEY1)]
    ldap_name = listed[1]["name"]
    assert ldap_name.startswith("ldap-") and "cached" not in listed[1]
    assert carol.delete(f"/v1/user/ssh-key/{ldap_name}").status_code == 409
    assert api.user("dave").get("/v1/user/ssh-key").json == []  # not in LDAP: no keys

    slapd.stop()
    listed = carol.get("/v1/user/ssh-key").json
    assert listed[1]["cached"] is True and listed[1]["key"] == KEY1 and listed[1]["cached_at"]
    vm = carol.post("/v1/vm", {**VM, "ssh_keys": [ldap_name]})  # from the cached copy
    assert vm.status_code == 201, vm.json
    # without a cached copy: a clear 503 for the list, the API's own keys for a new VM
    erin = api.user("erin")
    assert erin.post("/v1/user/ssh-key", {"name": "e", "key": make_key(5)}).status_code == 201
    answer = erin.get("/v1/user/ssh-key")
    assert answer.status_code == 503 and slapd.uri in answer.json["error"]
    assert slapd.bind_password not in answer.json["error"]
    created = erin.post("/v1/vm", VM)
    assert created.status_code == 201 and created.json["ssh_keys"] == ["e"]
    named = erin.post("/v1/vm", {**VM, "name": "w2", "ssh_keys": ["ldap-0123456789ab"]})
    assert named.status_code == 503

    slapd.start()
    slapd.set_keys("carol", [make_key(7)])
    listed = carol.get("/v1/user/ssh-key").json
    assert [(k["key"], k.get("cached")) for k in listed[1:]] == [(make_key(7), None)]


def test_admin_lists_local_and_directory_users(ldap_api: tuple[Api, Slapd]) -> None:
    api, slapd = ldap_api
    slapd.add_user("carol", [KEY1])
    slapd.add_user("alice", [])
    api.user("alice")  # alice is local and in LDAP: listed once, as local
    listed = api.admin.get("/v1/user")
    assert listed.status_code == 200 and "Warning" not in listed.headers
    sources = {u["name"]: u["source"] for u in listed.json}
    assert sources == {"admin": "local", "alice": "local", "carol": "ldap"}
    assert all("seed" not in u for u in listed.json)
    slapd.stop()
    listed = api.admin.get("/v1/user")
    assert listed.status_code == 200 and "unavailable" in listed.headers["Warning"]
    assert {u["name"] for u in listed.json} == {"admin", "alice"}
