"""The ungleich-otp backend against an ungleich-otp verify endpoint over real HTTP."""

import pyotp

from common.store import keys
from tests import otp_server
from tests.conftest import make_config
from tests.test_ssh_keys import make_key
from ucloud_api.app import close_app, create_app

USER_SEED = pyotp.random_base32()
UCLOUD_SEED = pyotp.random_base32()
ADMIN_SEED = pyotp.random_base32()


def headers(name: str, realm: str, token: str) -> dict[str, str]:
    return {"X-Ucloud-Name": name, "X-Ucloud-Realm": realm, "X-Ucloud-Token": token}


def ungleich_config(etcd_server, tmp_path, url: str, **extra: object):
    """ucloud authenticating at the OTP server at `url` as ucloud/ungleich-auth."""
    return make_config(
        etcd_server,
        tmp_path,
        auth_backend="ungleich-otp",
        otp_server=url,
        otp_verify_name="ucloud",
        otp_verify_realm="ungleich-auth",
        **{"otp_verify_seed": UCLOUD_SEED, **extra},
    )


def test_ungleich_otp_backend(store, etcd_server, tmp_path) -> None:
    accounts = {
        ("alice", "ungleich-user"): USER_SEED,
        ("ucloud", "ungleich-auth"): UCLOUD_SEED,
        ("root", "ucloud-admin"): ADMIN_SEED,
    }
    with otp_server.running(accounts, {("ucloud", "ungleich-auth")}) as url:
        config = ungleich_config(etcd_server, tmp_path, url)
        app = create_app(config, store=store)
        client = app.test_client()
        good = headers("alice", "ungleich-user", pyotp.TOTP(USER_SEED).now())
        assert client.get("/v1/vm", headers=good).status_code == 200
        wrong = headers(
            "alice",
            "ungleich-user",
            "000000" if pyotp.TOTP(USER_SEED).now() != "000000" else "111111",
        )
        assert client.get("/v1/vm", headers=wrong).status_code == 401
        expired = headers(
            "alice", "ungleich-user", pyotp.TOTP(USER_SEED).at(__import__("time").time() - 300)
        )
        assert client.get("/v1/vm", headers=expired).status_code == 401
        assert client.get("/v1/vm").status_code == 401
        # a code the OTP server accepted is accepted once by ucloud
        replayed = client.get("/v1/vm", headers=good)
        assert replayed.status_code == 401 and replayed.json["reason"] == "token_reused"
        # the admin realm is recognised, also through a session; user creation belongs to the
        # OTP server
        admin = headers("root", "ucloud-admin", pyotp.TOTP(ADMIN_SEED).now())
        session = client.post("/v1/session", headers=admin)
        assert session.status_code == 201, session.json
        bearer = {"Authorization": f"Bearer {session.json['token']}"}
        assert client.get("/v1/host", headers=bearer).status_code == 200
        answer = client.post("/v1/user", json={"name": "bob", "realm": "x"}, headers=bearer)
        assert answer.status_code == 400 and "ungleich-otp" in answer.json["error"]
        assert client.delete("/v1/session", headers=bearer).json == {"revoked": 1}
        assert client.get("/v1/host", headers=bearer).status_code == 401
        # ucloud's own verify credentials wrong: nobody gets in
        config_bad = ungleich_config(
            etcd_server, tmp_path, url, otp_verify_seed=pyotp.random_base32()
        )
        bad_app = create_app(config_bad, store=store)
        assert bad_app.test_client().get("/v1/vm", headers=good).status_code == 401
        close_app(bad_app)
    # the OTP server is down: 503, not 401 and not 500
    answer = client.get("/v1/vm", headers=good)
    assert answer.status_code == 503 and "authentication server" in answer.json["error"]
    close_app(app)


def test_ldap_user_needs_nothing_created_in_ucloud(store, etcd_server, tmp_path, slapd) -> None:
    """Users in the OTP server and LDAP: their directory keys work with no ucloud record."""
    key = make_key(30, comment="frank@ldap")
    slapd.add_user("frank", [key])
    accounts = {("frank", "ungleich-user"): USER_SEED, ("ucloud", "ungleich-auth"): UCLOUD_SEED}
    with otp_server.running(accounts, {("ucloud", "ungleich-auth")}) as url:
        config = ungleich_config(etcd_server, tmp_path, url, **slapd.settings())
        app = create_app(config, store=store)
        frank = headers("frank", "ungleich-user", pyotp.TOTP(USER_SEED).now())
        listed = app.test_client().get("/v1/user/ssh-key", headers=frank)
        assert listed.status_code == 200 and [k["key"] for k in listed.json] == [key]
        assert store.get(keys.user_account("frank")) is None
        close_app(app)


def test_a_name_that_cannot_be_a_key_is_refused(store, etcd_server, tmp_path) -> None:
    """The OTP server accepts `victim/ssh-key/x`; as a key prefix it would store a key under
    another user's name (which the victim's VMs then receive). Refused, nothing written."""
    forged = ("victim/ssh-key/x", "../admin", "a" * 64)
    accounts = {(name, "ungleich-user"): USER_SEED for name in forged}
    accounts[("ucloud", "ungleich-auth")] = UCLOUD_SEED
    with otp_server.running(accounts, {("ucloud", "ungleich-auth")}) as url:
        app = create_app(ungleich_config(etcd_server, tmp_path, url), store=store)
        client = app.test_client()
        before = store.list("/v1/").revision
        for name in forged:
            answer = client.post(
                "/v1/user/ssh-key",
                json={"name": "k", "key": make_key(1)},
                headers=headers(name, "ungleich-user", pyotp.TOTP(USER_SEED).now()),
            )
            assert answer.status_code == 401 and "not a valid name" in answer.json["error"]
        assert store.list("/v1/").revision == before
        close_app(app)
