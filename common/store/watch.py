"""A prefix watch that outlives etcd restarts and endpoint failures.

etcd's watch stream ends when the member goes away; no client library resumes it by itself. This
one reconnects (to the next endpoint, with back-off) and resumes from the last revision it
delivered + 1, so no event is lost or repeated. When that revision has been compacted away the
iterator raises `Compacted`: the caller must re-list (see mirror.py).
"""

import logging
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import grpc
from pyetcd.etcdrpc import kv_pb2, rpc_pb2

from common.store.client import METADATA, Compacted, Entry, Store
from common.store.txn import prefix_end

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Event:
    """A change: `entry` is the new state for a put; for a delete, `entry` is None and
    `previous` holds the key as it was just before."""

    key: str
    revision: int
    entry: Entry | None
    previous: Entry | None

    @property
    def deleted(self) -> bool:
        return self.entry is None


class Watch:
    """Iterate over batches of events under `prefix` after `start_revision` (exclusive of
    nothing: the first event delivered has revision >= start_revision)."""

    def __init__(self, store: Store, prefix: str, start_revision: int) -> None:
        self.store = store
        self.prefix = prefix
        self.next_revision = start_revision
        self._cancelled = threading.Event()
        self._call: Any = None
        self._lock = threading.Lock()

    def cancel(self) -> None:
        """Stop the iteration (from any thread)."""
        self._cancelled.set()
        with self._lock:
            if self._call is not None:
                self._call.cancel()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def __iter__(self) -> Iterator[list[Event]]:
        delay = 0.05
        while not self._cancelled.is_set():
            endpoint = self.store.endpoint()
            try:
                for batch in self._stream(endpoint):
                    delay = 0.05
                    yield batch
            except grpc.RpcError as error:
                if self._cancelled.is_set():
                    return
                log.info(
                    "watch %s on %s ended (%s); resuming from revision %d",
                    self.prefix,
                    endpoint.address,
                    error.code().name,
                    self.next_revision,
                )
                self.store.endpoint_failed(endpoint)
                self._cancelled.wait(delay)
                delay = min(delay * 2, 1.0)

    def _stream(self, endpoint: Any) -> Iterator[list[Event]]:
        create = rpc_pb2.WatchCreateRequest(
            key=self.prefix.encode(),
            range_end=prefix_end(self.prefix),
            start_revision=self.next_revision,
            prev_kv=True,
            progress_notify=True,
        )
        requests: queue.Queue[Any] = queue.Queue()
        requests.put(rpc_pb2.WatchRequest(create_request=create))

        def request_iterator() -> Iterator[Any]:
            # Keep the sending side open: a half-closed stream ends the watch on the server.
            while True:
                item = requests.get()
                if item is None:
                    return
                yield item

        call = endpoint.watch.Watch(request_iterator(), metadata=METADATA)
        with self._lock:
            self._call = call
        if self._cancelled.is_set():
            call.cancel()
        try:
            for response in call:
                if response.compact_revision:
                    raise Compacted(response.compact_revision)
                if response.canceled:
                    # e.g. the member lost its leader: treat like a broken stream.
                    log.info("watch %s cancelled by etcd: %s", self.prefix, response.cancel_reason)
                    raise _StreamEnded()
                if response.events:
                    batch = [_event(e) for e in response.events]
                    self.next_revision = batch[-1].revision + 1
                    yield batch
                elif not response.created:
                    # progress notification: everything up to header.revision has been seen
                    self.next_revision = max(self.next_revision, response.header.revision + 1)
        except _StreamEnded:
            time.sleep(0.05)
            raise _Broken() from None
        finally:
            requests.put(None)
            call.cancel()
            with self._lock:
                self._call = None


class _StreamEnded(Exception):
    pass


class _Broken(grpc.RpcError):
    """A stream etcd ended on purpose; handled like a connection failure."""

    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.UNAVAILABLE


def _event(raw: Any) -> Event:
    previous = Entry(raw.prev_kv) if raw.HasField("prev_kv") else None
    if raw.type == kv_pb2.Event.DELETE:
        return Event(raw.kv.key.decode(), raw.kv.mod_revision, None, previous)
    return Event(raw.kv.key.decode(), raw.kv.mod_revision, Entry(raw.kv), previous)
