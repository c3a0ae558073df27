"""Mirror: an always-current in-memory copy of one prefix (list, then watch from the listed
revision; re-list when the watch reports compaction).

Agents are level-triggered: the mirror's `changed` event only wakes the reconcile loop, which then
reads the whole current state. So an event can never be "missed": a restart re-lists everything.
"""

import logging
import threading
from collections.abc import Callable

from common.errors import Unavailable
from common.store.client import Compacted, Entry, Store
from common.store.watch import Event, Watch

log = logging.getLogger(__name__)


class Mirror:
    def __init__(
        self,
        store: Store,
        prefix: str,
        on_event: Callable[[Event], None] | None = None,
        changed: threading.Event | None = None,
    ) -> None:
        self.store = store
        self.prefix = prefix
        self.on_event = on_event
        self.entries: dict[str, Entry] = {}
        self.revision = 0
        # set on every change; the consumer clears it (several mirrors may share one)
        self.changed = changed or threading.Event()
        self.synced = threading.Event()  # set once the first listing is in
        self._watch: Watch | None = None
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> "Mirror":
        self._thread = threading.Thread(target=self._run, name=f"mirror {self.prefix}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        if self._watch is not None:
            self._watch.cancel()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def wait_synced(self, timeout: float | None = None) -> bool:
        return self.synced.wait(timeout)

    def values(self) -> list[Entry]:
        """A snapshot of the current entries (safe to iterate while the mirror updates)."""
        return list(self.entries.values())

    def _run(self) -> None:
        while not self._stopped.is_set():
            try:
                self._list()
                self._watch = Watch(self.store, self.prefix, self.revision + 1)
                if self._stopped.is_set():
                    return
                for batch in self._watch:
                    for event in batch:
                        self._apply(event)
                    self.revision = batch[-1].revision
                    self.changed.set()
            except Compacted as error:
                log.info("mirror %s: %s; re-listing", self.prefix, error)
            except Unavailable as error:
                log.warning("mirror %s: %s", self.prefix, error)
                self._stopped.wait(1.0)
            except Exception:
                # Never serve a stale copy forever (an auth cache would ignore revoked users):
                # whatever broke the watch, list and watch again.
                log.exception("mirror %s failed; listing and watching again", self.prefix)
                self._stopped.wait(1.0)

    def _list(self) -> None:
        listing = self.store.list(self.prefix)
        fresh = {entry.key: entry for entry in listing.entries}
        if self.on_event is not None:
            # Tell the consumer about differences the re-list revealed, as if they were events.
            for key, old in self.entries.items():
                if key not in fresh:
                    self.on_event(Event(key, listing.revision, None, old))
            for key, entry in fresh.items():
                before = self.entries.get(key)
                if before is None or before.mod_revision != entry.mod_revision:
                    self.on_event(Event(key, entry.mod_revision, entry, before))
        self.entries = fresh
        self.revision = listing.revision
        self.synced.set()
        self.changed.set()

    def _apply(self, event: Event) -> None:
        if event.entry is None:
            self.entries.pop(event.key, None)
        else:
            self.entries[event.key] = event.entry
        if self.on_event is not None:
            self.on_event(event)
