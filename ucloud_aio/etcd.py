"""A throwaway etcd server on free loopback ports (all-in-one cloud and test fixtures); with
`tls`, it serves clients and peers over TLS only and wants a client certificate from its CA."""

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import requests

from common.poll import wait_until
from ucloud_aio.procs import free_port, kill_process, spawn, stop_process


@dataclass(frozen=True)
class EtcdTls:
    """PEM files: the CA that signed everything, etcd's own certificate (server and peer; its
    SANs name the addresses clients use) and a client certificate for the health check."""

    ca: Path
    cert: Path
    key: Path
    client_cert: Path
    client_key: Path


class EtcdServer:
    def __init__(
        self,
        data_dir: str | Path,
        client_port: int = 0,
        log_path: str | None = None,
        extra_hosts: list[str] | None = None,
        tls: EtcdTls | None = None,
        name: str = "ucloud",
    ) -> None:
        self.data_dir = Path(data_dir)
        self.tls = tls
        self.client_port = client_port or free_port()
        self.extra_hosts = extra_hosts or []  # more addresses to serve clients on (a lab fabric)
        self.name = name
        self.peer_port = free_port()
        self.cluster: list[EtcdServer] = [self]  # every member, this one included
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    def tls_argv(self) -> list[str]:
        if self.tls is None:
            return []
        tls = self.tls
        return [
            *("--cert-file", str(tls.cert), "--key-file", str(tls.key)),
            *("--trusted-ca-file", str(tls.ca), "--client-cert-auth"),
            *("--peer-cert-file", str(tls.cert), "--peer-key-file", str(tls.key)),
            *("--peer-trusted-ca-file", str(tls.ca), "--peer-client-cert-auth"),
        ]

    def argv(self) -> list[str]:
        client = ",".join(
            f"{self.scheme}://{host}:{self.client_port}"
            for host in ["127.0.0.1", *(f"[{h}]" for h in self.extra_hosts)]
        )
        peer = self.peer_url
        return [
            "etcd",
            "--name",
            self.name,
            "--data-dir",
            str(self.data_dir),
            "--listen-client-urls",
            client,
            "--advertise-client-urls",
            client,
            "--listen-peer-urls",
            peer,
            "--initial-advertise-peer-urls",
            peer,
            "--initial-cluster",
            ",".join(f"{m.name}={m.peer_url}" for m in self.cluster),
            *(CLUSTER_TIMING if len(self.cluster) > 1 else ()),
            "--log-level",
            "warn",
            "--logger",
            "zap",
            *self.tls_argv(),
        ]

    @property
    def peer_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.peer_port}"

    def start(self, timeout: float = 20.0) -> "EtcdServer":
        self.spawn()
        wait_until(self.healthy, timeout, f"etcd on {self.endpoint}")
        return self

    def spawn(self) -> None:
        """Start the process without waiting: a cluster member is healthy only once a quorum
        of members runs."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.data_dir, 0o700)
        self.process = spawn(self.argv(), self.log_path)

    def healthy(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"etcd exited with status {self.process.returncode}")
        try:
            if self.tls is None:
                answer = requests.get(f"http://{self.endpoint}/health", timeout=1)
            else:
                answer = requests.get(
                    f"https://{self.endpoint}/health",
                    timeout=1,
                    verify=str(self.tls.ca),
                    cert=(str(self.tls.client_cert), str(self.tls.client_key)),
                )
            return answer.ok and answer.json().get("health") == "true"
        except (requests.RequestException, ValueError):
            return False

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)

    def kill(self) -> None:
        if self.process is not None:
            kill_process(self.process)


# Members on one machine: a heartbeat every 100 ms and elections after 1 s (etcd's defaults are
# for a WAN); --pre-vote keeps a member that rejoins from forcing an election.
CLUSTER_TIMING = ("--heartbeat-interval", "100", "--election-timeout", "1000", "--pre-vote")


def cluster(directory: Path, size: int = 3) -> list[EtcdServer]:
    """`size` plain-HTTP members on loopback, not started (`start_cluster`)."""
    members = [
        EtcdServer(directory / f"m{i}", log_path=str(directory / f"m{i}.log"), name=f"m{i}")
        for i in range(size)
    ]
    for member in members:
        member.cluster = members
    return members


def start_cluster(members: list[EtcdServer], timeout: float = 20.0) -> None:
    for member in members:
        member.spawn()
    for member in members:
        wait_until(member.healthy, timeout, f"etcd member {member.name} on {member.endpoint}")
