"""AllInOne: etcd plus every daemon built so far, as processes on this machine.

Everything lives under one state dir: the daemons' config (ucloud.conf), etcd's data, logs, pid
files, the image store, run dirs, and admin.conf (a CLI config for the admin). The test suite uses
this class as its fixture, so what users run is what the tests run.

Hosts are always network namespaces (lab.py): host1..hostN (one by default) on an IPv6 fabric,
each with its own ucloud-host and ucloud-vm and its own run dir under hosts/<name>/, all sharing
one etcd and one image/disk store (shared_storage on): files under images/, or with `ceph` a
single-node Ceph (ucloud_aio/ceph.py, on the fabric) whose RBD pool holds images and disks
(image_store = rbd). So a cloud never touches this machine's
own network configuration, and `down` removes every link it made. `kill_host`, `cut_host` and
`restore_host` inject a power cut or a partition and undo it (the lab of docs/aio.md).

TLS everywhere unless `tls=False`: the first `up` makes a throwaway CA under tls/ (pki.py); the API
serves HTTPS, etcd wants client certificates, and admin.conf names the CA (ca_file).
"""

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyotp
import requests

from common import config as configuration
from common.auth import create_local_user
from common.errors import Conflict
from common.poll import wait_until
from common.store import Store, keys
from ucloud_aio import pki
from ucloud_aio.etcd import EtcdServer
from ucloud_aio.guest import ensure_tiny_image
from ucloud_aio.lab import TENANT_MTU, Fabric
from ucloud_aio.procs import (
    free_port,
    kill_group,
    kill_pid,
    pid_alive,
    pids_mentioning,
    spawn,
)
from ucloud_cli.client import Client, SessionCache
from ucloud_cli.settings import Settings

log = logging.getLogger(__name__)

DEFAULT_STATE_DIR = "/var/lib/ucloud-aio"
# ucloud-<name> daemons every host runs
HOST_AGENTS = ("host", "vm", "watchdog", "net", "ipam", "meta", "firewall")
CEPH_DAEMONS = ("ceph-mon", "ceph-osd")  # with `ceph`, in start order
CEPH_POOL = "ucloud"  # ucloud_aio.ceph.POOL (not imported: it needs rados)
ADMIN = "admin"
QEMU_USER = configuration.OPTIONS["qemu_user"].default  # scripts/setup.sh creates it


def venv_script(name: str) -> str:
    """The console script next to the running interpreter (the venv's bin), else from PATH."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else name


@dataclass
class Daemon:
    """One daemon process of the cloud: how to start it, where its pid is kept."""

    name: str
    argv: list[str]

    def pidfile(self, state: Path) -> Path:
        return state / "pids" / f"{self.name}.pid"


@dataclass
class AllInOne:
    state_dir: Path
    api_port: int = 8080
    host_lease_ttl: int | None = None  # None: the config's default
    settings: dict[str, str] = field(default_factory=dict)  # extra ucloud.conf keys
    register_tiny: bool = True  # build (once) and register the test guest as image `tiny`
    hosts: int | None = None  # hosts host1..hostN; None: as the state dir says, else 1
    ceph: bool | None = None  # image_store = rbd on a Ceph of the lab; None: as the state dir says
    tls: bool | None = None  # TLS for the API and etcd; None: as the state dir says, else on

    def __post_init__(self) -> None:
        self.state_dir = Path(self.state_dir).absolute()
        lab_file = self.state_dir / "lab.json"
        lab = json.loads(lab_file.read_text()) if lab_file.exists() else {}
        if self.hosts is None:
            self.hosts = lab.get("hosts", 1)
        if self.ceph is None:
            self.ceph = lab.get("ceph", False)
        if self.tls is None:
            self.tls = lab.get("tls", True)
        self.fabric = Fabric.for_state_dir(self.state_dir)
        self._children: dict[str, subprocess.Popen] = {}  # daemons started by this object
        self._admin: Client | None = None

    @property
    def host_names(self) -> list[str]:
        return [f"host{i}" for i in range(1, self.hosts + 1)]

    def host_index(self, name: str) -> int:
        if name not in self.host_names:
            raise ValueError(f"no lab host {name!r} (hosts: {', '.join(self.host_names)})")
        return self.host_names.index(name) + 1

    def host_dir(self, name: str) -> Path:
        return self.state_dir / "hosts" / name

    def run_dir(self, host: str) -> Path:
        """Where a host keeps its VMs' sockets and logs."""
        return self.host_dir(host) / "run"

    # -- layout ------------------------------------------------------------------------------

    @property
    def conf_path(self) -> Path:
        return self.state_dir / "ucloud.conf"

    @property
    def admin_conf(self) -> Path:
        return self.state_dir / "admin.conf"

    @property
    def api_url(self) -> str:
        return f"{'https' if self.tls else 'http'}://[::1]:{self.api_port}"

    # -- TLS (pki.py) ------------------------------------------------------------------------

    @property
    def pki(self) -> pki.Pki:
        return pki.Pki(self.state_dir / "tls")

    @property
    def ca_file(self) -> Path | None:
        """The CA clients verify the API (and etcd) with; None without TLS."""
        return self.pki.ca if self.tls else None

    @property
    def verify(self) -> str | bool:
        """requests' `verify=` for the API: this cloud's CA (or the default, without TLS)."""
        return str(self.ca_file) if self.ca_file else True

    def _prepare_tls(self) -> None:
        """The CA and certificates, made where missing. Switching TLS on or off takes a `down`
        first: a running etcd keeps the scheme it was started with."""
        lab_file = self.state_dir / "lab.json"
        was = json.loads(lab_file.read_text()).get("tls", True) if lab_file.exists() else None
        if was is not None and was != self.tls and self._running("etcd"):
            raise RuntimeError(
                f"this cloud runs with TLS {'on' if was else 'off'}: `ucloud-aio down` first"
            )
        if self.tls:
            local = ["127.0.0.1", "::1", "localhost"]
            pki.make(self.pki.directory, api_names=local, etcd_names=[*local, self.fabric.gateway])

    def _refresh_client_confs(self) -> None:
        """admin.conf and demo.conf name this cloud's API URL and CA as they are now (another
        --api-port, TLS switched on or off), their credentials kept."""
        for path in (self.admin_conf, self.state_dir / "demo.conf"):
            if not path.exists():
                continue
            values = dict(line.split(" = ", 1) for line in path.read_text().splitlines())
            values.pop("ca_file", None)
            values["api"] = self.api_url
            if self.ca_file:
                values["ca_file"] = str(self.ca_file)
            path.write_text("".join(f"{key} = {value}\n" for key, value in values.items()))

    def _tls_settings(self, api: bool) -> dict[str, str]:
        return pki.conf_settings(self.pki, api) if self.tls else {}

    def log_path(self, name: str) -> Path:
        return self.state_dir / "logs" / f"{name}.log"

    @property
    def ceph_dir(self) -> Path:
        return self.state_dir / "ceph"

    def _ports(self) -> dict[str, int]:
        """Ports chosen at the first `up`, kept so a later `up` or `down` finds the same cloud."""
        path = self.state_dir / "ports.json"
        ports = json.loads(path.read_text()) if path.exists() else {}
        for name in ("etcd", "scheduler_metrics"):
            ports.setdefault(name, free_port())
        if self.ceph:
            ports.setdefault("ceph_mon", free_port("::1"))  # bound on the fabric's gateway
        ports["api"] = self.api_port
        if self.state_dir.is_dir():
            path.write_text(json.dumps(ports))
        return ports

    def config(self) -> configuration.Config:
        return configuration.load(str(self.conf_path), environ={})

    def store(self) -> Store:
        return Store.from_config(self.config())

    def daemons(self, ports: dict[str, int]) -> list[Daemon]:
        """In start order: API and scheduler, then every host's agents."""
        conf = ["--config", str(self.conf_path)]
        daemons = [
            Daemon("ucloud-api", [venv_script("ucloud-api"), *conf]),
            Daemon(
                "ucloud-scheduler",
                [
                    venv_script("ucloud-scheduler"),
                    *conf,
                    "--metrics-port",
                    str(ports["scheduler_metrics"]),
                ],
            ),
        ]
        for host in self.host_names:
            daemons += self.host_daemons(host, ports)
        return daemons

    def host_daemons(self, host: str, ports: dict[str, int]) -> list[Daemon]:
        """A host's agents, inside its namespace (own loopback: default metrics ports do not
        collide)."""
        prefix = self.fabric.exec_prefix(self.host_index(host))
        conf = ["--config", str(self.host_dir(host) / "ucloud.conf")]
        return [
            Daemon(f"{host}.ucloud-{name}", [*prefix, venv_script(f"ucloud-{name}"), *conf])
            for name in HOST_AGENTS
        ]

    # -- up / down ---------------------------------------------------------------------------

    def up(self) -> None:
        """Start whatever is not running yet (except hosts killed on purpose); return once the
        API is healthy and every host is ALIVE."""
        for sub in ("pids", "logs", "images"):
            (self.state_dir / sub).mkdir(parents=True, exist_ok=True)
        # qemu runs as qemu_user and opens its VMs' files under here by name: searchable by
        # every user, listable by root only.
        self.state_dir.chmod(0o711)
        ports = self._ports()
        self._prepare_tls()
        (self.state_dir / "lab.json").write_text(
            json.dumps({"hosts": self.hosts, "ceph": self.ceph, "tls": self.tls})
        )
        self.fabric.create(self.hosts)
        if self.ceph:
            self._start_ceph(ports["ceph_mon"])
        self._write_confs(ports)
        extra = [self.fabric.gateway]
        etcd = EtcdServer(
            self.state_dir / "etcd",
            ports["etcd"],
            str(self.log_path("etcd")),
            extra_hosts=extra,
            tls=pki.etcd_server_tls(self.pki) if self.tls else None,
        )
        if not self._running("etcd"):
            etcd.start()
            self._pidfile("etcd").write_text(str(etcd.process.pid))
        killed = [h for h in self.host_names if (self.host_dir(h) / "killed").exists()]
        starting = [
            d for d in self.daemons(ports) if not any(d.name.startswith(f"{h}.") for h in killed)
        ]
        for daemon in starting:
            self._ensure_running(daemon)
        self._bootstrap_admin()
        self._refresh_client_confs()
        wait_until(self._api_healthy, 30, f"ucloud-api on {self.api_url}")
        for host in self.host_names:
            if host not in killed:
                self._wait_host_alive(host)
        if self.register_tiny:
            self._register_tiny()
        for daemon in starting:
            self._check_alive(daemon.name)  # e.g. one that refused its config at start-up

    def _ensure_running(self, daemon: Daemon) -> None:
        if not self._running(daemon.name):
            self._clear_leftovers(daemon.name)
            process = spawn(daemon.argv, self.log_path(daemon.name))
            self._children[daemon.name] = process
            daemon.pidfile(self.state_dir).write_text(str(process.pid))

    def _start_ceph(self, port: int) -> None:
        """The lab's Ceph, unless it runs. Its OSD keeps data in memory (memstore): a Ceph
        started again is empty, so `down` removes its directory."""
        if self._running("ceph-mon") and self._running("ceph-osd"):
            return
        from ucloud_aio.ceph import CephCluster  # imports rados: only with --ceph

        for name in CEPH_DAEMONS:
            self._stop(name, signal.SIGKILL)
        shutil.rmtree(self.ceph_dir, ignore_errors=True)
        cluster = CephCluster(self.ceph_dir, self.fabric.gateway, port=port).start()
        for name, process in zip(CEPH_DAEMONS, (cluster.mon, cluster.osd), strict=True):
            assert process is not None
            self._children[name] = process
            self._pidfile(name).write_text(str(process.pid))

    def down(self) -> None:
        """Stop every process of this cloud: daemons, then VMs, then Ceph and etcd; remove the
        lab's namespaces and links. Nothing is left."""
        for name in [d.name for d in reversed(self.daemons(self._ports()))]:
            self._stop(name)
        # VMs name their run dir (under the state dir) on their command line.
        for pid in pids_mentioning(str(self.state_dir / "hosts")):
            kill_pid(pid, timeout=3)
        for name in reversed(CEPH_DAEMONS):
            self._stop(name, signal.SIGKILL)  # memstore: nothing to save
        shutil.rmtree(self.ceph_dir, ignore_errors=True)
        for index in range(1, self.hosts + 1):
            for pid in self.fabric.pids(index):
                kill_pid(pid, signal.SIGKILL)
        self._stop("etcd")
        for pid in pids_mentioning(str(self.state_dir)):
            kill_pid(pid, signal.SIGKILL)
        self.fabric.destroy(self.hosts)
        for host in self.host_names:
            for marker in ("killed", "cut"):
                (self.host_dir(host) / marker).unlink(missing_ok=True)

    def _stop(self, name: str, sig: int = signal.SIGTERM) -> None:
        path = self._pidfile(name)
        if path.exists():
            pid = int(path.read_text())
            if self._owned(pid):
                kill_pid(pid, sig)
            self._clear_leftovers(name)

    # -- lab: failures on purpose ----------------------------------------------------------

    def kill_host(self, name: str) -> None:
        """A power cut: every process of the host dies at once, its VMs included."""
        index = self.host_index(name)
        (self.host_dir(name) / "killed").touch()
        for pid in self.fabric.pids(index):
            kill_pid(pid, signal.SIGKILL, timeout=2)
        for daemon in self.host_daemons(name, self._ports()):
            self._pidfile(daemon.name).unlink(missing_ok=True)

    def cut_host(self, name: str) -> None:
        """A partition: the host's fabric link goes down, its processes keep running."""
        index = self.host_index(name)
        (self.host_dir(name) / "cut").touch()
        self.fabric.cut(index)

    def restore_host(self, name: str) -> None:
        """Undo kill or cut: the link comes back up and the host's agents run again."""
        index = self.host_index(name)
        self.fabric.restore(index)
        for marker in ("killed", "cut"):
            (self.host_dir(name) / marker).unlink(missing_ok=True)
        for daemon in self.host_daemons(name, self._ports()):
            self._ensure_running(daemon)
        self._wait_host_alive(name)

    def status(self) -> dict[str, bool]:
        return {
            name: self._running(name)
            for name in [
                "etcd",
                *(CEPH_DAEMONS if self.ceph else ()),
                *(d.name for d in self.daemons(self._ports())),
            ]
        }

    # -- helpers -----------------------------------------------------------------------------

    def _pidfile(self, name: str) -> Path:
        return self.state_dir / "pids" / f"{name}.pid"

    def _owned(self, pid: int) -> bool:
        """The pid is still one of ours (not a recycled pid of something else)."""
        try:
            environ = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return False
        return str(self.state_dir).encode() in environ and pid_alive(pid)

    def _clear_leftovers(self, name: str) -> None:
        """Every daemon leads its own process group (spawn starts a session): kill what is left
        of a dead one's group, so e.g. orphaned gunicorn workers do not hold the API's port."""
        path = self._pidfile(name)
        if path.exists():
            kill_group(int(path.read_text()))
            path.unlink()

    def _running(self, name: str) -> bool:
        child = self._children.get(name)
        if child is not None:
            # Our own child: its command line may not show the state dir yet (between fork and
            # exec), so ask the process itself. A killed multi-threaded process can be a zombie
            # leader whose other threads still exit: waitpid says "running", /proc says dead.
            return child.poll() is None and pid_alive(child.pid)
        path = self._pidfile(name)
        return path.exists() and self._owned(int(path.read_text()))

    def _write_confs(self, ports: dict[str, int]) -> None:
        common = {
            **({"host_lease_ttl": str(self.host_lease_ttl)} if self.host_lease_ttl else {}),
            "image_dir": str(self.state_dir / "images"),
            "shared_storage": "true",
            "tenant_mtu": str(TENANT_MTU),
        }
        if self.ceph:
            common |= {
                "image_store": "rbd",
                "rbd_pool": CEPH_POOL,
                "ceph_conf": str(self.ceph_dir / "ceph.conf"),
            }
        self._write_conf(
            self.conf_path,
            {
                "etcd_endpoints": f"127.0.0.1:{ports['etcd']}",
                "api_bind": f"127.0.0.1:{self.api_port},[::1]:{self.api_port}",
                **common,
                **self._tls_settings(api=True),
            },
        )
        for host in self.host_names:
            self.host_dir(host).mkdir(parents=True, exist_ok=True)
            self._write_conf(
                self.host_dir(host) / "ucloud.conf",
                {
                    "etcd_endpoints": f"[{self.fabric.gateway}]:{ports['etcd']}",
                    "hostname": host,
                    "run_dir": str(self.run_dir(host)),
                    "qemu_user": QEMU_USER,
                    "underlay_address": self.fabric.address(self.host_index(host)),
                    "underlay_interface": "eth0",
                    **common,
                    **self._tls_settings(api=False),
                },
            )

    def _write_conf(self, path: Path, values: dict[str, str]) -> None:
        text = "# written by ucloud-aio up; edited copies are overwritten\n"
        text += "".join(f"{key} = {value}\n" for key, value in {**values, **self.settings}.items())
        path.write_text(text)

    def _bootstrap_admin(self) -> None:
        config = self.config()
        store = Store.from_config(config)
        account: Mapping[str, object]  # the new account, or what is known of an existing one
        try:
            if self.admin_conf.exists() and store.get(keys.user_account(ADMIN)) is not None:
                return
            account = create_local_user(store, ADMIN, config.admin_realm)
        except Conflict:
            # The user exists but its config was lost: give it a new seed.
            account = {"name": ADMIN, "realm": config.admin_realm, "seed": pyotp.random_base32()}
            store.update(keys.user_account(ADMIN), lambda a: {**a, "seed": account["seed"]})
        finally:
            store.close()
        self.admin_conf.write_text(
            f"api = {self.api_url}\nname = {account['name']}\n"
            f"realm = {account['realm']}\nseed = {account['seed']}\n"
        )
        os.chmod(self.admin_conf, 0o600)

    def admin_credentials(self) -> dict[str, str]:
        return dict(line.split(" = ", 1) for line in self.admin_conf.read_text().splitlines())

    def admin_client(self) -> Client:
        """The API as the admin, through a session cached like the CLI's (ucloud_cli.client):
        every client of this object and of other `ucloud-aio` runs on the cloud shares it."""
        creds = self.admin_credentials()
        if self._admin is None or self._admin.settings.seed != creds["seed"]:
            self._admin = self.client(creds["name"], creds["realm"], creds["seed"], timeout=120.0)
        return self._admin

    def client(self, name: str, realm: str, seed: str, **options: Any) -> Client:
        """The API as a user, its session cached in the state dir (sessions/), so that it goes
        with the cloud; the CLI keeps its own in ~/.cache."""
        ca = self.ca_file
        settings = Settings(self.api_url, name, realm, seed, str(ca) if ca else None)
        cache = SessionCache(settings, self.state_dir / "sessions")
        return Client(settings, cache=cache, **options)

    def admin_headers(self) -> dict[str, str]:
        """Authorization: Bearer of the admin's session (for plain `requests` calls)."""
        return self.admin_client().auth.headers()

    def _register_tiny(self) -> None:
        """The offline-built test guest as public image `tiny` (built once, then cached)."""
        admin = self.admin_client()
        if any(image["name"] == "tiny" for image in admin.get("/v1/image")):
            return
        source = ensure_tiny_image()
        answer = admin.response("POST", "/v1/image", {"name": "tiny", "file": str(source)})
        if answer.status_code != 201:
            raise RuntimeError(f"registering image tiny failed: {answer.text}")

    def _api_healthy(self) -> bool:
        self._check_alive("ucloud-api")
        try:
            return requests.get(f"{self.api_url}/healthz", timeout=1, verify=self.verify).ok
        except requests.RequestException:
            return False

    def _host_alive(self, host: str) -> bool:
        self._check_alive(self.host_daemons(host, self._ports())[0].name)
        store = self.store()
        try:
            return store.get(keys.alive(host)) is not None
        finally:
            store.close()

    def _wait_host_alive(self, host: str) -> None:
        try:
            wait_until(lambda: self._host_alive(host), 30, f"host {host} to be ALIVE")
        except TimeoutError as error:
            name = self.host_daemons(host, self._ports())[0].name
            path = self.log_path(name)
            tail = path.read_text()[-2000:] if path.exists() else ""
            raise TimeoutError(f"{error}; the end of {name}'s log:\n{tail}") from None

    def _check_alive(self, name: str) -> None:
        if not self._running(name):
            child = self._children.get(name)
            status = f" with status {child.poll()}" if child is not None else ""
            tail = self.log_path(name).read_text()[-2000:] if self.log_path(name).exists() else ""
            raise RuntimeError(f"{name} exited{status}; the end of its log:\n{tail}")
