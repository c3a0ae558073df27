"""A 3-member etcd that loses its leader under load: the hosts' fencing must not notice (issue:
no mass fencing for a control-plane hiccup). Real etcd members on loopback; the host side is the
real lease session and fencer of ucloud-host and ucloud-vm, in process."""

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from common import fence
from common.errors import UcloudError
from common.store import Store, keys
from common.store.session import Session
from ucloud_aio.etcd import EtcdServer, cluster, start_cluster
from ucloud_vm.fencing import Fencer


class Fences:
    """The hypervisor as the fencer sees it: counts fencing calls, kills nothing."""

    def __init__(self) -> None:
        self.calls = 0

    def fence(self) -> list[str]:
        self.calls += 1
        return []


@pytest.fixture(scope="module")
def members(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[EtcdServer]]:
    servers = cluster(tmp_path_factory.mktemp("etcd-cluster"))
    try:
        start_cluster(servers)
        yield servers
    finally:
        for server in servers:
            server.kill()


def leader(servers: list[EtcdServer]) -> EtcdServer:
    status = subprocess.run(
        [
            *("etcdctl", "--endpoints", ",".join(s.endpoint for s in servers)),
            *("endpoint", "status", "--write-out", "json"),
        ],
        capture_output=True,
        text=True,
        check=True,
        env={"ETCDCTL_API": "3", "PATH": "/usr/bin:/bin"},
    )
    for entry in json.loads(status.stdout):
        header = entry["Status"]["header"]
        if header["member_id"] == entry["Status"]["leader"]:
            return next(s for s in servers if s.endpoint == entry["Endpoint"])
    raise AssertionError(f"no leader: {status.stdout}")


def test_leader_lost_under_load_fences_no_host(members: list[EtcdServer], tmp_path: Path) -> None:
    store = Store([m.endpoint for m in members], timeout=1.0, retry_deadline=10.0)
    lease_file = tmp_path / "host.lease"
    session = Session(
        store,
        7,  # host_lease_ttl's default
        interval=0.5,
        on_refresh=lambda s: fence.write(lease_file, fence.LeaseState(s.lease_id, s.expires_at)),
    ).start()
    store.put(keys.alive("h1"), {"hostname": "h1"}, lease=session.lease_id)
    hypervisor = Fences()
    fencer = Fencer(lease_file, 1.0, hypervisor)  # fence_margin's default
    stop = threading.Event()
    writes: list[float] = []

    def load() -> None:
        while not stop.is_set():
            try:
                store.put("/v1/test/load", {"at": time.time()})
                writes.append(time.monotonic())
            except UcloudError:
                time.sleep(0.05)

    writers = [threading.Thread(target=load, daemon=True) for _ in range(4)]
    for writer in writers:
        writer.start()
    time.sleep(1)
    victim = leader(members)
    try:
        killed = time.monotonic()
        victim.kill()
        until = killed + 10  # longer than the lease TTL: an expiry it caused would show
        while time.monotonic() < until:
            fencer.check()
            time.sleep(0.1)
        assert hypervisor.calls == 0, "the host fenced itself during the election"
        assert not session.lost.is_set()
        assert store.get(keys.alive("h1")) is not None
        assert any(t > killed + 2 for t in writes), "writes did not resume after the election"
    finally:
        stop.set()
        for writer in writers:
            writer.join(timeout=5)
        session.close()
        store.close()
        victim.spawn()  # the cluster whole again for whoever comes next
