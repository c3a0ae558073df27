"""Fixtures that start real parts: etcd on free loopback ports, the daemons as processes."""

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from flask import Flask
from flask.testing import FlaskClient

from common import config as configuration
from common.auth import create_local_user
from common.config import Config
from common.store import Store
from tests.daemons import Daemons
from tests.lab_helpers import SEEDS
from tests.slapd import SLAPD, Slapd
from ucloud_aio.cloud import AllInOne
from ucloud_aio.etcd import EtcdServer
from ucloud_aio.procs import free_port, pids_mentioning
from ucloud_api.app import close_app, create_app
from ucloud_cli.client import SessionAuth
from ucloud_cli.settings import Settings

_SESSION_CACHE: str | None = None

if TYPE_CHECKING:
    from ucloud_aio.ceph import CephCluster


def pytest_sessionstart(session: pytest.Session) -> None:
    # In CI a missing real part is a failure, never a skip.
    for tool in (
        *("etcd", "etcdctl", "qemu-img", SLAPD, "ceph-mon", "ceph-osd"),
        *("mmdebstrap", "ssh", "ssh-keygen"),
    ):
        if shutil.which(tool) is None:
            raise pytest.UsageError(f"{tool} is not installed: run scripts/setup.sh")
    # Session tokens the clients cache (the CLI's, the lab helpers', ucloud-aio's) go to a
    # directory of this run, not to the user's ~/.cache; subprocesses inherit it.
    global _SESSION_CACHE
    _SESSION_CACHE = tempfile.mkdtemp(prefix="ucloud-test-cache-")
    os.environ["XDG_CACHE_HOME"] = _SESSION_CACHE


def pytest_sessionfinish(session: pytest.Session) -> None:
    if _SESSION_CACHE is not None:
        shutil.rmtree(_SESSION_CACHE, ignore_errors=True)


@pytest.fixture(scope="session")
def etcd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdServer]:
    """One etcd for the whole session; tests that restart etcd use `private_etcd`."""
    base = tmp_path_factory.mktemp("etcd")
    server = EtcdServer(base / "data", log_path=str(base / "etcd.log")).start()
    yield server
    server.stop()


@pytest.fixture
def private_etcd(tmp_path: Path) -> Iterator[EtcdServer]:
    server = EtcdServer(tmp_path / "etcd", log_path=str(tmp_path / "etcd.log")).start()
    yield server
    server.kill()


@pytest.fixture
def store(etcd_server: EtcdServer) -> Iterator[Store]:
    """A client on the shared etcd, emptied before each test."""
    client = Store([etcd_server.endpoint], timeout=2.0, retry_deadline=10.0)
    client.delete("/", prefix=True)
    yield client
    client.close()


def make_config(etcd: EtcdServer, tmp_path: Path, **overrides: object) -> Config:
    """A Config for daemons under test: this test's etcd and directories, nothing from /etc."""
    values = {
        "etcd_endpoints": etcd.endpoint,
        "image_dir": str(tmp_path / "images"),
        "run_dir": str(tmp_path / "run"),
        "etcd_retry_deadline": "10",
        **{k: str(v) for k, v in overrides.items()},
    }
    return configuration.load("/dev/null", environ={}, overrides=values)


def make_qcow2(path: Path, size: str = "64M") -> Path:
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), size], check=True)
    return path


def truncated_qcow2(path: Path) -> Path:
    """A qcow2 file cut short after its data was written: `qemu-img info` still reads it."""
    make_qcow2(path, "8M")
    subprocess.run(
        ["qemu-io", "-f", "qcow2", "-c", "write -P 0x55 0 4M", str(path)],
        check=True,
        capture_output=True,
    )
    with open(path, "r+b") as handle:
        handle.truncate(200_000)
    return path


class ApiClient:
    """Requests against the real Flask app (in-process) as one user, with a session token bought
    with a TOTP code on first use (ucloud_cli.client.SessionAuth, as every client does)."""

    def __init__(self, client: FlaskClient, name: str, realm: str, seed: str) -> None:
        self.client = client
        self.name = name
        self.realm = realm
        self.seed = seed
        self.auth = SessionAuth(Settings("", name, realm, seed), self._post_session)

    def _post_session(self, headers: dict[str, str]) -> tuple[int, object]:
        answer = self.client.post("/v1/session", headers=headers)
        return answer.status_code, answer.json

    def headers(self) -> dict[str, str]:
        """Authorization: Bearer of this user's session."""
        return self.auth.headers()

    def totp_headers(self) -> dict[str, str]:
        """X-Ucloud-* with the current code: accepted once (the next call gives the same code
        within a 30 s step, and the API refuses it)."""
        return self.auth.totp_headers()

    def request(self, method: str, path: str, json: object = None, **kwargs: object):
        return self.client.open(path, method=method, json=json, headers=self.headers(), **kwargs)

    def get(self, path: str, **kwargs: object):
        return self.request("GET", path, **kwargs)

    def post(self, path: str, json: object = None, **kwargs: object):
        return self.request("POST", path, json=json, **kwargs)

    def delete(self, path: str, **kwargs: object):
        return self.request("DELETE", path, **kwargs)


@dataclass
class Api:
    app: Flask
    store: Store
    config: Config
    admin: ApiClient
    image_file: Path

    def user(self, name: str, realm: str = "users") -> ApiClient:
        account = create_local_user(self.store, name, realm)
        return ApiClient(self.app.test_client(), name, realm, account["seed"])


@pytest.fixture
def api(store: Store, etcd_server: EtcdServer, tmp_path: Path) -> Iterator[Api]:
    """The API app on the shared etcd, an admin, and a registered public image 'tiny'."""
    with serving_api(store, make_config(etcd_server, tmp_path), tmp_path) as started:
        yield started


@contextmanager
def serving_api(store: Store, config: Config, tmp_path: Path) -> Iterator[Api]:
    app = create_app(config, store=store)
    admin_account = create_local_user(store, "admin", config.admin_realm)
    admin = ApiClient(app.test_client(), "admin", config.admin_realm, admin_account["seed"])
    image_file = make_qcow2(tmp_path / "tiny-source.qcow2")
    answer = admin.post("/v1/image", {"name": "tiny", "file": str(image_file)})
    assert answer.status_code == 201, answer.json
    try:
        yield Api(app, store, config, admin, image_file)
    finally:
        close_app(app)


@pytest.fixture
def slapd() -> Iterator[Slapd]:
    """A throwaway LDAP server with the openssh-lpk schema (tests/slapd.py)."""
    server = Slapd()
    try:
        yield server.start()
    finally:
        server.close()


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[Daemons]:
    """Daemon processes for one test, killed afterwards."""
    started = Daemons(tmp_path)
    yield started
    started.cleanup()


@contextmanager
def running_ceph(address: str = "127.0.0.1") -> Iterator["CephCluster"]:
    """A single-node Ceph (ucloud_aio/ceph.py) in a temp dir, killed and removed afterwards."""
    from ucloud_aio.ceph import CephCluster  # imports rados: only where Ceph is wanted

    directory = Path(tempfile.mkdtemp(prefix="ceph-", dir="/tmp"))
    cluster = CephCluster(directory, address)
    try:
        yield cluster.start()
    finally:
        cluster.kill()
        shutil.rmtree(directory, ignore_errors=True)


@contextmanager
def running_cloud(**options: object) -> Iterator[AllInOne]:
    """An all-in-one cloud in a short state dir under /tmp (unix socket paths such as
    run/vm/<uuid>/serial.sock must fit in 107 bytes); torn down with nothing left behind."""
    state = Path(tempfile.mkdtemp(prefix="uc-", dir="/tmp"))
    aio = AllInOne(state, api_port=free_port(), **options)  # type: ignore[arg-type]
    try:
        aio.up()
        yield aio
    finally:
        aio.down()
        leftovers = pids_mentioning(str(state))
        leaked = logs_with_secrets(state / "logs", {*SEEDS, *admin_seed(aio)})
        shutil.rmtree(state, ignore_errors=True)
        assert not leftovers, f"processes left behind: {leftovers}"
        assert not leaked, f"TOTP seeds in the logs: {leaked}"


def admin_seed(aio: AllInOne) -> list[str]:
    return [aio.admin_credentials()["seed"]] if aio.admin_conf.exists() else []


def logs_with_secrets(logs: Path, secrets: set[str]) -> list[str]:
    """The daemons' and etcd's log files that contain any of `secrets` (not qemu's or the
    guests' serial logs: a guest prints what it likes)."""
    found = []
    for path in sorted(logs.glob("*.log")) if logs.is_dir() else []:
        text = path.read_text(errors="replace")
        if any(secret in text for secret in secrets):
            found.append(path.name)
    return found
