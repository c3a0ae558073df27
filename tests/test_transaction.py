"""Store.transact (STM over etcd) against a real etcd: reads compared at commit, re-runs on
conflict, bounded attempts, absent keys, mirrored entries and extra conditions."""

import pytest

from common.errors import Conflict, NotFound
from common.store import Store, Transaction, absent


def test_commit_and_value(store: Store) -> None:
    store.put("/v1/a", {"n": 1})

    def body(txn: Transaction) -> int:
        entry = txn.get("/v1/a")
        txn.put("/v1/a", {"n": entry.value["n"] + 1})
        txn.put("/v1/b", {"copy": True})
        return 42

    committed = store.transact(body)
    assert committed.value == 42 and committed.revision is not None
    assert store.get("/v1/a").value == {"n": 2}
    assert store.get("/v1/b").value == {"copy": True}


def test_conflict_runs_the_body_again_on_fresh_reads(store: Store) -> None:
    store.put("/v1/a", {"n": 1})
    seen = []

    def body(txn: Transaction) -> None:
        value = txn.get("/v1/a").value
        seen.append(value["n"])
        if len(seen) == 1:
            store.put("/v1/a", {"n": 10})  # a racing writer between our read and our commit
        txn.put("/v1/a", {"n": value["n"] + 1})

    store.transact(body)
    assert seen == [1, 10]
    assert store.get("/v1/a").value == {"n": 11}


def test_absent_read_is_compared(store: Store) -> None:
    runs = []

    def body(txn: Transaction) -> None:
        missing = txn.get("/v1/new") is None
        runs.append(missing)
        if len(runs) == 1:
            store.put("/v1/new", {"by": "other"})  # created between our read and our commit
        if missing:
            txn.put("/v1/new", {"by": "us"})

    store.transact(body)
    assert runs == [True, False]
    assert store.get("/v1/new").value == {"by": "other"}


def test_attempts_are_bounded(store: Store) -> None:
    store.put("/v1/hot", {"n": 0})
    runs = []

    def body(txn: Transaction) -> None:
        runs.append(1)
        txn.get("/v1/hot")
        store.put("/v1/hot", {"n": len(runs)})  # always loses
        txn.put("/v1/hot", {"n": -1})

    with pytest.raises(Conflict):
        store.transact(body, attempts=3)
    assert len(runs) == 3
    assert store.get("/v1/hot").value == {"n": 3}


def test_body_error_aborts_without_writing(store: Store) -> None:
    def body(txn: Transaction) -> None:
        txn.put("/v1/half", {"x": 1})
        raise NotFound("nothing here")

    with pytest.raises(NotFound):
        store.transact(body)
    assert store.get("/v1/half") is None


def test_no_write_commits_nothing(store: Store) -> None:
    committed = store.transact(lambda txn: txn.get("/v1/none"))
    assert committed.value is None and committed.revision is None


def test_seen_entries_and_conditions(store: Store) -> None:
    store.put("/v1/m", {"n": 1})
    mirrored = store.get("/v1/m")  # as a mirror would hold it

    def body(txn: Transaction) -> None:
        value = txn.seen(mirrored)
        value["n"] += 1
        txn.require(absent("/v1/lock"))
        txn.put("/v1/m", value)

    store.put("/v1/lock", {})
    with pytest.raises(Conflict):
        store.transact(body, attempts=1)
    store.delete("/v1/lock")
    store.transact(body, attempts=1)
    assert store.get("/v1/m").value == {"n": 2}
    with pytest.raises(Conflict):  # the mirrored copy is stale now
        store.transact(body, attempts=1)
