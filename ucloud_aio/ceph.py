"""A throwaway single-node Ceph cluster (`ucloud-aio up --ceph` and test fixtures).

One monitor and one OSD on memstore (data in RAM: keep images small), no manager, no
authentication, pools of size 1. Everything (config, monitor store, OSD dir, sockets, logs,
crash dumps) lives under one directory, daemons run in the foreground as our children, so
SIGKILL plus removing the directory leaves nothing behind. Pool usable within about 0.5 s.

The monitor and the OSD bind to one address: 127.0.0.1 for tests of the store alone, the lab
fabric's gateway (IPv6) for a lab, whose hosts (network namespaces) reach it over the fabric.
"""

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import rados

from common.poll import wait_until
from ucloud_aio.procs import free_port, kill_process, spawn

POOL = "ucloud"
MiB = 1024 * 1024


def pool_images(conf: str | Path, pool: str = POOL) -> list[str]:
    """The RBD images in a pool of the cluster `conf` names."""
    import rbd

    with rados.Rados(conffile=str(conf)) as cluster, cluster.open_ioctx(pool) as ioctx:
        return sorted(rbd.RBD().list(ioctx))


class CephCluster:
    def __init__(
        self,
        directory: str | Path,
        address: str = "127.0.0.1",
        pool: str = POOL,
        memory: int = 1024 * MiB,
        port: int = 0,
    ) -> None:
        self.dir = Path(directory).absolute()
        self.address = address
        self.pool = pool
        self.memory = memory  # memstore's capacity (RAM)
        self.port = port or free_port(address)
        self.fsid = str(uuid.uuid4())
        self.mon: subprocess.Popen | None = None
        self.osd: subprocess.Popen | None = None

    @property
    def conf(self) -> Path:
        return self.dir / "ceph.conf"

    def _bracketed(self) -> str:
        return f"[{self.address}]" if ":" in self.address else self.address

    def _write_conf(self) -> None:
        d = self.dir
        ipv6 = ":" in self.address
        self.conf.write_text(
            f"""# a single-node test cluster made by ucloud_aio/ceph.py
[global]
fsid = {self.fsid}
mon host = v2:{self._bracketed()}:{self.port}
public addr = {self.address}
ms bind ipv6 = {str(ipv6).lower()}
ms bind ipv4 = {str(not ipv6).lower()}
ms bind msgr1 = false
auth cluster required = none
auth service required = none
auth client required = none
auth supported = none
run dir = {d}/run
admin socket = {d}/run/$name.asok
log file = {d}/log/$name.log
mon cluster log file = {d}/log/cluster.log
crash dir = {d}/crash
log to stderr = false
err to stderr = false
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
# a killed client's watch on a disk (a VM of a dead host) blocks the disk's removal this long
osd client watch timeout = 10
rbd default features = 1
[mon]
mon data = {d}/mon
paxos propose interval = 0.05
paxos min wait = 0.01
[osd]
osd data = {d}/osd
osd objectstore = memstore
memstore device bytes = {self.memory}
osd max object name len = 256
osd max object namespace len = 64
osd op num threads per shard = 1
osd op num shards = 1
"""
        )

    def start(self, timeout: float = 30.0) -> "CephCluster":
        for sub in ("run", "log", "crash", "mon", "osd"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        self._write_conf()
        conf = ["-c", str(self.conf)]
        log = self.dir / "log" / "daemons.out"
        monmap = str(self.dir / "monmap")
        mon_address = f"v2:{self._bracketed()}:{self.port}"
        for argv in (
            ["monmaptool", "--create", "--fsid", self.fsid, "--addv", "a", mon_address, monmap],
            ["ceph-mon", *conf, "--mkfs", "-i", "a", "--monmap", monmap],
        ):
            subprocess.run(argv, check=True, capture_output=True, timeout=60)
        self.mon = spawn(["ceph-mon", *conf, "-f", "-i", "a"], log)
        try:
            with self.client(timeout) as cluster:
                # The pool first: its placement groups are made as the OSD boots.
                for command in (
                    {"prefix": "osd create"},
                    {"prefix": "osd pool create", "pool": self.pool, "pg_num": 8},
                    {"prefix": "osd pool application enable", "pool": self.pool, "app": "rbd"},
                ):
                    self._command(cluster, command)
                subprocess.run(
                    ["ceph-osd", *conf, "--mkfs", "-i", "0"],
                    check=True,
                    capture_output=True,
                    timeout=60,
                )
                self.osd = spawn(["ceph-osd", *conf, "-f", "-i", "0"], log)
                wait_until(lambda: self._osd_up(cluster), timeout, "the Ceph OSD to be up")
            # A new client: one connected before the OSD was up would wait for the objecter's
            # next tick (5 s) to learn that it is.
            with self.client(timeout) as cluster, cluster.open_ioctx(self.pool) as ioctx:
                ioctx.write_full("ucloud-probe", b"ok")
                ioctx.remove_object("ucloud-probe")
        except BaseException:
            self.kill()
            raise
        return self

    @contextmanager
    def client(self, timeout: float = 10.0) -> Iterator[rados.Rados]:
        """A connected librados handle (shut down on leaving the block)."""
        cluster = rados.Rados(conffile=str(self.conf))
        cluster.connect(timeout=max(int(timeout), 1))
        try:
            yield cluster
        finally:
            cluster.shutdown()

    @staticmethod
    def _command(cluster: rados.Rados, command: dict) -> bytes:
        status, output, error = cluster.mon_command(json.dumps(command), b"", timeout=30)
        if status != 0:
            raise RuntimeError(f"ceph {command['prefix']}: {error} ({status})")
        return output

    def _osd_up(self, cluster: rados.Rados) -> bool:
        self._check_alive()
        osds = json.loads(self._command(cluster, {"prefix": "osd dump", "format": "json"}))
        if any(osd["up"] for osd in osds["osds"]):
            return True
        time.sleep(0.02)
        return False

    def _check_alive(self) -> None:
        for name, process in (("ceph-mon", self.mon), ("ceph-osd", self.osd)):
            if process is not None and process.poll() is not None:
                raise RuntimeError(
                    f"{name} exited with status {process.returncode} (logs in {self.dir}/log)"
                )

    def images(self) -> list[str]:
        """The RBD images in the pool (tests check that nothing is left behind)."""
        return pool_images(self.conf, self.pool)

    def kill(self) -> None:
        """SIGKILL both daemons and reap them (memstore: the data goes with the OSD)."""
        for process in (self.osd, self.mon):
            if process is not None:
                kill_process(process)
