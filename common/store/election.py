"""Election: one leader among any number of candidates, like etcd's concurrency.Election.

The leader owns `key`, bound to its session's lease. Its writes carry `fence()`: a comparison on
the key's create_revision, so a deposed leader (lease expired, key re-created by a successor) can
no longer change anything, even if it has not noticed yet.
"""

import logging
import threading

from common.store.client import Store
from common.store.session import Session
from common.store.txn import Compare, Put, absent, created_at
from common.store.watch import Watch

log = logging.getLogger(__name__)


class Election:
    def __init__(self, store: Store, key: str, identity: str, ttl: int) -> None:
        self.store = store
        self.key = key
        self.identity = identity
        self.ttl = ttl
        self.session: Session | None = None
        self.revision = 0  # create_revision of our leader key while we lead

    def campaign(self, stop: threading.Event) -> bool:
        """Block until this candidate leads (True) or `stop` is set (False)."""
        while not stop.is_set():
            if self.session is None or self.session.lost.is_set():
                self.session = Session(self.store, self.ttl).start()
            value = {"identity": self.identity}
            result = self.store.txn(
                [absent(self.key)], [Put(self.key, value, self.session.lease_id)]
            )
            if result.succeeded:
                self.revision = result.revision
                log.info("%s is the leader (revision %d)", self.identity, self.revision)
                return True
            current = self.store.get(self.key)
            if current is None:
                continue
            log.info("leader is %s; standing by", current.value.get("identity"))
            self._wait_for_deletion(current.mod_revision + 1, stop)
        return False

    def _wait_for_deletion(self, revision: int, stop: threading.Event) -> None:
        watch = Watch(self.store, self.key, revision)
        done = threading.Event()

        def cancel_on_stop() -> None:
            while not done.wait(0.2):
                if stop.is_set():
                    watch.cancel()
                    return

        threading.Thread(target=cancel_on_stop, daemon=True).start()
        try:
            for batch in watch:
                if any(event.deleted and event.key == self.key for event in batch):
                    return
        finally:
            done.set()
            watch.cancel()

    def is_leader(self) -> bool:
        return self.revision != 0 and self.session is not None and not self.session.lost.is_set()

    def fence(self) -> list[Compare]:
        """Conditions to add to every leader write."""
        return [created_at(self.key, self.revision)]

    def resign(self) -> None:
        """Step down now (on clean shutdown) so a standby takes over without waiting a TTL."""
        self.revision = 0
        if self.session is not None:
            self.session.close(revoke=True)
            self.session = None
