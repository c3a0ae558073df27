"""The store layer against a real etcd: values, transactions, leases, watches across restarts."""

import threading
import time

import pytest

from common.errors import Unavailable
from common.poll import poll
from common.store import Put, Store, mod_revision_is
from common.store.client import Compacted
from common.store.election import Election
from common.store.mirror import Mirror
from common.store.session import Session
from common.store.watch import Watch
from ucloud_aio.etcd import EtcdServer


def test_put_get_list_delete(store: Store) -> None:
    store.put("/v1/t/a", {"n": 1})
    store.put("/v1/t/b", {"n": 2})
    store.put("/v1/u/c", {"n": 3})
    assert store.get("/v1/t/a").value == {"n": 1}
    assert store.get("/v1/t/missing") is None
    listing = store.list("/v1/t/")
    assert [e.key for e in listing.entries] == ["/v1/t/a", "/v1/t/b"]
    assert listing.revision >= listing.entries[-1].mod_revision
    assert store.count("/v1/") == 3
    assert store.delete("/v1/t/", prefix=True) == 2
    assert store.list("/v1/t/").entries == []


def test_create_if_absent(store: Store) -> None:
    assert store.create("/v1/x", {"owner": "a"})
    assert not store.create("/v1/x", {"owner": "b"})
    assert store.get("/v1/x").value == {"owner": "a"}


def test_txn_on_mod_revision(store: Store) -> None:
    store.put("/v1/x", {"v": 1})
    entry = store.get("/v1/x")
    assert store.txn(
        [mod_revision_is("/v1/x", entry.mod_revision)], [Put("/v1/x", {"v": 2})]
    ).succeeded
    stale = store.txn([mod_revision_is("/v1/x", entry.mod_revision)], [Put("/v1/x", {"v": 3})])
    assert not stale.succeeded
    assert store.get("/v1/x").value == {"v": 2}


def test_concurrent_writers_lose_no_update(store: Store) -> None:
    """8 threads x 25 increments through update(): exactly 200 at the end."""
    store.put("/v1/counter", {"n": 0})

    def increment(value: dict) -> dict:
        value["n"] += 1
        return value

    def worker() -> None:
        client = Store(store._endpoints[0].address.split(","))
        for _ in range(25):
            client.update("/v1/counter", increment)
        client.close()

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert store.get("/v1/counter").value == {"n": 200}


def test_update_missing_and_noop(store: Store) -> None:
    assert store.update("/v1/none", lambda v: v) is None
    store.put("/v1/x", {"v": 1})
    before = store.get("/v1/x")
    after = store.update("/v1/x", lambda v: None)
    assert after.mod_revision == before.mod_revision


def test_watch_from_revision_sees_every_event(store: Store) -> None:
    start = store.put("/v1/w/a", {"i": 0})
    for i in range(1, 5):
        store.put(f"/v1/w/a{i}", {"i": i})
    store.delete("/v1/w/a")
    watch = Watch(store, "/v1/w/", start)
    seen = []
    for batch in watch:
        seen.extend(batch)
        if len(seen) >= 6:
            watch.cancel()
    assert [e.key for e in seen] == [
        "/v1/w/a",
        "/v1/w/a1",
        "/v1/w/a2",
        "/v1/w/a3",
        "/v1/w/a4",
        "/v1/w/a",
    ]
    assert seen[-1].deleted and seen[-1].previous.value == {"i": 0}


def test_watch_survives_etcd_restart(private_etcd: EtcdServer) -> None:
    """Kill etcd in the middle of a watch, write while it is down, restart: no event lost or
    duplicated."""
    store = Store([private_etcd.endpoint], timeout=1.0, retry_deadline=20.0)
    listing = store.list("/v1/w/")
    watch = Watch(store, "/v1/w/", listing.revision + 1)
    seen: list[str] = []
    done = threading.Event()

    def consume() -> None:
        for batch in watch:
            seen.extend(e.key for e in batch)
            if len(seen) >= 20:
                done.set()
                return

    thread = threading.Thread(target=consume)
    thread.start()
    for i in range(10):
        store.put(f"/v1/w/{i:02}", {"i": i})
    private_etcd.kill()
    private_etcd.start()
    for i in range(10, 20):
        store.put(f"/v1/w/{i:02}", {"i": i})
    assert done.wait(20), f"saw only {seen}"
    watch.cancel()
    thread.join(5)
    assert seen == [f"/v1/w/{i:02}" for i in range(20)]
    store.close()


def test_watch_reports_compaction(store: Store) -> None:
    first = store.put("/v1/c/a", {"v": 1})
    last = store.put("/v1/c/a", {"v": 2})
    store.put("/v1/c/a", {"v": 3})
    store.compact(last)
    with pytest.raises(Compacted):
        for _ in Watch(store, "/v1/c/", first):
            pass


def test_mirror_relists_after_compaction(store: Store) -> None:
    mirror = Mirror(store, "/v1/m/").start()
    assert mirror.wait_synced(5)
    store.put("/v1/m/a", {"v": 1})
    poll(lambda: "/v1/m/a" in mirror.entries, 5, interval=0.01)
    assert mirror.entries["/v1/m/a"].value == {"v": 1}
    store.delete("/v1/m/a")
    store.put("/v1/m/b", {"v": 2})
    poll(lambda: set(mirror.entries) == {"/v1/m/b"}, 5, interval=0.01)
    assert set(mirror.entries) == {"/v1/m/b"}
    mirror.stop()


def test_unavailable_after_deadline(private_etcd: EtcdServer) -> None:
    store = Store([private_etcd.endpoint], timeout=0.3, retry_deadline=1.0)
    private_etcd.kill()
    started = time.monotonic()
    with pytest.raises(Unavailable):
        store.get("/v1/x")
    assert time.monotonic() - started < 5
    store.close()


def test_failover_between_endpoints(private_etcd: EtcdServer, tmp_path) -> None:
    """A dead endpoint first in the list: calls go to the live one."""
    from ucloud_aio.procs import free_port

    store = Store([f"127.0.0.1:{free_port()}", private_etcd.endpoint], timeout=0.5)
    store.put("/v1/x", {"ok": True})
    assert store.get("/v1/x").value == {"ok": True}
    store.close()


def test_session_lease_expires_keys(store: Store) -> None:
    session = Session(store, ttl=2).start()
    store.put("/v1/alive/h", {"x": 1}, lease=session.lease_id)
    time.sleep(2.5)  # kept alive beyond its TTL
    assert store.get("/v1/alive/h") is not None
    session.close(revoke=False)
    time.sleep(3.2)
    assert store.get("/v1/alive/h") is None


def test_session_revoke_on_close(store: Store) -> None:
    session = Session(store, ttl=10).start()
    store.put("/v1/alive/h", {"x": 1}, lease=session.lease_id)
    session.close()
    assert store.get("/v1/alive/h") is None


def test_election_one_leader_and_failover(store: Store) -> None:
    stop = threading.Event()
    first = Election(store, "/v1/lead", "one", ttl=2)
    assert first.campaign(stop)
    stale_fence = first.fence()
    assert store.txn(stale_fence, [Put("/v1/x", {})]).succeeded
    second = Election(store, "/v1/lead", "two", ttl=2)
    result: list[bool] = []
    thread = threading.Thread(target=lambda: result.append(second.campaign(stop)))
    thread.start()
    time.sleep(0.5)
    assert not result  # still standing by
    first.resign()
    thread.join(5)
    assert result == [True]
    # the successor's fenced writes pass; the deposed leader's can no longer change anything
    assert store.txn(second.fence(), [Put("/v1/y", {})]).succeeded
    assert not store.txn(stale_fence, [Put("/v1/z", {})]).succeeded
    assert store.get("/v1/z") is None
    second.resign()
    stop.set()


def test_election_standby_takes_over_when_leader_lease_lapses(store: Store) -> None:
    """A leader that dies without resigning: the standby leads within the TTL (+ slack)."""
    stop = threading.Event()
    first = Election(store, "/v1/lead", "one", ttl=2)
    assert first.campaign(stop)
    second = Election(store, "/v1/lead", "two", ttl=2)
    took_over: list[float] = []
    thread = threading.Thread(
        target=lambda: second.campaign(stop) and took_over.append(time.monotonic())
    )
    thread.start()
    died = time.monotonic()
    first.session.close(revoke=False)  # as if killed: no more keep-alives, no revoke
    thread.join(10)
    assert took_over and took_over[0] - died <= 2 + 1.0
    second.resign()
    stop.set()


def test_mirror_survives_an_unexpected_error(store: Store) -> None:
    """A watch consumer that fails once must not leave the mirror stale for good."""
    failures = []

    def on_event(event: object) -> None:
        if not failures:
            failures.append(event)
            raise RuntimeError("a bug in the consumer")

    mirror = Mirror(store, "/v1/s/", on_event=on_event).start()
    assert mirror.wait_synced(5)
    store.put("/v1/s/a", {"v": 1})
    assert poll(lambda: "/v1/s/a" in mirror.entries, 5, interval=0.01)
    store.put("/v1/s/b", {"v": 2})
    assert poll(lambda: "/v1/s/b" in mirror.entries, 5, interval=0.01)
    assert failures
    mirror.stop()
