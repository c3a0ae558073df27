"""ucloud-host as a real process: registration, liveness lease, restart, death."""

import time

from common import model
from common.store import keys
from tests.daemons import eventually, write_conf

GiB = 1024**3


def host_conf(tmp_path, etcd, name="h1", **extra):
    return write_conf(
        tmp_path / f"{name}.conf",
        etcd_endpoints=etcd.endpoint,
        hostname=name,
        host_lease_ttl=2,
        run_dir=tmp_path / "run",
        image_dir=tmp_path / "images",
        metrics_port=0,
        host_report_interval=0.5,
        **extra,
    )


def test_registers_with_detected_and_overridden_capacity(
    store, etcd_server, tmp_path, daemons
) -> None:
    daemons.start("ucloud-host", host_conf(tmp_path, etcd_server, "auto"))
    daemons.start(
        "ucloud-host",
        host_conf(tmp_path, etcd_server, "fixed", host_cpu=64, host_ram="128GiB", host_disk="2TB"),
    )
    eventually(lambda: store.get(keys.alive("auto")) and store.get(keys.alive("fixed")))
    auto = eventually(lambda: store.get(keys.host("auto"))).value
    assert auto["status"] == model.ALIVE and auto["capacity"]["cpu"] >= 1
    assert auto["capacity"]["ram"] > GiB and auto["capacity"]["disk"] > GiB
    fixed = eventually(lambda: store.get(keys.host("fixed"))).value
    assert fixed["capacity"] == {"cpu": 64, "ram": 128 * GiB, "disk": 2 * 10**12}
    usage = eventually(lambda: store.get(keys.host("auto")).value.get("usage"))
    assert usage["ram_used"] > 0
    # the liveness key is bound to a lease with the configured TTL
    assert store.get(keys.alive("auto")).lease != 0


def test_kill9_and_quick_restart_keeps_host_alive(store, etcd_server, tmp_path, daemons) -> None:
    conf = host_conf(tmp_path, etcd_server)
    first = daemons.start("ucloud-host", conf, log_name="first")
    alive = eventually(lambda: store.get(keys.alive("h1")))
    first.kill()
    first.wait()
    daemons.start("ucloud-host", conf, log_name="second")
    # the restarted agent adopts the same lease: the key is never deleted
    deadline = time.monotonic() + 4
    while time.monotonic() < deadline:
        current = store.get(keys.alive("h1"))
        assert current is not None and current.lease == alive.lease
        time.sleep(0.1)


def test_dead_agent_loses_liveness_after_ttl(store, etcd_server, tmp_path, daemons) -> None:
    agent = daemons.start("ucloud-host", host_conf(tmp_path, etcd_server))
    eventually(lambda: store.get(keys.alive("h1")))
    agent.kill()
    killed = time.monotonic()
    eventually(lambda: store.get(keys.alive("h1")) is None, timeout=6)
    assert 1.5 <= time.monotonic() - killed <= 4  # TTL 2 s
    # once a new agent starts later, the host is ALIVE again with a new lease
    daemons.start("ucloud-host", host_conf(tmp_path, etcd_server), log_name="again")
    eventually(lambda: store.get(keys.alive("h1")))
    assert store.get(keys.host("h1")).value["status"] == model.ALIVE


def test_host_survives_etcd_restart(private_etcd, tmp_path, daemons) -> None:
    from common.store import Store

    store = Store([private_etcd.endpoint])
    daemons.start("ucloud-host", host_conf(tmp_path, private_etcd))
    eventually(lambda: store.get(keys.alive("h1")))
    private_etcd.kill()
    private_etcd.start()
    # the lease may have been kept or re-granted; either way the host is alive again
    eventually(lambda: store.get(keys.alive("h1")), timeout=10)
    store.close()
