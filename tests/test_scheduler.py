"""The scheduler against a real etcd, as real processes: placement, waiting for capacity,
leader failover and kill -9 without double placement."""

import os
import signal
from pathlib import Path

from common import model
from common.store import Store, keys
from tests.daemons import Daemons, eventually, vm_records, write_conf
from ucloud_aio.etcd import EtcdServer

GiB = 1024**3


def add_host(
    store: Store, name: str, cpu: int = 4, ram: int = 8, disk: int = 100, alive: bool = True
) -> None:
    store.put(
        keys.host(name),
        {
            "hostname": name,
            "status": model.ALIVE,
            "capacity": {"cpu": cpu, "ram": ram * GiB, "disk": disk * GiB},
        },
    )
    if alive:
        store.put(keys.alive(name), {"hostname": name})


def add_vm(store: Store, name: str, cpu: int = 1, ram: int = 1, disk: int = 10) -> str:
    record = model.new_vm(
        {"name": name, "cpu": cpu, "ram": ram * GiB, "os_ssd": disk * GiB},
        "alice",
        {"uuid": "img", "name": "tiny"},
    )
    store.put(keys.vm(record["uuid"]), record)
    return record["uuid"]


def scheduler_conf(tmp_path: Path, etcd: EtcdServer, **extra: object) -> Path:
    return write_conf(
        tmp_path / "scheduler.conf",
        etcd_endpoints=etcd.endpoint,
        scheduler_lease_ttl=2,
        metrics_port=0,
        **extra,
    )


def placed(store: Store) -> dict[str, str | None]:
    return {vm["name"]: vm["host"] for vm in vm_records(store)}


def test_places_on_alive_hosts_only(store, etcd_server, tmp_path, daemons: Daemons) -> None:
    add_host(store, "h1")
    add_host(store, "h2", alive=False)  # registered, but its liveness key is gone
    daemons.start("ucloud-scheduler", scheduler_conf(tmp_path, etcd_server))
    add_vm(store, "a")
    add_vm(store, "b")
    eventually(lambda: all(placed(store).values()))
    assert set(placed(store).values()) == {"h1"}
    assert all(vm["status"] == "SCHEDULED" for vm in vm_records(store))
    # h2 is marked DEAD since its key is missing
    eventually(lambda: store.get(keys.host("h2")).value["status"] == "DEAD")


def test_pending_until_capacity_appears(store, etcd_server, tmp_path, daemons) -> None:
    add_host(store, "small", ram=2)
    daemons.start("ucloud-scheduler", scheduler_conf(tmp_path, etcd_server))
    uuid = add_vm(store, "big", ram=4)
    reason = "no host fits: 1 host not enough memory"
    eventually(lambda: model.last_log_message(store.get(keys.vm(uuid)).value) == reason)
    assert store.get(keys.vm(uuid)).value["status"] == "PENDING"
    add_host(store, "large", ram=16)
    eventually(lambda: store.get(keys.vm(uuid)).value["host"] == "large")


def test_capacity_freed_by_delete_is_reused(store, etcd_server, tmp_path, daemons) -> None:
    add_host(store, "h1", ram=2)
    daemons.start("ucloud-scheduler", scheduler_conf(tmp_path, etcd_server))
    first = add_vm(store, "first", ram=2)
    eventually(lambda: store.get(keys.vm(first)).value["host"] == "h1")
    second = add_vm(store, "second", ram=2)
    eventually(
        lambda: "no host fits" in (model.last_log_message(store.get(keys.vm(second)).value) or "")
    )
    store.delete(keys.vm(first))
    eventually(lambda: store.get(keys.vm(second)).value["host"] == "h1")


def test_pack_option(store, etcd_server, tmp_path, daemons) -> None:
    add_host(store, "h1")
    add_host(store, "h2")
    daemons.start("ucloud-scheduler", scheduler_conf(tmp_path, etcd_server, placement="pack"))
    for i in range(4):
        add_vm(store, f"v{i}")
    eventually(lambda: all(placed(store).values()))
    assert len(set(placed(store).values())) == 1


def test_racing_schedulers_and_leader_kill_never_double_place(
    store, etcd_server, tmp_path, daemons
) -> None:
    """Three schedulers, 300 VMs on hosts that fit exactly 240: the leader is killed with -9 in
    the middle. Every VM is scheduled at most once and no host is over capacity."""
    for i in range(6):
        add_host(store, f"h{i}", cpu=40, ram=40, disk=4000)
    conf = scheduler_conf(tmp_path, etcd_server, cpu_overcommit=1.0)
    processes = [daemons.start("ucloud-scheduler", conf, log_name=f"s{i}") for i in range(3)]
    uuids = [add_vm(store, f"v{i}") for i in range(150)]
    leader = eventually(lambda: store.get(keys.SCHEDULER_LEADER))
    pid = int(leader.value["identity"].rsplit(":", 1)[1])
    assert pid in [p.pid for p in processes]
    os.kill(pid, signal.SIGKILL)
    uuids += [add_vm(store, f"w{i}") for i in range(150)]
    eventually(lambda: sum(1 for v in vm_records(store) if v["host"]) == 240, timeout=20)
    records = vm_records(store)
    assert len(records) == 300 and {r["uuid"] for r in records} == set(uuids)
    for record in records:
        assert sum("scheduled on" in line for line in record["log"]) == (1 if record["host"] else 0)
    per_host: dict[str, int] = {}
    for record in records:
        if record["host"]:
            per_host[record["host"]] = per_host.get(record["host"], 0) + 1
    assert all(count <= 40 for count in per_host.values())
    assert store.get(keys.SCHEDULER_LEADER).value["identity"] != leader.value["identity"]


def test_leader_failover_within_ttl(store, etcd_server, tmp_path, daemons) -> None:
    import time

    add_host(store, "h1", ram=64)
    conf = scheduler_conf(tmp_path, etcd_server)
    first = daemons.start("ucloud-scheduler", conf, log_name="first")
    eventually(lambda: store.get(keys.SCHEDULER_LEADER))
    daemons.start("ucloud-scheduler", conf, log_name="second")
    time.sleep(0.5)
    leader = store.get(keys.SCHEDULER_LEADER).value["identity"]
    assert leader.endswith(f":{first.pid}")
    first.kill()
    killed = time.monotonic()
    uuid = add_vm(store, "after-failover")
    eventually(lambda: store.get(keys.vm(uuid)).value["host"] == "h1", timeout=10)
    assert time.monotonic() - killed <= 2 + 1.5  # TTL 2 s + a little


def test_sigterm_resigns_at_once(store, etcd_server, tmp_path, daemons) -> None:
    import time

    conf = scheduler_conf(tmp_path, etcd_server)
    first = daemons.start("ucloud-scheduler", conf, log_name="first")
    eventually(lambda: store.get(keys.SCHEDULER_LEADER))
    first.terminate()
    assert first.wait(5) == 0
    started = time.monotonic()
    assert store.get(keys.SCHEDULER_LEADER) is None
    assert time.monotonic() - started < 1
