"""Software transactional memory over etcd, in the style of etcd's `concurrency/stm.go`.

A transaction body reads keys through a `Transaction` (each read is remembered with the
mod_revision it had), queues writes, and may add conditions of its own (a leader fence, a host's
lease). `Store.transact` then commits everything in one etcd transaction that holds only if no key
read has changed since; when one has, the body runs again on fresh reads, a bounded number of
times. This replaces hand-written compare-and-write loops: a body states what it wants and never
spells out the comparisons.

Entries already read elsewhere (a mirror's copy) can be adopted with `seen()`: they are compared
like a read, without another round trip. A body is a function of what it read and nothing else:
it may run several times, so it must not have effects outside the transaction.
"""

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Protocol

from common.store.txn import Compare, Delete, Op, Put, absent, mod_revision_is

if TYPE_CHECKING:
    from common.store.client import Entry, Store


class Reader(Protocol):
    """What lookups need: a Store reads directly, a Transaction remembers what it read."""

    def get(self, key: str) -> "Entry | None": ...


class Transaction:
    """The reads, writes and extra conditions of one attempt."""

    def __init__(self, store: "Store") -> None:
        self._store = store
        self._reads: dict[str, int] = {}  # key -> mod_revision read (0: absent)
        self._conditions: list[Compare] = []
        self.ops: list[Op] = []

    def get(self, key: str) -> "Entry | None":
        """The key as it is now; the commit holds only while it stays so."""
        entry = self._store.get(key)
        self._reads.setdefault(key, entry.mod_revision if entry else 0)
        return entry

    @property
    def store(self) -> "Store":
        """The store, for reads that are not part of the read set (listings, counts)."""
        return self._store

    def seen(self, entry: "Entry") -> Any:
        """Adopt an entry read elsewhere (e.g. from a mirror) as a read of this transaction;
        returns a private copy of its value to change."""
        self._reads.setdefault(entry.key, entry.mod_revision)
        return entry.copy_value()

    def put(self, key: str, value: Any, lease: int = 0) -> None:
        self.ops.append(Put(key, value, lease))

    def delete(self, key: str, prefix: bool = False) -> None:
        self.ops.append(Delete(key, prefix))

    def write(self, ops: Iterable[Op]) -> None:
        """Queue operations built elsewhere (e.g. model.release_ops)."""
        self.ops.extend(ops)

    def require(self, *conditions: Compare) -> None:
        """Conditions beyond the reads: a leader fence, a lease, a key that must stay absent."""
        self._conditions.extend(conditions)

    def compares(self) -> list[Compare]:
        reads = [
            mod_revision_is(key, revision) if revision else absent(key)
            for key, revision in self._reads.items()
        ]
        return [*reads, *self._conditions]
