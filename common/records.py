"""The JSON records kept in etcd, as the type checker sees them (docs/etcd.md describes each; the
constructors are common/model.py, common/ipam.py, ucloud_api/ and ucloud_host/agent.py).

Types only: the records stay plain dicts at run time, and nothing here changes what is stored. A
field that appears only once some daemon wrote it is `NotRequired`.
"""

from typing import NotRequired, TypedDict


class Specs(TypedDict):
    """What a VM is made of; sizes in bytes."""

    cpu: int
    ram: int
    os_ssd: int
    hdd: list[int]


class Nic(TypedDict):
    """One entry of a VM's `networks` (common/ipam.new_nic): the NIC and the network it is on."""

    network: str  # the network's name (its owner is the VM's)
    vni: int
    mac: str
    ipv6: str  # SLAAC address: EUI-64 of mac in prefix
    slot: int  # hot-plug slot, 0..ipam.MAX_NICS-1
    mtu: int
    prefix: str  # the network's /64


# `from` is a keyword: the functional form.
Migration = TypedDict("Migration", {"from": str, "to": str | None})


class RuleSpec(TypedDict):
    """An ingress rule as validated, before it gets its id."""

    protocol: str  # tcp, udp, icmpv6 or any
    ports: list[int] | None  # [first, last] (tcp and udp only); None: every port
    source: str  # IPv6 prefix, "::/0": anywhere


class FirewallRule(RuleSpec):
    """One entry of a VM's `firewall` (ucloud_api/firewall.py)."""

    id: str


class VM(TypedDict):
    """/v1/vm/<uuid> (common/model.new_vm); docs/api.md, "The VM record", says who writes what."""

    uuid: str
    name: str
    owner: str
    specs: Specs
    image: str  # the image's uuid
    image_name: str
    desired: str  # model.RUNNING, STOPPED or DELETED
    status: str  # model.PENDING ... model.ERROR
    host: str | None
    networks: list[Nic]
    ssh_keys: list[str]  # key names; the keys themselves are in its VMData
    created: str
    log: list[str]
    # Where a user reaches the VM on its host, as the hypervisor driver says (console()):
    # qemu's are {vnc, serial, serial_log}, paths of unix sockets and of the serial log.
    console: NotRequired[dict[str, str]]
    incarnation: NotRequired[str]
    reboot_requested: NotRequired[str | None]
    rebooted: NotRequired[str | None]
    retries: NotRequired[int]
    retries_seen: NotRequired[int]
    migrate: NotRequired[Migration | None]
    firewall: NotRequired[list[FirewallRule]]


class VMDataKey(TypedDict):
    name: str
    key: str  # an OpenSSH public key line


class VMData(TypedDict):
    """/v1/vmdata/<uuid>: what ucloud-meta serves the VM."""

    ssh_keys: list[VMDataKey]
    user_data: str | None


class Capacity(TypedDict):
    cpu: int
    ram: int
    disk: int


class Usage(TypedDict):
    load1: float
    ram_used: int
    disk_used: int


class Host(TypedDict, total=False):
    """/v1/host/<hostname>. Written field by field (ucloud_host/agent.py registers it in steps,
    the scheduler and the API add theirs), so every field is optional to the type checker; a
    registered host has hostname, status, capacity, lease_ttl, underlay and registered."""

    hostname: str
    status: str  # model.ALIVE or DEAD
    capacity: Capacity
    usage: Usage
    lease_ttl: int
    underlay: str | None
    registered: str
    alive_since: str
    reported: str
    died: str
    lease: str  # hex id of the lease its liveness key lives on
    rejoined: str  # when it came back on a new lease (its old one was lost: it was dead)
    maintenance: bool


class Image(TypedDict):
    """/v1/image/<uuid> (ucloud_api/images.py)."""

    uuid: str
    name: str
    owner: str
    public: bool
    source: str  # the file it was registered from
    format: str
    size: int  # virtual size in bytes
    status: str  # AVAILABLE or model.DELETING
    created: str
    file: str  # where the image store keeps it


class NetworkRequest(TypedDict):
    """What the API knows of a network before common/ipam.claim_network gives it its numbers."""

    uuid: str
    name: str
    owner: str
    created: str


class Network(NetworkRequest):
    """/v1/network/<owner>/<name>."""

    vni: int
    prefix: str  # a /64 of network_prefixes
    mtu: int
    status: str  # ipam.ACTIVE or model.DELETING


class Account(TypedDict):
    """/v1/user/<name>/account: a local OTP user (the seed is a secret)."""

    name: str
    realm: str
    seed: str
    created: str


class SshKey(TypedDict):
    """/v1/user/<name>/ssh-key/<key name>."""

    name: str
    key: str
    fingerprint: str
    created: str


class DirectoryCache(TypedDict):
    """/v1/user/<name>/directory: the user's LDAP keys as last read."""

    ssh_keys: list[str]
    read_at: str
