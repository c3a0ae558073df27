"""Failed logins, counted where every API worker and node sees them (etcd), so a TOTP code
cannot be guessed: 3 of 10^6 codes are valid at any moment, and at ~750 tries/s an unlimited
guesser needs minutes. After `limit` failures of one identity (realm, name) or of one client
address within `window` seconds, that identity or address is refused with 429 until the window
ends, without its code being checked. The refusal is decided from a watched copy of the
counters in memory: it costs no etcd round trip. A failure costs one etcd transaction.

Counters live under /v1/auth-failures/<sha256 of the subject> on a lease of `window` seconds
granted at the first failure: they vanish by themselves. A lockout also keeps the real user of
an identity out while it lasts (as Proxmox's TFA lock does); the per-address limit is higher,
since one address may carry many users.

What counts as a failure: a wrong, expired or unknown TOTP code; a code used before (a replay,
RFC 6238 5.2), for its address only; and a bad session token (unknown, expired, revoked,
malformed), for its address only, since it names no identity. A replay is suspicious (someone
may have seen the code) and is logged as such, with identity and address; but it is a right
code, so it guesses nothing, and two of the user's own clients starting sessions in the same
30 s step make one: counting it against the identity would lock the user out for nothing, while
counting it per address still limits a replaying stranger. A session token is refused while its
address is locked out, but not while its identity is: the lock stops code guessing, and the
session was bought with a good code before.
"""

import functools
import hashlib
import logging
import time

from common.errors import TooManyAttempts
from common.store import Store, Transaction, keys
from common.store.mirror import Mirror

log = logging.getLogger(__name__)


class Lockout:
    def __init__(self, store: Store, window: int, per_identity: int, per_address: int) -> None:
        self.store = store
        self.window = window
        self.limits = {"identity": per_identity, "address": per_address}
        self.mirror = Mirror(store, keys.AUTH_FAILURES).start()

    @staticmethod
    def _key(kind: str, subject: str) -> str:
        return keys.auth_failures(hashlib.sha256(f"{kind} {subject}".encode()).hexdigest())

    def check(self, identity: str | None, address: str) -> None:
        """TooManyAttempts (429) if the identity or the address is locked out now."""
        for kind, subject in (("identity", identity), ("address", address)):
            if subject is None:
                continue
            entry = self.mirror.entries.get(self._key(kind, subject))
            if entry is not None and entry.value["count"] >= self.limits[kind]:
                left = max(1, int(entry.value["until"] - time.time()))
                raise TooManyAttempts(
                    f"too many failed logins for this {kind}; try again in {left} s", left
                )

    def failed(
        self,
        identity: str | None,
        address: str,
        reason: str = "bad credentials",
        count_identity: bool = True,
    ) -> None:
        """Count a failed login (and write it to the audit log: who, from where, why; never the
        code or token). A bad session token has no identity: it counts for the address; so does
        a replayed code (count_identity False)."""
        log.warning("authentication refused (%s): identity %r from %s", reason, identity, address)
        counted = (("identity", identity if count_identity else None), ("address", address))
        for kind, subject in counted:
            if subject is not None:
                self.store.transact(functools.partial(self._count, self._key(kind, subject)))

    def _count(self, key: str, txn: Transaction) -> None:
        entry = txn.get(key)
        if entry is None:
            lease = self.store.grant(self.window)
            txn.put(key, {"count": 1, "until": time.time() + self.window}, lease)
        else:
            txn.put(key, {**entry.value, "count": entry.value["count"] + 1}, entry.lease)

    def close(self) -> None:
        self.mirror.stop()
