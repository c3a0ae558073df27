"""Store: the etcd client every daemon uses.

Values are JSON objects. Every call goes to the current endpoint; on a connection-level failure
(etcd down, no leader, timeout) the store moves to the next endpoint and retries with back-off until
`retry_deadline` passes, then raises `Unavailable`. A write whose reply was lost may have been
applied: callers write with compare conditions (create-if-absent, mod_revision) or idempotently, so
a retry is either harmless or reported as a conflict.
"""

import builtins
import ipaddress
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import grpc
import orjson
from pyetcd.etcdrpc import rpc_pb2, rpc_pb2_grpc

from common.config import Config
from common.errors import Conflict, UcloudError, Unavailable
from common.store.transaction import Transaction
from common.store.txn import Compare, Op, Put, absent, encode, prefix_end
from common.tls import EtcdClientTls, etcd_client_tls, etcd_failure_hint

log = logging.getLogger(__name__)

T = TypeVar("T")

# Failures of the connection or the member rather than of the request: another endpoint (or the
# same one a moment later) may succeed.
RETRYABLE = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.INTERNAL,
}

# "hasleader" makes a member without a leader refuse at once (UNAVAILABLE) instead of hanging, and
# cancel watches, so the client fails over to a member of the majority.
METADATA = (("hasleader", "true"),)

CHANNEL_OPTIONS = [
    # A watch over a dead link would hang silently for minutes without keepalive pings.
    ("grpc.keepalive_time_ms", 5000),
    ("grpc.keepalive_timeout_ms", 2000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    # Reconnect quickly after an etcd restart (gRPC's default back-off grows to minutes).
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    # Listing 10,000 VMs is several MB.
    ("grpc.max_receive_message_length", 512 * 1024 * 1024),
]


GET_MANY_BATCH = 100


class StoreError(UcloudError):
    """etcd refused a request for a reason retrying cannot fix (a bug on our side)."""


class Compacted(UcloudError):
    """The revision asked for is gone from etcd's history; re-list, then watch again."""

    def __init__(self, revision: int) -> None:
        super().__init__(f"revision compacted (oldest kept: {revision})")
        self.revision = revision


class Entry:
    """One key as read: JSON value (decoded on first use) and its revisions."""

    __slots__ = ("_value", "create_revision", "key", "lease", "mod_revision", "raw")

    def __init__(self, kv: Any) -> None:
        self.key: str = kv.key.decode()
        self.raw: bytes = kv.value
        self.mod_revision: int = kv.mod_revision
        self.create_revision: int = kv.create_revision
        self.lease: int = kv.lease
        self._value: Any = None

    @property
    def value(self) -> Any:
        """The decoded JSON. Callers get their own copy to change: `copy_value()`."""
        if self._value is None:
            self._value = orjson.loads(self.raw)
        return self._value

    def copy_value(self) -> Any:
        return orjson.loads(self.raw)

    def __repr__(self) -> str:
        return f"Entry({self.key!r}, mod_revision={self.mod_revision})"


@dataclass(frozen=True)
class Listing:
    entries: list[Entry]
    revision: int  # the store revision the listing was read at: watch from revision + 1


@dataclass(frozen=True)
class Committed(Generic[T]):
    value: T  # what the transaction body returned
    revision: int | None  # the commit's revision; None when the body wrote nothing


@dataclass(frozen=True)
class TxnResult:
    succeeded: bool
    revision: int


def canonical_address(address: str) -> str:
    """host:port with an IPv6 literal in its canonical text form ([fd42:04dd::fe]:2379 ->
    [fd42:4dd::fe]:2379): gRPC matches the host part of the target against the server
    certificate's IP SANs as text, so another spelling of the same address would fail TLS."""
    if not address.startswith("["):
        return address
    host, separator, port = address[1:].partition("]")
    try:
        return f"[{ipaddress.IPv6Address(host).compressed}]{port}" if separator else address
    except ValueError:
        return address


class _Endpoint:
    def __init__(self, address: str, tls: EtcdClientTls | None = None) -> None:
        self.address = address
        address = canonical_address(address)
        if tls is None:
            self.channel = grpc.insecure_channel(address, options=CHANNEL_OPTIONS)
        else:
            # The server certificate is checked against the host part of `address` (an IP
            # literal against the certificate's IP SANs).
            self.channel = grpc.secure_channel(address, tls.credentials(), options=CHANNEL_OPTIONS)
        self.kv = rpc_pb2_grpc.KVStub(self.channel)
        self.lease = rpc_pb2_grpc.LeaseStub(self.channel)
        self.watch = rpc_pb2_grpc.WatchStub(self.channel)


class Store:
    """Thread-safe etcd client; one per process (after any fork)."""

    def __init__(
        self,
        endpoints: Sequence[str],
        timeout: float = 2.0,
        retry_deadline: float = 15.0,
        tls: EtcdClientTls | None = None,
    ) -> None:
        """`tls`: TLS (with a client certificate if it has one) to every endpoint; None: plain."""
        if not endpoints:
            raise ValueError("at least one etcd endpoint is needed")
        self.tls = tls
        self._endpoints = [_Endpoint(address, tls) for address in endpoints]
        self._current = 0
        self._lock = threading.Lock()
        self.timeout = timeout
        self.retry_deadline = retry_deadline

    @classmethod
    def from_config(cls, config: Config, retry_deadline: float | None = None) -> "Store":
        """The store the config describes; a bad etcd_ca/etcd_cert/etcd_key is a ConfigError
        naming the option (common/tls.py)."""
        return cls(
            config.etcd_endpoints,
            config.etcd_timeout,
            config.etcd_retry_deadline if retry_deadline is None else retry_deadline,
            tls=etcd_client_tls(config),
        )

    def close(self) -> None:
        for endpoint in self._endpoints:
            endpoint.channel.close()

    # -- endpoint selection and retry ------------------------------------------------------

    def endpoint(self) -> _Endpoint:
        """The endpoint calls go to now (watch.py uses it too)."""
        return self._endpoints[self._current]

    def endpoint_failed(self, endpoint: _Endpoint) -> None:
        """Move on to the next endpoint, unless another thread already did."""
        with self._lock:
            if self._endpoints[self._current] is endpoint and len(self._endpoints) > 1:
                self._current = (self._current + 1) % len(self._endpoints)
                log.warning(
                    "etcd %s failed; trying %s",
                    endpoint.address,
                    self._endpoints[self._current].address,
                )

    def _call(
        self, what: str, invoke: Callable[[_Endpoint], T], deadline: float | None = None
    ) -> T:
        give_up = time.monotonic() + (self.retry_deadline if deadline is None else deadline)
        delay = 0.05
        while True:
            endpoint = self.endpoint()
            try:
                return invoke(endpoint)
            except grpc.RpcError as error:
                code = error.code()
                if code == grpc.StatusCode.OUT_OF_RANGE and "compacted" in (error.details() or ""):
                    raise Compacted(0) from None
                if code not in RETRYABLE:
                    raise StoreError(f"etcd refused {what}: {error.details()}") from None
                self.endpoint_failed(endpoint)
                if time.monotonic() + delay > give_up:
                    details = error.details() or ""
                    raise Unavailable(
                        f"etcd unavailable ({what}): {details}"
                        + etcd_failure_hint(details, self.tls)
                    ) from None
                log.debug("etcd %s: %s (%s); retrying", what, code.name, error.details())
                time.sleep(delay)
                delay = min(delay * 2, 0.5)

    # -- reads ------------------------------------------------------------------------------

    def get(self, key: str) -> Entry | None:
        request = rpc_pb2.RangeRequest(key=key.encode())
        response = self._call(
            "get", lambda ep: ep.kv.Range(request, self.timeout, metadata=METADATA)
        )
        return Entry(response.kvs[0]) if response.kvs else None

    def list(self, prefix: str) -> Listing:
        """Every key under prefix, sorted by key, and the revision they were read at."""
        request = rpc_pb2.RangeRequest(key=prefix.encode(), range_end=prefix_end(prefix))
        response = self._call(
            "list", lambda ep: ep.kv.Range(request, self.timeout * 5, metadata=METADATA)
        )
        return Listing([Entry(kv) for kv in response.kvs], response.header.revision)

    def page(
        self, prefix: str, after: str | None, limit: int | None
    ) -> tuple[builtins.list[Entry], bool]:
        """At most `limit` keys under prefix (all of them when None), sorted, starting after the
        key `after` (or at the start); and whether more follow."""
        start = after + "\0" if after is not None else prefix
        request = rpc_pb2.RangeRequest(
            key=start.encode(), range_end=prefix_end(prefix), limit=limit or 0
        )
        response = self._call(
            "page", lambda ep: ep.kv.Range(request, self.timeout * 5, metadata=METADATA)
        )
        return [Entry(kv) for kv in response.kvs], bool(response.more)

    def get_many(self, keys: Sequence[str]) -> builtins.list[Entry | None]:
        """Several keys read in one round trip per GET_MANY_BATCH (an etcd transaction of reads;
        etcd allows 128 operations per transaction by default), in the order asked."""
        found: builtins.list[Entry | None] = []
        for first in range(0, len(keys), GET_MANY_BATCH):
            request = rpc_pb2.TxnRequest(
                success=[
                    rpc_pb2.RequestOp(request_range=rpc_pb2.RangeRequest(key=key.encode()))
                    for key in keys[first : first + GET_MANY_BATCH]
                ]
            )
            response = self._read_txn(request)
            for answer in response.responses:
                kvs = answer.response_range.kvs
                found.append(Entry(kvs[0]) if kvs else None)
        return found

    def _read_txn(self, request: rpc_pb2.TxnRequest) -> Any:
        return self._call(
            "get_many", lambda ep: ep.kv.Txn(request, self.timeout, metadata=METADATA)
        )

    def ping(self, deadline: float) -> None:
        """One cheap read within `deadline` seconds; Unavailable when etcd does not answer."""
        request = rpc_pb2.RangeRequest(key=b"/", count_only=True)
        timeout = min(self.timeout, deadline)
        self._call(
            "ping", lambda ep: ep.kv.Range(request, timeout, metadata=METADATA), deadline=deadline
        )

    def count(self, prefix: str) -> int:
        request = rpc_pb2.RangeRequest(
            key=prefix.encode(), range_end=prefix_end(prefix), count_only=True
        )
        response = self._call(
            "count", lambda ep: ep.kv.Range(request, self.timeout, metadata=METADATA)
        )
        return response.count

    # -- writes -----------------------------------------------------------------------------

    def put(self, key: str, value: Any, lease: int = 0) -> int:
        """Unconditional write (only for values nobody else changes); returns the revision."""
        request = rpc_pb2.PutRequest(key=key.encode(), value=encode(value), lease=lease)
        response = self._call("put", lambda ep: ep.kv.Put(request, self.timeout, metadata=METADATA))
        return response.header.revision

    def txn(
        self, compares: Iterable[Compare], success: Iterable[Op], failure: Iterable[Op] = ()
    ) -> TxnResult:
        request = rpc_pb2.TxnRequest(
            compare=[c.message() for c in compares],
            success=[op.message() for op in success],
            failure=[op.message() for op in failure],
        )
        response = self._call("txn", lambda ep: ep.kv.Txn(request, self.timeout, metadata=METADATA))
        return TxnResult(response.succeeded, response.header.revision)

    def create(self, key: str, value: Any, lease: int = 0) -> bool:
        """Create-if-absent; False if the key exists."""
        return self.txn([absent(key)], [Put(key, value, lease)]).succeeded

    def delete(self, key: str, prefix: bool = False) -> int:
        """Delete a key (or every key under a prefix); returns how many were deleted."""
        request = rpc_pb2.DeleteRangeRequest(key=key.encode())
        if prefix:
            request.range_end = prefix_end(key)
        response = self._call(
            "delete", lambda ep: ep.kv.DeleteRange(request, self.timeout, metadata=METADATA)
        )
        return response.deleted

    def transact(self, body: Callable[[Transaction], T], attempts: int = 20) -> "Committed[T]":
        """Run `body` and commit its writes atomically, only if nothing it read has changed
        meanwhile (common/store/transaction.py); on a conflict run it again, up to `attempts`
        times, then raise Conflict. The body may raise to abort; a body that queues no write
        commits nothing. Returns its value and the revision of the commit."""
        for attempt in range(attempts):
            transaction = Transaction(self)
            value = body(transaction)
            if not transaction.ops:
                return Committed(value, None)
            result = self.txn(transaction.compares(), transaction.ops)
            if result.succeeded:
                return Committed(value, result.revision)
            # Random back-off, growing: writers racing for one key spread out instead of
            # colliding again in lock-step.
            time.sleep(random.uniform(0, min(0.001 * 2**attempt, 0.1)))
        raise Conflict(f"the data changed {attempts} times while it was being written; try again")

    def update(
        self,
        key: str,
        mutate: Callable[[Any], Any | None],
        compares: Callable[[], Sequence[Compare]] = lambda: (),
    ) -> Entry | None:
        """Read-modify-write of one key: `mutate` gets a private copy of the current value and
        returns the new value, or None to leave the key as it is; it may raise to abort.
        Committed with `transact` (plus `compares()`, e.g. a leader fence), keeping the key's
        lease. Returns the entry after the write (or as read, when unchanged), or None when the
        key does not exist."""

        def body(transaction: Transaction) -> Entry | None:
            entry = transaction.get(key)
            if entry is None:
                return None
            new_value = mutate(entry.copy_value())
            if new_value is not None:
                transaction.require(*compares())
                transaction.put(key, new_value, entry.lease)
            return entry

        committed = self.transact(body)
        return self.get(key) if committed.revision is not None else committed.value

    # -- leases -----------------------------------------------------------------------------

    def grant(self, ttl: int) -> int:
        request = rpc_pb2.LeaseGrantRequest(TTL=ttl)
        response = self._call(
            "lease grant", lambda ep: ep.lease.LeaseGrant(request, self.timeout, metadata=METADATA)
        )
        return response.ID

    def keepalive(self, lease_id: int, deadline: float) -> int:
        """Refresh a lease once; returns its new TTL in seconds (0: the lease is gone)."""
        request = rpc_pb2.LeaseKeepAliveRequest(ID=lease_id)

        def invoke(ep: _Endpoint) -> int:
            responses = ep.lease.LeaseKeepAlive(
                iter([request]), min(self.timeout, deadline), metadata=METADATA
            )
            try:
                for response in responses:
                    return response.TTL
                return 0
            finally:
                responses.cancel()

        return self._call("lease keepalive", invoke, deadline=deadline)

    def revoke(self, lease_id: int) -> None:
        request = rpc_pb2.LeaseRevokeRequest(ID=lease_id)

        def invoke(ep: _Endpoint) -> None:
            try:
                ep.lease.LeaseRevoke(request, self.timeout, metadata=METADATA)
            except grpc.RpcError as error:
                if error.code() != grpc.StatusCode.NOT_FOUND:  # already expired: fine
                    raise

        self._call("lease revoke", invoke)

    # -- maintenance (tests, benchmarks) ------------------------------------------------------

    def compact(self, revision: int) -> None:
        request = rpc_pb2.CompactionRequest(revision=revision, physical=True)
        self._call("compact", lambda ep: ep.kv.Compact(request, self.timeout, metadata=METADATA))
