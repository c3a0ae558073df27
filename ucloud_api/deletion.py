"""Deleting a thing that VMs may use (an image, a network) without racing a VM create.

The record is marked DELETING first, compared by its mod_revision: a VM create that read it
before fails its own comparison, one after sees DELETING and refuses. So the scan for users
that follows cannot miss one. Then, compared against the mark, the record is either put back
(in use: 409) or released with everything it holds.
"""

from collections.abc import Callable, Sequence

from common import model
from common.errors import Conflict
from common.store import Put, Store, Transaction, mod_revision_is
from common.store.client import Entry
from common.store.txn import Op


def delete_unless_used(
    store: Store,
    entry: Entry,
    users: Callable[[], Sequence[str]],
    release: Sequence[Op],
    what: str,
    in_use: str = "is used by",
    also: Callable[[Transaction], None] = lambda txn: None,
) -> None:
    """Release `entry` with `release` unless `users()` names a VM using it (Conflict:
    "<what> <in_use> N VM(s), e.g. <uuid>"); `also` adds to the releasing transaction (the
    owner's quota usage)."""
    marked = store.txn(
        [mod_revision_is(entry.key, entry.mod_revision)],
        [Put(entry.key, {**entry.value, "status": model.DELETING})],
    )
    if not marked.succeeded:
        raise Conflict(f"{what} changed meanwhile; try again")
    found = users()
    if found:
        store.txn([mod_revision_is(entry.key, marked.revision)], [Put(entry.key, entry.value)])
        raise Conflict(f"{what} {in_use} {len(found)} VM(s), e.g. {found[0]}")

    def release_it(txn: Transaction) -> None:
        current = txn.get(entry.key)
        if current is None or current.mod_revision != marked.revision:
            raise Conflict(f"{what} changed meanwhile; try again")
        txn.write(release)
        also(txn)

    store.transact(release_it)
