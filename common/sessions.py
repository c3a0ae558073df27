"""Session tokens: one TOTP code buys `session_ttl` seconds of `Authorization: Bearer <token>`.

POST /v1/session (TOTP credentials only) makes a token of 32 random bytes (URL-safe base64) and
stores only its SHA-256 under /v1/session/<hex digest> with {name, realm, admin, created,
expires, account} on a lease of its own of `session_ttl` seconds, so it vanishes by itself; the
token itself is shown once and is never stored or logged. A request with a bearer token is
checked against a per-worker copy of /v1/session/ (a Mirror): no TOTP, no etcd round trip. On a
miss etcd is asked, so a session made through another worker a moment ago works at once.

A session ends when it expires, when it is revoked (DELETE /v1/session; `?all=1`: every session
of the identity), or when its user is gone: with the local backend each check asks the account
copy whether the account the session was made for (its create revision) still exists, so
deleting a user, or deleting and creating it again, ends its sessions. A worker that revoked a
session refuses it at once, before its copy has seen the deletion; other workers within the
milliseconds their copies take.
"""

import hashlib
import re
import secrets
import threading
import time
from datetime import UTC, datetime
from typing import Any

from common.auth import Caller, OtpBackend
from common.errors import Conflict, Unauthenticated
from common.store import Delete, Store, keys
from common.store.mirror import Mirror

TOKEN_BYTES = 32
# token_urlsafe(32) is 43 characters; a little room, and nothing but the URL-safe alphabet
TOKEN = re.compile(r"[A-Za-z0-9_-]{20,128}")
REVOKE_BATCH = 100  # deletes per etcd transaction (etcd allows 128 operations)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Sessions:
    def __init__(self, store: Store, ttl: int, backend: OtpBackend, admin_realm: str) -> None:
        self.store = store
        self.ttl = ttl
        self.backend = backend
        self.admin_realm = admin_realm
        self.mirror = Mirror(store, keys.SESSION).start()
        # digest -> (revision of its deletion, expiry): revoked here, maybe still in the copy
        self._revoked: dict[str, tuple[int, float]] = {}
        self._lock = threading.Lock()

    def create(self, caller: Caller) -> dict[str, Any]:
        """A new session for `caller` (authenticated with TOTP): {token, expires, ttl}."""
        account = self.backend.account_revision(caller.name, caller.realm)
        if account is None:
            raise Unauthenticated("the account no longer exists")
        token = secrets.token_urlsafe(TOKEN_BYTES)
        created = time.time()
        expires = int(created) + self.ttl
        record = {
            "name": caller.name,
            "realm": caller.realm,
            "admin": caller.admin,
            "created": iso(created),
            "expires": expires,
            "account": account,
        }
        lease = self.store.grant(self.ttl)
        if not self.store.create(keys.session(digest(token)), record, lease):
            raise Conflict("session token collision; try again")  # 2**-256: never
        return {"token": token, "expires": iso(expires), "ttl": self.ttl}

    def authenticate(self, token: str) -> tuple[Caller, str]:
        """The caller of a bearer token and the token's digest; Unauthenticated otherwise."""
        if not TOKEN.fullmatch(token):
            raise Unauthenticated("malformed session token")
        hashed = digest(token)
        if self._revoked and self._is_revoked(hashed):
            raise Unauthenticated("session revoked: create a new one with POST /v1/session")
        key = keys.session(hashed)
        entry = self.mirror.entries.get(key)
        if entry is None:
            entry = self.store.get(key)  # made through another worker a moment ago?
        if entry is None:
            raise Unauthenticated(
                "unknown or expired session token: create a new one with POST /v1/session"
            )
        session = entry.value
        if session["expires"] <= time.time():
            raise Unauthenticated("session expired: create a new one with POST /v1/session")
        if not self.backend.has_account(session["name"], session["realm"], session["account"]):
            raise Unauthenticated("the session's user no longer exists")
        admin = session["realm"] == self.admin_realm
        return Caller(session["name"], session["realm"], admin), hashed

    def _is_revoked(self, hashed: str) -> bool:
        with self._lock:
            now, seen = time.time(), self.mirror.revision
            for key, (revision, expires) in list(self._revoked.items()):
                if revision <= seen or expires <= now:
                    del self._revoked[key]  # the copy has it gone, or it expired anyway
            return hashed in self._revoked

    def revoke(self, hashed: str) -> int:
        """End one session; how many were ended (0 or 1)."""
        entry = self.store.get(keys.session(hashed))
        if entry is None:
            return 0
        return self._delete([entry.key], [entry.value["expires"]])

    def revoke_all(self, name: str, realm: str) -> int:
        """End every session of the identity; how many were ended."""
        mine = [
            entry
            for entry in self.store.list(keys.SESSION).entries
            if entry.value["name"] == name and entry.value["realm"] == realm
        ]
        return self._delete([e.key for e in mine], [e.value["expires"] for e in mine])

    def _delete(self, session_keys: list[str], expiries: list[float]) -> int:
        for first in range(0, len(session_keys), REVOKE_BATCH):
            batch = session_keys[first : first + REVOKE_BATCH]
            result = self.store.txn([], [Delete(key) for key in batch])
            with self._lock:
                for key, expires in zip(batch, expiries[first : first + REVOKE_BATCH], strict=True):
                    self._revoked[keys.last_part(key)] = (result.revision, expires)
        return len(session_keys)

    def close(self) -> None:
        self.mirror.stop()
