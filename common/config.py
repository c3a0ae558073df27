"""Configuration: one table of options, read from a file, `UCLOUD_*` environment variables and
command-line flags (later wins).

The file (`/etc/ucloud/ucloud.conf` unless `--config` says otherwise; `UCLOUD_CONFIG` is the
CLI's, see ucloud_cli/settings.py) holds
`key = value` lines; `#` starts a comment. The same table documents every key (docs/config.md is
generated from it by `python -m common.config`), so docs and code cannot drift apart.
"""

import ipaddress
import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from common.units import parse_size

DEFAULT_PATH = "/etc/ucloud/ucloud.conf"


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {text!r}")


def _list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _optional_size(text: str) -> int | None:
    return parse_size(text) if text.strip() else None


def _optional_int(text: str) -> int | None:
    return int(text) if text.strip() else None


def _range(text: str) -> tuple[int, int]:
    low, _, high = text.partition("-")
    first, last = int(low), int(high or low)
    if not 0 < first <= last:
        raise ValueError(f"expected a range like 100-65535, got {text!r}")
    return first, last


def _ipv6_pool(text: str) -> ipaddress.IPv6Network:
    pool = ipaddress.IPv6Network(text.strip(), strict=True)
    if pool.prefixlen > 64:
        raise ValueError(f"{text} is smaller than a /64")
    return pool


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError(f"expected a positive integer, got {text!r}")
    return value


def _choice(*choices: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}, got {text!r}")
        return text

    return parse


@dataclass(frozen=True)
class Option:
    """One configuration key: its default (as text, parsed like any other source), parser and
    the sentence the docs show."""

    name: str
    default: str
    parse: Callable[[str], Any]
    help: str


OPTIONS: dict[str, Option] = {
    option.name: option
    for option in (
        Option(
            "etcd_endpoints",
            "127.0.0.1:2379",
            _list,
            "etcd client endpoints, host:port, comma-separated; the store fails over between them",
        ),
        Option("etcd_timeout", "2.0", float, "seconds one etcd request may take before failover"),
        Option(
            "etcd_retry_deadline",
            "15.0",
            float,
            "seconds a store call retries across endpoints before it reports etcd unavailable",
        ),
        Option(
            "etcd_ca",
            "",
            str,
            "PEM file of the CA(s) etcd's server certificate must chain to; setting it (or"
            " etcd_cert) makes the daemons talk TLS to etcd (docs/tls.md); all empty: plain gRPC",
        ),
        Option(
            "etcd_cert",
            "",
            str,
            "PEM client certificate the daemons show etcd (etcd --client-cert-auth); with etcd_key",
        ),
        Option("etcd_key", "", str, "PEM private key of etcd_cert (a secret: keep it mode 0600)"),
        Option("log_level", "INFO", str.upper, "DEBUG, INFO, WARNING or ERROR"),
        Option(
            "metrics_port",
            "",
            _optional_int,
            "port of the daemon's Prometheus /metrics listener on 127.0.0.1 (empty: the daemon's"
            " default, 0: off); ucloud-api serves /metrics itself",
        ),
        Option(
            "api_bind",
            "127.0.0.1:8080,[::1]:8080",
            str,
            "address:port pairs ucloud-api listens on, comma-separated",
        ),
        Option(
            "api_tls_cert",
            "",
            str,
            "PEM certificate (chain) ucloud-api serves HTTPS with; empty: plain HTTP, only for"
            " development or behind a TLS-terminating proxy on the same machine (docs/tls.md)",
        ),
        Option("api_tls_key", "", str, "PEM private key of api_tls_cert (keep it mode 0600)"),
        Option(
            "api_workers", "2", int, "gunicorn worker processes of ucloud-api (about one per core)"
        ),
        Option("api_threads", "4", int, "request threads per ucloud-api worker process"),
        Option("api_max_body", "1MiB", parse_size, "largest request body the API accepts"),
        Option(
            "api_request_deadline",
            "2.0",
            float,
            "seconds an API request waits for etcd (retrying across endpoints) before it answers"
            " 503 with Retry-After, so no request thread hangs while etcd is away",
        ),
        Option(
            "auth_backend",
            "local",
            _choice("local", "ungleich-otp"),
            "where TOTP tokens are checked: seeds kept in etcd (local) or an ungleich-otp server",
        ),
        Option(
            "auth_window",
            "1",
            int,
            "30-second TOTP steps accepted either side of now (local; with ungleich-otp: the"
            " server's window, which sets how long used codes are remembered)",
        ),
        Option("admin_realm", "ucloud-admin", str, "callers of this realm may act on everything"),
        Option(
            "auth_lockout",
            "60",
            int,
            "seconds an identity or address stays refused (429) after too many failed logins",
        ),
        Option(
            "auth_failures_per_identity",
            "5",
            int,
            "failed logins of one realm/name within auth_lockout before it is refused",
        ),
        Option(
            "auth_failures_per_address",
            "20",
            int,
            "failed logins from one client address within auth_lockout before it is refused",
        ),
        Option(
            "session_ttl",
            "3600",
            _positive_int,
            "seconds a session token of POST /v1/session stays valid (Authorization: Bearer)",
        ),
        Option("otp_server", "", str, "base URL of the ungleich-otp server (ungleich-otp backend)"),
        Option("otp_verify_name", "", str, "ucloud's own name at the ungleich-otp server"),
        Option("otp_verify_realm", "", str, "ucloud's own realm at the ungleich-otp server"),
        Option(
            "otp_verify_seed",
            "",
            str,
            "ucloud's own TOTP seed at the ungleich-otp server (a secret: never logged)",
        ),
        Option("ldap_uri", "", str, "LDAP directory of users and ssh keys (empty: none)"),
        Option("ldap_base_dn", "", str, "where users are searched (subtree)"),
        Option("ldap_bind_dn", "", str, "DN ucloud binds as (empty: anonymous)"),
        Option("ldap_bind_password", "", str, "password of ldap_bind_dn (a secret: never logged)"),
        Option("ldap_user_attribute", "uid", str, "attribute holding the user name"),
        Option("ldap_timeout", "2.0", float, "seconds for connecting to and searching LDAP"),
        Option(
            "hostname",
            socket.gethostname(),
            str,
            "this host's name in the cloud (several hosts may share one machine)",
        ),
        Option(
            "host_lease_ttl",
            "7",
            int,
            "seconds a host's liveness key outlives its last refresh: a dead host's VMs restart"
            " elsewhere about this long after it died, and an etcd stall shorter than"
            " TTL - fence_margin - 0.5 s kills no VM (docs/failover.md)",
        ),
        Option(
            "fence_margin",
            "1.0",
            float,
            "a host kills its VMs this many seconds before its lease can expire at etcd",
        ),
        Option(
            "shared_storage",
            "false",
            _bool,
            "image_dir is shared by all hosts (NFS/CephFS-like): VMs of a dead host may be"
            " restarted elsewhere from the same disks (always on with image_store = rbd)",
        ),
        Option("quota_vms", "50", int, "VMs a user may have, unless the admin set another quota"),
        Option("quota_cpu", "100", int, "virtual CPUs a user's VMs may have in total"),
        Option("quota_ram", "256GiB", parse_size, "memory a user's VMs may have in total"),
        Option("quota_disk", "4TiB", parse_size, "disk (OS disks and extra disks) of a user's VMs"),
        Option("quota_networks", "20", int, "networks a user may have"),
        Option("quota_ssh_keys", "100", int, "ssh keys a user may store through the API"),
        Option(
            "quota_user_data",
            "1MiB",
            parse_size,
            "bytes of user data a user's VMs may carry in total (each at most 64 KiB)",
        ),
        Option("network_vnis", "100-65535", _range, "VXLAN network identifiers networks get"),
        Option(
            "network_prefixes",
            "fd75:636c:6f75::/48",
            _ipv6_pool,
            "IPv6 pool each network gets a /64 of (a /48 gives 65,536 networks)",
        ),
        Option(
            "tenant_mtu",
            "1430",
            int,
            "MTU of tenant networks, advertised to VMs: underlay MTU - 70 (VXLAN over IPv6)",
        ),
        Option(
            "network_dns",
            "",
            _list,
            "DNS servers announced to VMs (RDNSS) together with a default route; empty: none",
        ),
        Option(
            "metadata_port",
            "80",
            int,
            "TCP port of ucloud-meta at fe80::a9fe:a9fe on every tenant bridge",
        ),
        Option(
            "firewall",
            "nft",
            str,
            "firewall driver of ucloud-firewall: nft (Linux), pf (BSD); none: no ucloud-firewall"
            " on this host (VM ports unfiltered, ucloud-vm does not wait for it)",
        ),
        Option(
            "firewall_default_ingress",
            "allow",
            _choice("allow", "deny"),
            "what reaches a VM without ingress rules: everything (allow) or only replies to its"
            " own traffic and essential ICMPv6 (deny); a VM with rules gets only what they allow",
        ),
        Option(
            "underlay_interface",
            "",
            str,
            "the host's interface VXLAN runs over (empty: the one holding underlay_address)",
        ),
        Option("underlay_address", "", str, "the host's IPv6 address on the VXLAN underlay"),
        Option(
            "network_driver",
            "linux",
            str,
            "network driver: linux (ucloud-net's bridges, VXLANs and taps; ucloud-ipam's and"
            " ucloud-meta's addresses and sockets on tenant bridges)",
        ),
        Option("host_cpu", "", _optional_int, "CPUs this host offers (empty: detected)"),
        Option("host_ram", "", _optional_size, "memory this host offers (empty: detected)"),
        Option(
            "host_disk",
            "",
            _optional_size,
            "disk this host offers (empty: free space of image_dir)",
        ),
        Option(
            "host_facts",
            "linux",
            str,
            "where ucloud-host measures capacity and usage: linux (/proc, statvfs)",
        ),
        Option("host_report_interval", "10", float, "seconds between a host's usage reports"),
        Option("cpu_overcommit", "4.0", float, "vCPUs placed per host CPU"),
        Option("ram_overcommit", "1.0", float, "VM memory placed per byte of host memory"),
        Option("disk_overcommit", "1.0", float, "VM disk placed per byte of host disk"),
        Option(
            "placement",
            "spread",
            _choice("spread", "pack"),
            "spread VMs over hosts (most free memory first) or pack them (least free first)",
        ),
        Option("scheduler_lease_ttl", "3", int, "seconds the scheduler leader's lease lasts"),
        Option(
            "mass_failure_share",
            "0.5",
            float,
            "when more than this share of the hosts died within mass_failure_grace, their VMs"
            " wait for them instead of moving (a control-plane or network fault, not host"
            " failures)",
        ),
        Option(
            "mass_failure_grace",
            "30",
            float,
            "seconds the VMs of hosts that died together wait for their hosts to come back",
        ),
        Option("run_dir", "/run/ucloud", str, "per-VM sockets and logs: <run_dir>/vm/<uuid>/"),
        Option("hypervisor", "qemu", str, "hypervisor driver: qemu (bhyve on FreeBSD later)"),
        Option(
            "accel",
            "auto",
            _choice("auto", "kvm", "tcg"),
            "qemu accelerator; auto probes whether KVM really runs a guest, else TCG",
        ),
        Option(
            "qemu_user",
            "ucloud-qemu",
            str,
            "the system user qemu runs as (scripts/setup.sh creates it); its files are 0600 and"
            " only processes of its uid count as VMs (docs/vm.md)",
        ),
        Option(
            "serial_log_max",
            "2MiB",
            parse_size,
            "a VM's serial log is rotated past this size (serial.log.1 keeps the previous part)",
        ),
        Option(
            "config_drive",
            "true",
            _bool,
            "attach a config drive (ISO 9660, label config-2: keys, user data, network data) to"
            " every VM, for cloud-init images that cannot reach the metadata service",
        ),
        Option(
            "vm_stop_timeout",
            "30",
            float,
            "seconds a guest gets to power off (ACPI) before its process is ended",
        ),
        Option(
            "image_store",
            "fs",
            str,
            "image store driver, the owner of image files and VM disks: fs (files under"
            " image_dir) or rbd (Ceph RBD images in rbd_pool; docs/images.md)",
        ),
        Option(
            "image_dir",
            "/var/lib/ucloud/images",
            str,
            "the filesystem image store: image files and VM disks (with rbd: where an uploaded"
            " image is copied and checked before it goes to Ceph)",
        ),
        Option("rbd_pool", "ucloud", str, "the RBD image store: the Ceph pool of images and disks"),
        Option(
            "ceph_conf",
            "/etc/ceph/ceph.conf",
            str,
            "the RBD image store: the Ceph config file (monitors); qemu opens disks with it, so"
            " qemu's user must be able to read it",
        ),
        Option(
            "ceph_client_id",
            "admin",
            str,
            "the RBD image store: the Ceph client (cephx user without `client.`) of daemons and"
            " qemu; its keyring is found as ceph_conf says",
        ),
    )
}


class Config(dict[str, Any]):
    """Parsed options by name; attribute access for readability (`config.etcd_endpoints`).

    A dict at run time (tests set `config["network_vnis"] = ...`); the annotations below tell the
    type checker what each attribute is: one per OPTIONS entry, the type its parser returns
    (tests/test_config.py keeps the two in step). They create no class attributes, so every
    attribute read still goes to the dict through __getattr__."""

    etcd_endpoints: list[str]
    etcd_timeout: float
    etcd_retry_deadline: float
    etcd_ca: str
    etcd_cert: str
    etcd_key: str
    log_level: str
    metrics_port: int | None
    api_bind: str
    api_tls_cert: str
    api_tls_key: str
    api_workers: int
    api_threads: int
    api_max_body: int
    api_request_deadline: float
    auth_backend: str
    auth_window: int
    admin_realm: str
    auth_lockout: int
    auth_failures_per_identity: int
    auth_failures_per_address: int
    session_ttl: int
    otp_server: str
    otp_verify_name: str
    otp_verify_realm: str
    otp_verify_seed: str
    ldap_uri: str
    ldap_base_dn: str
    ldap_bind_dn: str
    ldap_bind_password: str
    ldap_user_attribute: str
    ldap_timeout: float
    hostname: str
    host_lease_ttl: int
    fence_margin: float
    shared_storage: bool
    quota_vms: int
    quota_cpu: int
    quota_ram: int
    quota_disk: int
    quota_networks: int
    quota_ssh_keys: int
    quota_user_data: int
    network_vnis: tuple[int, int]
    network_prefixes: ipaddress.IPv6Network
    tenant_mtu: int
    network_dns: list[str]
    metadata_port: int
    firewall: str
    firewall_default_ingress: str
    underlay_interface: str
    underlay_address: str
    network_driver: str
    host_cpu: int | None
    host_ram: int | None
    host_disk: int | None
    host_facts: str
    host_report_interval: float
    cpu_overcommit: float
    ram_overcommit: float
    disk_overcommit: float
    placement: str
    scheduler_lease_ttl: int
    mass_failure_share: float
    mass_failure_grace: float
    run_dir: str
    hypervisor: str
    accel: str
    qemu_user: str
    serial_log_max: int
    config_drive: bool
    vm_stop_timeout: float
    image_store: str
    image_dir: str
    rbd_pool: str
    ceph_conf: str
    ceph_client_id: str

    if not TYPE_CHECKING:  # to the type checker, only the options above are attributes

        def __getattr__(self, name: str) -> Any:
            try:
                return self[name]
            except KeyError:
                raise AttributeError(name) from None


def read_file(path: str | Path) -> dict[str, str]:
    """Parse `key = value` lines. Unknown keys are an error: a typo must not be silently ignored."""
    values: dict[str, str] = {}
    for number, raw in enumerate(Path(path).read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if "=" not in line:
            raise click.UsageError(f"{path}:{number}: expected 'key = value', got {raw!r}")
        key, value = (part.strip() for part in line.split("=", 1))
        values[key] = value
    return values


def load(
    path: str | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Build the config: defaults < file < UCLOUD_<KEY> environment < overrides (flags).

    Overrides that are None are ignored so unset flags do not mask the file.
    """
    environ = os.environ if environ is None else environ
    raw = {name: option.default for name, option in OPTIONS.items()}
    sources = {name: "default" for name in OPTIONS}
    file_path = path or (DEFAULT_PATH if Path(DEFAULT_PATH).exists() else None)
    if file_path:
        for key, value in read_file(file_path).items():
            if key not in OPTIONS:
                raise click.UsageError(f"{file_path}: unknown option {key!r}")
            raw[key], sources[key] = value, file_path
    for name in OPTIONS:
        env_value = environ.get(f"UCLOUD_{name.upper()}")
        if env_value is not None:
            raw[name], sources[name] = env_value, f"UCLOUD_{name.upper()}"
    config = Config()
    for name, option in OPTIONS.items():
        value = raw[name]
        try:
            config[name] = option.parse(value) if isinstance(value, str) else value
        except ValueError as error:
            raise click.UsageError(f"option {name} (from {sources[name]}): {error}") from None
    for name, value in (overrides or {}).items():
        if value is None:
            continue
        try:
            config[name] = OPTIONS[name].parse(value) if isinstance(value, str) else value
        except ValueError as error:
            raise click.UsageError(f"--{name.replace('_', '-')}: {error}") from None
    if config["image_store"] == "rbd":
        config["shared_storage"] = True  # every host reaches every RBD disk
    return config


def options(*names: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Click decorator: `--config` plus one `--<key>` flag per named option, all as text.

    The command receives `config_path` and the raw flags; `load_from_flags` turns them into a
    Config with the file and environment underneath.
    """

    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        for name in reversed(names):
            option = OPTIONS[name]
            function = click.option(
                f"--{name.replace('_', '-')}", name, default=None, help=option.help
            )(function)
        return click.option(
            "--config",
            "config_path",
            default=None,
            help=f"config file (default: {DEFAULT_PATH} if it exists)",
        )(function)

    return decorate


def load_from_flags(config_path: str | None, flags: Mapping[str, Any]) -> Config:
    """The Config for a command decorated with `options`: flags override everything else."""
    return load(config_path, overrides={k: v for k, v in flags.items() if k in OPTIONS})


def reference_markdown() -> str:
    """docs/config.md: every option with its default and meaning."""
    lines = [
        "# Configuration reference",
        "",
        "Generated from `common/config.py` (`python -m common.config > docs/config.md`).",
        "Each key can be set in the config file (`key = value`), as `UCLOUD_<KEY>` in the",
        "environment, or as `--<key>` on the command line of a daemon that uses it (its",
        "`--help` lists them); later wins.",
        "",
        "| key | default | meaning |",
        "|---|---|---|",
    ]
    for option in OPTIONS.values():
        default = "(this machine's hostname)" if option.name == "hostname" else option.default
        lines.append(f"| `{option.name}` | `{default}` | {option.help} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(reference_markdown(), end="")
