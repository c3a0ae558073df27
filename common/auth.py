"""TOTP authentication in the ungleich-otp style (docs/api.md).

A caller presents name, realm and a current 6-digit TOTP token. Two backends check it:
- `local`: seeds kept in etcd (/v1/user/<name>/account), RFC 6238, 30 s steps, a small window;
- `ungleich-otp`: the token is POSTed to an ungleich-otp server's /ungleichotp/verify/ together
  with ucloud's own credentials; HTTP 200 means valid.
Seeds are secrets: they are returned once, on creation, and never logged.

A code is accepted once (RFC 6238 5.2): after a backend said yes, `ReplayGuard` claims
/v1/otp-used/<realm>/<name>/<code> create-if-absent in one etcd transaction; when the key exists
the code was used already and the request is refused (TokenReused, 401 with reason
`token_reused`), logged (identity and address, never the code) and counted as a failed login of
the address (common/lockout.py says why not of the identity). The keys sit on a lease shared by
all claims of a worker for a while, granted for twice the time a code can be valid
((2 * auth_window + 1) * 30 s + 30 s) and replaced when half of it has passed, so every claim
outlives its code and the keys vanish by themselves.
Another identity may use the same digits: the key holds realm and name.

Because a code works once, clients do not send one per request: they exchange a code for a
session token (POST /v1/session, common/sessions.py) and send `Authorization: Bearer <token>`.
"""

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Protocol

import pyotp
import requests

from common import validation
from common.config import Config
from common.errors import Conflict, InvalidInput, TokenReused, Unauthenticated, Unavailable
from common.model import now
from common.records import Account
from common.store import Store, keys
from common.store.client import StoreError
from common.store.mirror import Mirror

STEP = 30  # seconds of a TOTP step (RFC 6238's default, and pyotp's)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Credentials:
    name: str
    realm: str
    token: str


@dataclass(frozen=True)
class Caller:
    """Who is asking, once authenticated."""

    name: str
    realm: str
    admin: bool

    def may_access(self, owner: str) -> bool:
        return self.admin or owner == self.name


class OtpBackend(Protocol):
    def verify(self, credentials: Credentials) -> bool: ...

    def account_revision(self, name: str, realm: str) -> int | None:
        """What identifies the account now (None: there is none), stored with a session."""
        ...

    def has_account(self, name: str, realm: str, revision: int) -> bool:
        """Whether the account a session was made for (`revision`) still exists."""
        ...

    def close(self) -> None: ...


class LocalOtp:
    """Seeds in etcd; users created through POST /v1/user.

    With a `mirror` of /v1/user/ the seeds are read from memory (one etcd round trip less per
    request). The mirror is only a cache: a miss or a failed check is decided by etcd itself,
    so a user created a moment ago on another API worker is never refused.
    """

    def __init__(self, store: Store, window: int = 1, mirror: Mirror | None = None) -> None:
        self.store = store
        self.window = window
        self.mirror = mirror

    def verify(self, credentials: Credentials) -> bool:
        key = keys.user_account(credentials.name)
        cached = self.mirror.entries.get(key) if self.mirror is not None else None
        if cached is not None and self._check(cached.value, credentials):
            return True
        entry = self.store.get(key)
        return entry is not None and self._check(entry.value, credentials)

    def account_revision(self, name: str, realm: str) -> int | None:
        """The create revision of the account: a user deleted and made again is another one."""
        entry = self.store.get(keys.user_account(name))
        if entry is None or entry.value.get("realm") != realm:
            return None
        return entry.create_revision

    def has_account(self, name: str, realm: str, revision: int) -> bool:
        key = keys.user_account(name)
        cached = self.mirror.entries.get(key) if self.mirror is not None else None
        if cached is not None and cached.create_revision == revision:
            return bool(cached.value.get("realm") == realm)
        entry = self.store.get(key)  # not in the copy (yet), or another account: etcd decides
        return (
            entry is not None
            and entry.create_revision == revision
            and entry.value.get("realm") == realm
        )

    def _check(self, account: Account, credentials: Credentials) -> bool:
        if account.get("realm") != credentials.realm or not account.get("seed"):
            return False
        return pyotp.TOTP(account["seed"]).verify(credentials.token, valid_window=self.window)

    def close(self) -> None:
        if self.mirror is not None:
            self.mirror.stop()


class UngleichOtp:
    """Delegates to an ungleich-otp server; ucloud authenticates itself with its own TOTP."""

    def __init__(
        self,
        server: str,
        verify_name: str,
        verify_realm: str,
        verify_seed: str,
        timeout: float = 3.0,
    ) -> None:
        if not (server and verify_name and verify_realm and verify_seed):
            raise ValueError(
                "auth_backend ungleich-otp needs otp_server, otp_verify_name, otp_verify_realm"
                " and otp_verify_seed"
            )
        self.url = server.rstrip("/") + "/ungleichotp/verify/"
        self.verify_name = verify_name
        self.verify_realm = verify_realm
        self.totp = pyotp.TOTP(verify_seed)
        self.timeout = timeout
        self.http = requests.Session()

    def close(self) -> None:
        self.http.close()

    def account_revision(self, name: str, realm: str) -> int | None:
        return 0  # users live in the OTP server: ucloud cannot tell one from its successor

    def has_account(self, name: str, realm: str, revision: int) -> bool:
        return True  # sessions end by expiry or DELETE /v1/session (docs/api.md)

    def verify(self, credentials: Credentials) -> bool:
        body = {
            "name": credentials.name,
            "realm": credentials.realm,
            "token": credentials.token,
            "verifyname": self.verify_name,
            "verifyrealm": self.verify_realm,
            "verifytoken": self.totp.now(),
        }
        try:
            answer = self.http.post(self.url, json=body, timeout=self.timeout)
        except requests.RequestException as error:
            log.warning("ungleich-otp server %s unreachable: %s", self.url, type(error).__name__)
            raise Unavailable("the authentication server cannot be reached; try again") from None
        if answer.status_code >= 500:
            raise Unavailable(f"the authentication server failed ({answer.status_code})")
        if answer.status_code == 403:
            log.error("ungleich-otp refused ucloud's own verify credentials (otp_verify_*)")
        return answer.status_code == 200


def backend_from_config(config: Config, store: Store) -> OtpBackend:
    if config.auth_backend == "local":
        return LocalOtp(store, config.auth_window, Mirror(store, keys.USER).start())
    return UngleichOtp(
        config.otp_server, config.otp_verify_name, config.otp_verify_realm, config.otp_verify_seed
    )


class ReplayGuard:
    """Remembers the TOTP codes accepted, so that none is accepted twice (module docstring)."""

    def __init__(self, store: Store, window: int) -> None:
        self.store = store
        # a code is valid for 2 * window + 1 steps; 30 s more for clocks and lease rounding
        self.remember = (2 * window + 1) * STEP + STEP
        self._lock = threading.Lock()
        self._lease = 0
        self._use_until = 0.0  # time.monotonic() until which new claims may go on _lease

    def _current_lease(self) -> int:
        with self._lock:
            if time.monotonic() >= self._use_until:
                # granted for 2 * remember, used for the first half: every claim lives >= remember
                self._lease = self.store.grant(2 * self.remember)
                self._use_until = time.monotonic() + self.remember
            return self._lease

    def _drop_lease(self, lease: int) -> None:
        with self._lock:
            if self._lease == lease:
                self._use_until = 0.0

    def claim(self, credentials: Credentials) -> None:
        """Record the code as used; TokenReused if it was used already by this identity."""
        key = keys.otp_used(credentials.realm, credentials.name, credentials.token)
        for attempt in range(2):
            lease = self._current_lease()
            try:
                created = self.store.create(key, {"used": now()}, lease)
            except StoreError as error:
                # the lease vanished (revoked by hand, etcd restored from a backup): a new one
                if attempt or "lease not found" not in error.message:
                    raise
                self._drop_lease(lease)
                continue
            if not created:
                raise TokenReused(
                    "token already used: a TOTP code is accepted once; wait for the next one,"
                    " or use a session (POST /v1/session)"
                )
            return


def authenticate(
    backend: OtpBackend,
    credentials: Credentials | None,
    admin_realm: str,
    replay: ReplayGuard | None = None,
) -> Caller:
    """The Caller for valid credentials, their code claimed by `replay`; Unauthenticated (401)
    otherwise (TokenReused for a code used before)."""
    if credentials is None:
        raise Unauthenticated(
            "missing credentials: send Authorization: Bearer <session token>, or X-Ucloud-Name,"
            " X-Ucloud-Realm and X-Ucloud-Token"
        )
    if not credentials.token.isdigit() or not backend.verify(credentials):
        raise Unauthenticated(
            "invalid credentials: unknown user, wrong realm or wrong/expired token"
        )
    if replay is not None:
        replay.claim(credentials)
    return Caller(credentials.name, credentials.realm, credentials.realm == admin_realm)


def create_local_user(store: Store, name: str, realm: str) -> Account:
    """Create a user with a fresh seed; returns the account including the seed (show it once)."""
    account: Account = {
        "name": name,
        "realm": realm,
        "seed": pyotp.random_base32(),
        "created": now(),
    }
    if not store.create(keys.user_account(name), account):
        raise Conflict(f"user {name!r} already exists")
    return account


def public_account(account: Account) -> dict[str, object]:
    """An account as the API shows it after creation: never the seed."""
    return {k: v for k, v in account.items() if k != "seed"}


def parse_credentials(name: Any, realm: Any, token: Any) -> Credentials | None:
    """Credentials from headers or body fields; None if none were sent at all."""
    if name is None and realm is None and token is None:
        return None
    if not all(isinstance(v, str) and v for v in (name, realm, token)):
        raise Unauthenticated("incomplete credentials: name, realm and token are all needed")
    if len(token) > 16 or len(name) > 256 or len(realm) > 256:
        raise Unauthenticated("credentials too long")
    for what, value in (("name", name), ("realm", realm)):
        # The name becomes part of etcd keys: "victim/ssh-key/x" would land under another
        # user's prefix. Whatever an OTP server accepts, ucloud takes only names it can store.
        try:
            validation.name(value, what)
        except InvalidInput as error:
            raise Unauthenticated(str(error)) from None
    return Credentials(name, realm, token)
