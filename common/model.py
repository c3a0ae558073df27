"""The records kept in etcd (VMs, hosts, images, users): constants, constructors and the
helpers every daemon uses to change them. docs/etcd.md describes the JSON of each."""

import datetime
import uuid as uuid_module
from typing import Any

from common import ipam, quota
from common.records import VM, Image
from common.store import Delete, Transaction, keys

# VM.desired
RUNNING, STOPPED, DELETED = "running", "stopped", "deleted"
DESIRED_STATES = (RUNNING, STOPPED, DELETED)

# VM.status (docs/api.md: a VM's life)
PENDING = "PENDING"  # accepted, no host yet
SCHEDULED = "SCHEDULED"  # host chosen, the host's VM agent has not reported yet
STATUS_RUNNING = "RUNNING"
STATUS_STOPPED = "STOPPED"
MIGRATING = "MIGRATING"
ERROR = "ERROR"
KILLED = "KILLED"  # its host died; runs again once rescheduled

# Host.status
ALIVE, DEAD = "ALIVE", "DEAD"

# Image.status and network status while ucloud_api/deletion.py looks for their users
DELETING = "DELETING"

LOG_KEEP = 30  # newest log lines kept on a record


STAMP = "%Y-%m-%dT%H:%M:%SZ"


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime(STAMP)


def seconds_since(stamp: str) -> float:
    """Seconds from a `now()` stamp until now (whole seconds: the stamp has no more)."""
    then = datetime.datetime.strptime(stamp, STAMP).replace(tzinfo=datetime.UTC)
    return (datetime.datetime.now(datetime.UTC) - then).total_seconds()


def new_uuid() -> str:
    return str(uuid_module.uuid4())


def add_log(record: VM, message: str) -> VM:
    """Append a timestamped line to record["log"], keeping the newest LOG_KEEP."""
    lines = record.setdefault("log", [])
    lines.append(f"{now()} {message}")
    del lines[:-LOG_KEEP]
    return record


def last_log_message(record: VM) -> str | None:
    """The newest log line without its timestamp (to avoid repeating the same reason)."""
    lines = record.get("log") or []
    return lines[-1].split(" ", 1)[1] if lines else None


def new_vm(spec: dict[str, Any], owner: str, image: Image) -> VM:
    """A VM record as the API stores it on create (validated spec in, PENDING out; the spec
    is ucloud_api/vms.CREATE's parse, a plain dict)."""
    vm: VM = {
        "uuid": new_uuid(),
        "name": spec["name"],
        "owner": owner,
        "specs": {
            "cpu": spec["cpu"],
            "ram": spec["ram"],
            "os_ssd": spec["os_ssd"],
            "hdd": spec.get("hdd", []),
        },
        "image": image["uuid"],
        "image_name": image["name"],
        "desired": RUNNING,
        "status": PENDING,
        "host": None,
        "networks": [],
        "ssh_keys": spec.get("ssh_keys", []),  # names; the keys themselves are in its VM data
        "created": now(),
        "log": [],
    }
    return add_log(vm, f"created by {owner}")


def vm_disk_bytes(vm: VM) -> int:
    specs = vm["specs"]
    return specs["os_ssd"] + sum(specs.get("hdd") or [])


def release_ops(vm: VM) -> list[Delete]:
    """What a VM holds in etcd besides its disks: its record, its owner index entry, its
    metadata and its MACs."""
    return [
        Delete(keys.vm(vm["uuid"])),
        Delete(keys.vm_owner(vm["owner"], vm["uuid"])),
        Delete(keys.vm_data(vm["uuid"])),
        *ipam.mac_releases(vm),
    ]


def release(txn: Transaction, vm: VM) -> None:
    """Release the VM within txn: release_ops, and its owner's usage (common/quota.py) goes
    down by what it counted for, in the same commit."""
    data = txn.get(keys.vm_data(vm["uuid"]))
    quota.release(txn, vm["owner"], quota.vm_usage(vm, data.value if data else None))
    txn.write(release_ops(vm))
