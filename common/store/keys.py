"""Where things live in etcd: every key prefix is defined here and nowhere else (docs/etcd.md
describes each value)."""

from urllib.parse import quote

PREFIX = "/v1/"

VM = "/v1/vm/"  # /v1/vm/<uuid>: a VM, desired and observed state (common/model.py)
HOST = "/v1/host/"  # /v1/host/<hostname>: a host's capacity, usage and status
ALIVE = "/v1/alive/"  # /v1/alive/<hostname>: on the host's lease; its deletion = host death
IMAGE = "/v1/image/"  # /v1/image/<uuid>: a registered image
USER = "/v1/user/"  # /v1/user/<name>/account: a user (local OTP seed lives here)
SCHEDULER_LEADER = "/v1/scheduler/leader"  # election key of the scheduler leader
VM_DATA = "/v1/vmdata/"  # /v1/vmdata/<uuid>: what the metadata service hands the VM
AUTH_FAILURES = "/v1/auth-failures/"  # /v1/auth-failures/<sha256> -> {count, until} on a lease
IMAGE_NAME = "/v1/image-name/"  # /v1/image-name/<scope>/<name> -> {"uuid"}: image names claimed
NETWORK = "/v1/network/"  # /v1/network/<owner>/<name>: a network (common/ipam.py)
VNI = "/v1/ipam/vni/"  # /v1/ipam/vni/<vni> -> {"network": "<owner>/<name>"}
NET_PREFIX = "/v1/ipam/prefix/"  # /v1/ipam/prefix/<index> -> {"network"}: index-th /64 of the pool
MAC = "/v1/ipam/mac/"  # /v1/ipam/mac/<mac> -> {"vm": uuid}
VNI_NEXT = "/v1/ipam/vni-next"  # {"next": n}: where the next VNI search starts (a cursor)
PREFIX_NEXT = "/v1/ipam/prefix-next"  # {"next": index}: the same for the /64s
VM_OWNER = "/v1/vm-owner/"  # /v1/vm-owner/<owner>/<uuid> -> {}: the VMs of an owner (an index)
USAGE = "/v1/usage/"  # /v1/usage/<user>: what the user holds, counted (common/quota.py)
QUOTA = "/v1/quota/"  # /v1/quota/<user>: the admin's limits for the user, overriding the defaults
OTP_USED = "/v1/otp-used/"  # /v1/otp-used/<realm>/<name>/<code> -> {}: TOTP codes used, on a lease
SESSION = "/v1/session/"  # /v1/session/<sha256 hex of the token>: a session (common/sessions.py)


def vm(uuid: str) -> str:
    return VM + uuid


def vm_owner(owner: str, uuid: str) -> str:
    return f"{VM_OWNER}{owner}/{uuid}"


def vms_of(owner: str) -> str:
    """The prefix of an owner's index entries."""
    return f"{VM_OWNER}{owner}/"


def usage(user: str) -> str:
    return USAGE + user


def quota(user: str) -> str:
    return QUOTA + user


def host(hostname: str) -> str:
    return HOST + hostname


def alive(hostname: str) -> str:
    return ALIVE + hostname


def image(uuid: str) -> str:
    return IMAGE + uuid


def user_account(name: str) -> str:
    return f"{USER}{name}/account"


def otp_used(realm: str, name: str, code: str) -> str:
    """Realm and name percent-encoded: with the ungleich-otp backend they may hold a `/`, and
    ("a/b", "c") must not claim the key of ("a", "b/c")."""
    return f"{OTP_USED}{quote(realm, safe='')}/{quote(name, safe='')}/{code}"


def session(digest: str) -> str:
    return SESSION + digest


def vm_data(uuid: str) -> str:
    return VM_DATA + uuid


def auth_failures(digest: str) -> str:
    return AUTH_FAILURES + digest


def image_name(scope: str, name: str) -> str:
    """scope: "public" or "user/<name>"."""
    return f"{IMAGE_NAME}{scope}/{name}"


def network(owner: str, name: str) -> str:
    return f"{NETWORK}{owner}/{name}"


def vni(number: int) -> str:
    return f"{VNI}{number}"


def net_prefix(index: int) -> str:
    return f"{NET_PREFIX}{index}"


def mac(address: str) -> str:
    return MAC + address


def ssh_keys(user: str) -> str:
    """/v1/user/<name>/ssh-key/<key name>: the user's own keys."""
    return f"{USER}{user}/ssh-key/"


def ssh_key(user: str, name: str) -> str:
    return ssh_keys(user) + name


def ssh_fingerprint(user: str, digest: str) -> str:
    """Claimed with the key, so the same key cannot be stored twice under two names."""
    return f"{USER}{user}/ssh-fingerprint/{digest}"


def directory_cache(user: str) -> str:
    """The user's entry as last read from the LDAP directory (served, marked, while it is
    unreachable)."""
    return f"{USER}{user}/directory"


def last_part(key: str) -> str:
    return key.rsplit("/", 1)[-1]
