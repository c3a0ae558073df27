"""/v1/user/ssh-key: the caller's ssh public keys, stored through the API or read from LDAP.

API keys live under /v1/user/<name>/ssh-key/<key name>; each claims its fingerprint in the same
transaction, so one key is never stored twice. With an LDAP directory configured, the user's
`sshPublicKey` values are offered too, named `ldap-<fingerprint prefix>` (stable whatever their
order in the directory) and read-only here. The entry last read is kept in etcd: while the
directory is unreachable those keys are served marked `cached`, with the time they were read.
"""

import hashlib
import logging
from dataclasses import dataclass
from typing import Any, NotRequired, TypedDict

from flask import Blueprint, jsonify

from common import model, quota, sshkeys
from common.errors import Conflict, InvalidInput, NotFound, Unavailable
from common.records import DirectoryCache, SshKey
from common.store import Transaction, keys
from common.validation import NAME_SCHEMA, Field, Schema, name, text
from ucloud_api import paging
from ucloud_api.context import Services, body, caller, services

log = logging.getLogger(__name__)

blueprint = Blueprint("sshkeys", __name__)

DIRECTORY_PREFIX = "ldap-"

CREATE = Schema(
    "SshKeyCreate",
    [
        Field("name", name, NAME_SCHEMA, help="key name (with body credentials: key_name)"),
        Field(
            "key",
            text(sshkeys.MAX_LENGTH),
            {"type": "string"},
            help="one OpenSSH public key line: type, base64 data, optional comment",
        ),
    ],
)


class ShownKey(TypedDict):
    """A key as the API shows it."""

    name: str
    key: str
    fingerprint: str
    source: str
    cached: NotRequired[bool]
    cached_at: NotRequired[str]


@dataclass(frozen=True)
class UserKey:
    name: str
    key: str
    fingerprint: str
    source: str  # "api" or "ldap"
    cached_at: str | None = None  # set when read from the cache of an unreachable directory

    def public(self) -> ShownKey:
        shown: ShownKey = {
            "name": self.name,
            "key": self.key,
            "fingerprint": self.fingerprint,
            "source": self.source,
        }
        if self.cached_at:
            shown["cached"] = True
            shown["cached_at"] = self.cached_at
        return shown


def digest(key: sshkeys.PublicKey) -> str:
    return hashlib.sha256(key.blob).hexdigest()


def user_keys(svc: Services, user: str, strict: bool = True) -> list[UserKey]:
    """Every key of the user: own ones first, then the directory's (duplicates dropped).
    An unreachable directory without a cached entry raises Unavailable when `strict`; else
    its keys are left out."""
    found = [
        UserKey(e.value["name"], e.value["key"], e.value["fingerprint"], "api")
        for e in svc.store.list(keys.ssh_keys(user)).entries
    ]
    try:
        found += directory_keys(svc, user)
    except Unavailable:
        if strict:
            raise
        log.warning("directory unreachable: keys of %s from LDAP left out", user)
    seen: set[str] = set()
    unique = []
    for key in found:
        if key.fingerprint not in seen:
            seen.add(key.fingerprint)
            unique.append(key)
    return unique


def directory_keys(svc: Services, user: str) -> list[UserKey]:
    if svc.directory is None:
        return []
    cache_key = keys.directory_cache(user)
    cached = svc.store.get(cache_key)
    try:
        entry = svc.directory.user(user)
    except Unavailable as error:
        if cached is None:
            raise Unavailable(f"{error.message}; no cached copy of {user!r}") from None
        return _directory_keys(cached.value["ssh_keys"], cached.value["read_at"])
    if entry is None:
        if cached is not None:
            svc.store.delete(cache_key)
        return []
    lines = list(entry.ssh_keys)
    if cached is None or cached.value["ssh_keys"] != lines:
        fresh: DirectoryCache = {"ssh_keys": lines, "read_at": model.now()}
        svc.store.put(cache_key, fresh)
    return _directory_keys(lines, None)


def _directory_keys(lines: list[str], cached_at: str | None) -> list[UserKey]:
    found = []
    for line in lines:
        try:
            key = sshkeys.parse(line)
        except InvalidInput as error:
            log.warning("ignoring an sshPublicKey in the directory: %s", error.message)
            continue
        found.append(
            UserKey(
                DIRECTORY_PREFIX + digest(key)[:12], key.line, key.fingerprint, "ldap", cached_at
            )
        )
    return found


@blueprint.get("/v1/user/ssh-key")
def list_keys() -> Any:
    found = [key.public() for key in user_keys(services(), caller().name)]
    shown, token = paging.memory_page(found, lambda key: key["name"])
    return paging.respond(shown, token)


@blueprint.post("/v1/user/ssh-key")
def add_key() -> Any:
    spec = CREATE.parse(body({"key_name": "name"}))
    if spec["name"].startswith(DIRECTORY_PREFIX):
        raise InvalidInput(f"name: names starting with {DIRECTORY_PREFIX!r} are the directory's")
    key = sshkeys.parse(spec["key"])
    user = caller().name
    record: SshKey = {
        "name": spec["name"],
        "key": key.line,
        "fingerprint": key.fingerprint,
        "created": model.now(),
    }
    name_key = keys.ssh_key(user, spec["name"])
    fingerprint_key = keys.ssh_fingerprint(user, digest(key))
    config = services().config

    def store_key(txn: Transaction) -> None:
        if txn.get(name_key) is not None:
            raise Conflict(f"you have a key named {spec['name']!r} already")
        existing = txn.get(fingerprint_key)
        if existing is not None:
            raise Conflict(f"this key is stored already, as {existing.value['name']!r}")
        quota.charge(txn, config, user, {"ssh_keys": 1})
        txn.put(name_key, record)
        txn.put(fingerprint_key, {"name": spec["name"]})

    services().store.transact(store_key)
    return jsonify({**record, "source": "api"}), 201


@blueprint.delete("/v1/user/ssh-key/<key_name>")
def delete_key(key_name: str) -> Any:
    if key_name.startswith(DIRECTORY_PREFIX):
        raise Conflict(f"{key_name!r} comes from the LDAP directory: change it there")
    user = caller().name
    store = services().store
    entry = store.get(keys.ssh_key(user, key_name)) if "/" not in key_name else None
    if entry is None:
        raise NotFound(f"unknown ssh key {key_name!r}")
    key = sshkeys.parse(entry.value["key"])

    def remove(txn: Transaction) -> None:
        current = txn.get(entry.key)
        if current is None or current.mod_revision != entry.mod_revision:
            raise Conflict(f"ssh key {key_name!r} changed meanwhile; try again")
        quota.release(txn, user, {"ssh_keys": 1})
        txn.delete(entry.key)
        txn.delete(keys.ssh_fingerprint(user, digest(key)))

    store.transact(remove)
    return jsonify({**entry.value, "source": "api"})
