"""Transaction building blocks: operations (Put, Delete) and comparisons, turned into etcd's
protobuf messages. Values are JSON objects, encoded once here."""

from dataclasses import dataclass
from typing import Any

import orjson
from pyetcd.etcdrpc import rpc_pb2


def encode(value: Any) -> bytes:
    """JSON bytes for etcd; keys sorted so equal values are equal bytes."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def prefix_end(prefix: str) -> bytes:
    """The range end that makes [prefix, end) cover every key starting with prefix."""
    raw = bytearray(prefix.encode())
    for index in range(len(raw) - 1, -1, -1):
        if raw[index] < 0xFF:
            raw[index] += 1
            return bytes(raw[: index + 1])
    return b"\0"


@dataclass(frozen=True)
class Put:
    key: str
    value: Any
    lease: int = 0

    def message(self) -> rpc_pb2.RequestOp:
        return rpc_pb2.RequestOp(
            request_put=rpc_pb2.PutRequest(
                key=self.key.encode(), value=encode(self.value), lease=self.lease
            )
        )


@dataclass(frozen=True)
class Delete:
    key: str
    prefix: bool = False

    def message(self) -> rpc_pb2.RequestOp:
        request = rpc_pb2.DeleteRangeRequest(key=self.key.encode())
        if self.prefix:
            request.range_end = prefix_end(self.key)
        return rpc_pb2.RequestOp(request_delete_range=request)


Op = Put | Delete


@dataclass(frozen=True)
class Compare:
    """One condition; build with `absent`, `mod_revision_is`, `created_at` or `lease_is`."""

    key: str
    target: int
    value: int  # a revision, or a lease id for lease_is

    def message(self) -> rpc_pb2.Compare:
        field = {
            rpc_pb2.Compare.CREATE: "create_revision",
            rpc_pb2.Compare.MOD: "mod_revision",
            rpc_pb2.Compare.LEASE: "lease",
        }[self.target]
        fields = {field: self.value}
        return rpc_pb2.Compare(
            result=rpc_pb2.Compare.EQUAL, target=self.target, key=self.key.encode(), **fields
        )


def absent(key: str) -> Compare:
    """True while the key does not exist (create-if-absent)."""
    return Compare(key, rpc_pb2.Compare.CREATE, 0)


def mod_revision_is(key: str, revision: int) -> Compare:
    """True while nobody changed the key since it was read at this mod_revision."""
    return Compare(key, rpc_pb2.Compare.MOD, revision)


def created_at(key: str, revision: int) -> Compare:
    """True while the key is the very one created at this revision (leader fencing)."""
    return Compare(key, rpc_pb2.Compare.CREATE, revision)


def lease_is(key: str, lease_id: int) -> Compare:
    """True while the key exists and is bound to this lease (a host's current incarnation)."""
    return Compare(key, rpc_pb2.Compare.LEASE, lease_id)
