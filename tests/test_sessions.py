"""TOTP replay refusal (RFC 6238 5.2) and session tokens (POST/DELETE /v1/session, Authorization:
Bearer), against the real app and etcd."""

import hashlib
import logging
import re
import time

import pyotp
import pytest

from common.auth import ReplayGuard
from common.poll import poll
from common.store import keys
from tests.conftest import Api, make_config, serving_api
from ucloud_api.app import close_app, create_app


def totp_headers(name: str, realm: str, code: str) -> dict[str, str]:
    return {"X-Ucloud-Name": name, "X-Ucloud-Realm": realm, "X-Ucloud-Token": code}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def fresh_step(needed: float = 8.0) -> float:
    """Now, once at least `needed` seconds of the current 30 s step are left (waiting for the
    next step if not): a test that uses the codes of the steps around now keeps them valid."""
    left = 30 - time.time() % 30
    if left < needed:
        time.sleep(left + 0.05)
    return time.time()


# -- replay --------------------------------------------------------------------------------


def test_a_totp_code_is_accepted_once(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    """Before: the same code worked for every request for ~90 s."""
    alice = api.user("alice")
    client = api.app.test_client()
    code = pyotp.TOTP(alice.seed).at(fresh_step())
    headers = totp_headers("alice", "users", code)
    assert client.get("/v1/vm", headers=headers).status_code == 200
    with caplog.at_level(logging.WARNING):
        again = client.get("/v1/vm", headers=headers)
    assert again.status_code == 401
    assert "already used" in again.json["error"] and again.json["reason"] == "token_reused"
    assert again.headers["WWW-Authenticate"].startswith("Bearer")
    audit = [r.getMessage() for r in caplog.records if "replay" in r.getMessage()]
    assert audit and "users/alice" in audit[0] and "127.0.0.1" in audit[0]
    assert all(code not in r.getMessage() for r in caplog.records)
    # the next step's code is still good (the window is one step either side)
    following = pyotp.TOTP(alice.seed).at(time.time() + 30)
    answer = client.get("/v1/vm", headers=totp_headers("alice", "users", following))
    assert answer.status_code == 200
    # body credentials are claimed the same way
    body = {"name": "alice", "realm": "users", "token": following}
    assert client.get("/v1/vm", json=body).status_code == 401


def test_the_same_code_works_for_another_identity(api: Api) -> None:
    alice, bob = api.user("alice"), api.user("bob")
    api.store.update(keys.user_account("bob"), lambda account: {**account, "seed": alice.seed})
    client = api.app.test_client()
    code = pyotp.TOTP(alice.seed).now()
    assert client.get("/v1/vm", headers=totp_headers("alice", "users", code)).status_code == 200

    def bob_gets_in() -> bool:  # bob's new seed reaches the worker's account copy
        answer = client.get("/v1/vm", headers=totp_headers("bob", "users", code))
        return answer.status_code == 200

    assert poll(bob_gets_in, 5)
    assert bob.seed != alice.seed


def test_used_codes_are_kept_on_a_shared_lease(api: Api) -> None:
    alice, bob = api.user("alice"), api.user("bob")
    client = api.app.test_client()
    for user in (alice, bob):
        assert client.get("/v1/vm", headers=user.totp_headers()).status_code == 200
    claims = api.store.list(keys.OTP_USED).entries  # the fixture's admin made a session too
    assert {e.key.rsplit("/", 2)[1] for e in claims} == {"admin", "alice", "bob"}
    assert len({e.lease for e in claims}) == 1 and claims[0].lease != 0
    guard = ReplayGuard(api.store, api.config.auth_window)
    assert guard.remember == 3 * 30 + 30  # the window's 3 steps, and 30 s to spare
    # the lease outlives the code: granted for twice that, used for the first half
    ttl = api.store.keepalive(claims[0].lease, 2)
    assert guard.remember < ttl <= 2 * guard.remember


def test_a_replay_counts_as_a_failed_login_of_its_address(api: Api) -> None:
    """Not of the identity: a replayed code is a right code (it guesses nothing), and the
    user's own clients make replays; a stranger replaying from one address is still stopped."""
    alice = api.user("alice")
    stranger = api.app.test_client()
    stranger.environ_base["REMOTE_ADDR"] = "192.0.2.7"
    start = fresh_step()
    headers = alice.totp_headers()
    assert api.app.test_client().get("/v1/vm", headers=headers).status_code == 200
    for _ in range(api.config.auth_failures_per_address):
        assert stranger.get("/v1/vm", headers=headers).status_code == 401
    assert poll(lambda: stranger.get("/v1/vm", headers=headers).status_code == 429, 5)
    # alice, elsewhere, is not locked out
    following = totp_headers("alice", "users", pyotp.TOTP(alice.seed).at(start + 30))
    assert api.app.test_client().get("/v1/vm", headers=following).status_code == 200


def test_a_lost_lease_is_replaced(api: Api) -> None:
    alice = api.user("alice")
    client = api.app.test_client()
    fresh_step()
    assert client.get("/v1/vm", headers=alice.totp_headers()).status_code == 200
    lease = api.store.list(keys.OTP_USED).entries[0].lease
    api.store.revoke(lease)
    assert api.store.count(keys.OTP_USED) == 0
    later = pyotp.TOTP(alice.seed).at(time.time() + 30)
    answer = client.get("/v1/vm", headers=totp_headers("alice", "users", later))
    assert answer.status_code == 200, answer.json
    claims = api.store.list(keys.OTP_USED).entries
    assert len(claims) == 1 and claims[0].lease not in (0, lease)


# -- sessions ------------------------------------------------------------------------------


def test_session_create_use_revoke(api: Api) -> None:
    alice = api.user("alice")
    client = api.app.test_client()
    created = client.post("/v1/session", headers=alice.totp_headers())
    assert created.status_code == 201, created.json
    token = created.json["token"]
    assert len(token) >= 43 and created.json["ttl"] == api.config.session_ttl == 3600
    assert created.json["expires"].endswith("Z")
    # only the hash is stored, never the token
    entry = api.store.get(keys.session(hashlib.sha256(token.encode()).hexdigest()))
    assert entry is not None and entry.lease != 0
    assert entry.value["name"] == "alice" and entry.value["realm"] == "users"
    assert entry.value["admin"] is False
    everything = api.store.list("/").entries
    assert not any(token.encode() in e.raw or token in e.key for e in everything)
    # the token authenticates, as the user
    vm = client.post(
        "/v1/vm",
        json={"name": "web", "cpu": 1, "ram": "1GiB", "os_ssd": "1GiB", "image": "tiny"},
        headers=bearer(token),
    )
    assert vm.status_code == 201 and vm.json["owner"] == "alice" and vm.json["name"] == "web"
    assert client.get("/v1/host", headers=bearer(token)).status_code == 403
    # revoked: refused at once by this worker
    revoked = client.delete("/v1/session", headers=bearer(token))
    assert revoked.status_code == 200 and revoked.json == {"revoked": 1}
    refused = client.get("/v1/vm", headers=bearer(token))
    assert refused.status_code == 401 and "POST /v1/session" in refused.json["error"]
    assert poll(lambda: client.get("/v1/vm", headers=bearer(token)).status_code == 401, 1)


def test_admin_session(api: Api) -> None:
    assert api.admin.get("/v1/host").status_code == 200  # the fixture's admin uses a session
    assert api.store.count(keys.SESSION) == 1


def test_a_session_made_on_one_worker_works_on_another(api: Api) -> None:
    other = create_app(api.config, store=api.store)
    try:
        alice = api.user("alice")
        token = alice.client.post("/v1/session", headers=alice.totp_headers()).json["token"]
        elsewhere = other.test_client()
        assert elsewhere.get("/v1/vm", headers=bearer(token)).status_code == 200  # at once
        assert alice.client.delete("/v1/session", headers=bearer(token)).json == {"revoked": 1}
        assert poll(lambda: elsewhere.get("/v1/vm", headers=bearer(token)).status_code == 401, 5)
    finally:
        close_app(other)


def test_sessions_expire(store, etcd_server, tmp_path) -> None:
    config = make_config(etcd_server, tmp_path, session_ttl=2)
    with serving_api(store, config, tmp_path) as api:
        alice = api.user("alice")
        created = alice.client.post("/v1/session", headers=alice.totp_headers())
        assert created.json["ttl"] == 2
        token = created.json["token"]
        assert alice.client.get("/v1/vm", headers=bearer(token)).status_code == 200
        time.sleep(2.1)
        answer = alice.client.get("/v1/vm", headers=bearer(token))
        assert answer.status_code == 401
        assert "expired" in answer.json["error"]
        # etcd forgets it by itself (its lease)
        assert poll(lambda: store.count(keys.SESSION) <= 1, 10)  # the fixture admin's may stay


def test_revoke_every_session_of_an_identity(api: Api) -> None:
    alice, bob = api.user("alice"), api.user("bob")
    client = api.app.test_client()
    start = fresh_step()
    first = client.post("/v1/session", headers=alice.totp_headers()).json["token"]
    later = pyotp.TOTP(alice.seed).at(start + 30)
    second = client.post("/v1/session", headers=totp_headers("alice", "users", later))
    second_token = second.json["token"]
    assert bob.get("/v1/vm").status_code == 200
    answer = client.delete("/v1/session?all=1", headers=bearer(first))
    assert answer.json == {"revoked": 2}
    for token in (first, second_token):
        assert client.get("/v1/vm", headers=bearer(token)).status_code == 401
    assert bob.get("/v1/vm").status_code == 200
    # with TOTP credentials (a lost token): ?all=1 only
    bob_next = pyotp.TOTP(bob.seed).at(start + 30)  # bob's current code made his session
    answer = client.delete("/v1/session", headers=totp_headers("bob", "users", bob_next))
    assert answer.status_code == 400
    bob_before = pyotp.TOTP(bob.seed).at(start - 30)
    everything = client.delete(
        "/v1/session?all=1", headers=totp_headers("bob", "users", bob_before)
    )
    assert everything.json == {"revoked": 1}
    assert bob.get("/v1/vm").status_code == 401
    assert client.delete("/v1/session?all=maybe", headers=bearer(first)).status_code == 401
    assert api.user("carol").delete("/v1/session?all=maybe").status_code == 400


def test_a_session_cannot_make_sessions(api: Api) -> None:
    alice = api.user("alice")
    answer = alice.post("/v1/session")
    assert answer.status_code == 403 and "TOTP" in answer.json["error"]


def test_a_deleted_user_loses_its_sessions(api: Api) -> None:
    alice = api.user("alice")
    assert alice.get("/v1/vm").status_code == 200
    api.store.delete(keys.user_account("alice"))
    assert poll(lambda: alice.get("/v1/vm").status_code == 401, 5)
    assert "no longer exists" in alice.get("/v1/vm").json["error"]
    # a new user of the same name is another account: the old session stays dead
    api.user("alice")
    time.sleep(0.2)
    assert alice.get("/v1/vm").status_code == 401


def test_bad_bearer_tokens_count_per_address(api: Api) -> None:
    alice = api.user("alice")
    assert alice.get("/v1/vm").status_code == 200  # her session, made before
    client = api.app.test_client()
    for index in range(api.config.auth_failures_per_address):
        answer = client.get("/v1/vm", headers=bearer(f"{index:043d}"))
        assert answer.status_code == 401, answer.json
        assert "unknown or expired session token" in answer.json["error"]
    # the address is locked out, valid sessions included (TOTP too)
    assert poll(lambda: alice.get("/v1/vm").status_code == 429, 5)
    assert client.get("/v1/vm", headers=alice.totp_headers()).status_code == 429


def test_an_identity_lockout_leaves_its_sessions_alone(api: Api) -> None:
    alice = api.user("alice")
    assert alice.get("/v1/vm").status_code == 200
    client = api.app.test_client()
    right = pyotp.TOTP(alice.seed).now()
    wrong = totp_headers("alice", "users", "000000" if right != "000000" else "111111")
    for _ in range(api.config.auth_failures_per_identity):
        assert client.get("/v1/vm", headers=wrong).status_code == 401
    assert poll(lambda: client.get("/v1/vm", headers=alice.totp_headers()).status_code == 429, 5)
    assert alice.get("/v1/vm").status_code == 200


@pytest.mark.parametrize(
    ("authorization", "message"),
    [
        ("", "unsupported Authorization scheme"),
        ("Basic YWxpY2U6cGFzcw==", "unsupported Authorization scheme"),
        ("Bearer", "empty session token"),
        ("Bearer    ", "empty session token"),
        ("Bearer !!not/a+token", "malformed session token"),
        ("Bearer " + "a" * 500, "malformed session token"),
        ("Bearer a b", "malformed session token"),
    ],
)
def test_bad_authorization_headers_are_401(api: Api, authorization: str, message: str) -> None:
    answer = api.app.test_client().get("/v1/vm", headers={"Authorization": authorization})
    assert answer.status_code == 401 and message in answer.json["error"], answer.json


def test_bearer_and_totp_headers_together_are_400(api: Api) -> None:
    alice = api.user("alice")
    both = {**alice.headers(), **alice.totp_headers()}
    answer = api.app.test_client().get("/v1/vm", headers=both)
    assert answer.status_code == 400 and "not both" in answer.json["error"]
    # a bearer request's body is never read for credentials: `name` is the VM's
    vm = {"name": "alice", "realm": "x", "token": "1", "cpu": 1, "ram": "1GiB"}
    created = alice.post("/v1/vm", {**vm, "os_ssd": "1GiB", "image": "tiny"})
    assert created.status_code == 400 and "realm" in created.json["error"]


def test_every_route_is_in_the_openapi_document(api: Api) -> None:
    spec = api.app.test_client().get("/openapi.json").json
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert spec["paths"]["/v1/session"]["post"]["security"] == [
        {"name": [], "realm": [], "token": []}
    ]
    documented = {
        (re.sub(r"\{[^}]*\}", "{}", path), method.upper())
        for path, operations in spec["paths"].items()
        for method in operations
    }
    served = {
        (re.sub(r"<[^>]*>", "{}", rule.rule), method)
        for rule in api.app.url_map.iter_rules()
        if rule.endpoint != "static"
        for method in rule.methods or ()
        if method not in ("HEAD", "OPTIONS")
    }
    assert served - documented == set()
    assert documented - served == set()
