"""Per-user quotas: what a user holds (VMs, vCPUs, RAM, disk, networks, ssh keys, user data) is
counted in one usage record, /v1/usage/<user>, read and rewritten inside the very transaction that
creates or releases the thing. Two concurrent creates both read the record, so the second commit
fails its comparison, runs again on the new count and is refused when it no longer fits: a quota
cannot be overrun by a race.

Limits are the config's `quota_*` defaults, overridden field by field by the admin's record
/v1/quota/<user> (PUT /v1/user/<name>/quota). A user without a usage record (data from before
quotas) gets one counted from the store at its first create or release.

The records live outside /v1/user/ on purpose: the authentication cache mirrors that prefix, and a
write per VM create would reach every API process's cache for nothing.
"""

from collections.abc import Mapping
from typing import Any

from common.config import Config
from common.errors import Forbidden
from common.records import VM, VMData
from common.store import Reader, Store, Transaction, keys

FIELDS = ("vms", "cpu", "ram", "disk", "networks", "ssh_keys", "user_data")

# How an exceeded quota names what it counts.
NOUNS = {
    "vms": "VMs",
    "cpu": "vCPUs",
    "ram": "bytes of RAM",
    "disk": "bytes of disk",
    "networks": "networks",
    "ssh_keys": "ssh keys",
    "user_data": "bytes of user data",
}

Usage = dict[str, int]


def defaults(config: Config) -> Usage:
    return {field: int(config[f"quota_{field}"]) for field in FIELDS}


def limits(store: Reader, config: Config, user: str) -> Usage:
    """The user's limits: the defaults, with the admin's overrides."""
    entry = store.get(keys.quota(user))
    return {**defaults(config), **(entry.value if entry else {})}


def vm_usage(vm: VM, data: VMData | None) -> Usage:
    """What one VM counts for."""
    specs = vm["specs"]
    return {
        "vms": 1,
        "cpu": specs["cpu"],
        "ram": specs["ram"],
        "disk": specs["os_ssd"] + sum(specs.get("hdd") or []),
        "user_data": len(((data.get("user_data") if data else None) or "").encode()),
    }


def count(store: Store, user: str) -> Usage:
    """The user's usage counted from the store: their VMs (by the owner index), networks and
    ssh keys. Used once per user, when no usage record exists yet."""
    total = dict.fromkeys(FIELDS, 0)
    uuids = [keys.last_part(e.key) for e in store.list(keys.vms_of(user)).entries]
    records = store.get_many([keys.vm(uuid) for uuid in uuids])
    datas = store.get_many([keys.vm_data(uuid) for uuid in uuids])
    for record, data in zip(records, datas, strict=True):
        if record is not None:
            for field, amount in vm_usage(record.value, data.value if data else None).items():
                total[field] += amount
    total["networks"] = store.count(f"{keys.NETWORK}{user}/")
    total["ssh_keys"] = store.count(keys.ssh_keys(user))
    return total


def usage(txn: Transaction, user: str) -> Usage:
    """The user's usage, read as part of the transaction (its record is compared on commit)."""
    entry = txn.get(keys.usage(user))
    if entry is None:
        return count(txn.store, user)
    return {**dict.fromkeys(FIELDS, 0), **entry.value}


def charge(txn: Transaction, config: Config, user: str, delta: Mapping[str, int]) -> None:
    """Add delta to the user's usage within txn; Forbidden naming the first quota it exceeds
    (the transaction then writes nothing)."""
    current = usage(txn, user)
    allowed = limits(txn, config, user)
    for field, amount in delta.items():
        if amount > 0 and current[field] + amount > allowed[field]:
            asked = "" if amount == 1 else f", this asks for {amount}"
            raise Forbidden(
                f"quota: at most {allowed[field]} {NOUNS[field]} (you have {current[field]}{asked})"
            )
    txn.put(keys.usage(user), {f: current[f] + delta.get(f, 0) for f in FIELDS})


def release(txn: Transaction, user: str, delta: Mapping[str, int]) -> None:
    """Subtract delta from the user's usage within txn (never below 0)."""
    current = usage(txn, user)
    txn.put(keys.usage(user), {f: max(0, current[f] - delta.get(f, 0)) for f in FIELDS})


def show(store: Store, config: Config, user: str) -> dict[str, Any]:
    """GET /v1/user/<name>/quota: limits, usage, and which limits the admin set."""
    entry = store.get(keys.usage(user))
    used = {**dict.fromkeys(FIELDS, 0), **entry.value} if entry else count(store, user)
    override = store.get(keys.quota(user))
    return {
        "user": user,
        "limits": limits(store, config, user),
        "usage": used,
        "overrides": override.value if override else {},
    }
