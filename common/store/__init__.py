"""The only code that talks to etcd.

- `client.Store`: JSON values, get/list/put/create/delete, transactions, leases; fails over between
  endpoints and retries until a deadline.
- `transaction.Transaction`: reads and writes of `Store.transact` (STM: re-run on conflict).
- `txn`: the operations and comparisons a transaction is built from.
- `watch.Watch`: a prefix watch that survives etcd restarts (resumes from last revision + 1) and
  reports compaction so the caller re-lists.
- `mirror.Mirror`: list, then watch from the listed revision: an always-current copy of a prefix.
- `session.Session`: a lease with keep-alive and a deadline the holder can act on (self-fencing).
- `election.Election`: one leader among many, with writes fenced on the leader key.
- `keys`: where things live under /v1/.
"""

from common.store.client import Committed, Entry, Listing, Store, TxnResult
from common.store.transaction import Reader, Transaction
from common.store.txn import Delete, Put, absent, created_at, lease_is, mod_revision_is

__all__ = [
    "Committed",
    "Delete",
    "Entry",
    "Listing",
    "Put",
    "Reader",
    "Store",
    "Transaction",
    "TxnResult",
    "absent",
    "created_at",
    "lease_is",
    "mod_revision_is",
]
