"""Session: a lease kept alive in the background, with a local deadline its holder can act on.

The lease cannot expire at etcd earlier than TTL seconds after the last keep-alive *request* that
etcd answered was sent. So `expires_at` (monotonic) is a safe lower bound of the server-side expiry,
and a holder that acts before `expires_at - margin` (e.g. kills its VMs) is sure to act before
anyone else can see the lease gone.
"""

import logging
import threading
import time
from collections.abc import Callable

from common.errors import UcloudError
from common.store.client import Store

log = logging.getLogger(__name__)


class Session:
    def __init__(
        self,
        store: Store,
        ttl: int,
        interval: float | None = None,
        on_refresh: Callable[["Session"], None] | None = None,
    ) -> None:
        self.store = store
        self.ttl = ttl
        self.interval = interval or ttl / 3  # seconds between keep-alives
        self.on_refresh = on_refresh  # called after every successful grant or keep-alive
        self.lease_id = 0
        self.expires_at = 0.0
        self.lost = threading.Event()  # set once the lease is (or may be) gone for good
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> "Session":
        sent = time.monotonic()
        self.lease_id = self.store.grant(self.ttl)
        self.expires_at = sent + self.ttl
        self._refreshed()
        self._thread = threading.Thread(target=self._keepalive_loop, name="lease", daemon=True)
        self._thread.start()
        return self

    def adopt(self, lease_id: int) -> bool:
        """Continue a lease granted earlier (e.g. by this daemon before a restart) if etcd still
        has it; True on success, and the keep-alive runs from now on."""
        sent = time.monotonic()
        try:
            ttl = self.store.keepalive(lease_id, deadline=self.store.timeout)
        except UcloudError:
            return False
        if ttl <= 0:
            return False
        self.lease_id = lease_id
        self.expires_at = sent + ttl
        self._refreshed()
        self._thread = threading.Thread(target=self._keepalive_loop, name="lease", daemon=True)
        self._thread.start()
        return True

    def _refreshed(self) -> None:
        if self.on_refresh is not None:
            self.on_refresh(self)

    def remaining(self) -> float:
        """Seconds until the lease may expire at etcd (negative: it may be gone already)."""
        return self.expires_at - time.monotonic()

    def _keepalive_loop(self) -> None:
        interval = self.interval
        while not self._closed.wait(interval):
            sent = time.monotonic()
            try:
                ttl = self.store.keepalive(self.lease_id, deadline=max(self.remaining(), 0.2))
            except UcloudError as error:
                log.warning(
                    "lease %x: keep-alive failed (%s); %.1f s left",
                    self.lease_id,
                    error,
                    self.remaining(),
                )
                if self.remaining() <= 0:
                    self.lost.set()
                    return
                interval = 0.2
                continue
            if ttl <= 0:
                log.warning("lease %x expired at etcd", self.lease_id)
                self.lost.set()
                return
            self.expires_at = sent + ttl
            self._refreshed()
            interval = self.interval

    def close(self, revoke: bool = True) -> None:
        """Stop refreshing; revoke the lease so its keys vanish now rather than after the TTL."""
        self._closed.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        if revoke and not self.lost.is_set() and self.lease_id:
            try:
                self.store.revoke(self.lease_id)
            except UcloudError as error:
                log.warning("lease %x: revoke failed: %s", self.lease_id, error)
