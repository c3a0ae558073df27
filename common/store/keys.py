"""Where things live in etcd (docs/etcd.md describes each value)."""

PREFIX = "/v1/"

VM = "/v1/vm/"  # /v1/vm/<uuid>: a VM, desired and observed state (common/model.py)
HOST = "/v1/host/"  # /v1/host/<hostname>: a host's capacity, usage and status
ALIVE = "/v1/alive/"  # /v1/alive/<hostname>: on the host's lease; its deletion = host death
IMAGE = "/v1/image/"  # /v1/image/<uuid>: a registered image
USER = "/v1/user/"  # /v1/user/<name>/account: a user (local OTP seed lives here)
SCHEDULER_LEADER = "/v1/scheduler/leader"  # election key of the scheduler leader


def vm(uuid: str) -> str:
    return VM + uuid


def host(hostname: str) -> str:
    return HOST + hostname


def alive(hostname: str) -> str:
    return ALIVE + hostname


def image(uuid: str) -> str:
    return IMAGE + uuid


def user_account(name: str) -> str:
    return f"{USER}{name}/account"


def last_part(key: str) -> str:
    return key.rsplit("/", 1)[-1]
