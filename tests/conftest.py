"""Fixtures that start real parts: etcd on free loopback ports, the daemons as processes."""

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from common.store import Store
from ucloud_aio.etcd import EtcdServer


def pytest_sessionstart(session: pytest.Session) -> None:
    # In CI a missing real part is a failure, never a skip.
    for tool in ("etcd", "etcdctl"):
        if shutil.which(tool) is None:
            raise pytest.UsageError(f"{tool} is not installed: run scripts/setup.sh")


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
