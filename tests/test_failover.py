"""Dead hosts, partitions, fencing and rescheduling on a lab of namespace hosts, real qemu."""

import os
import signal
import time
from collections.abc import Iterator

import pytest

from common.poll import poll
from tests.conftest import running_cloud
from tests.daemons import Daemons, eventually
from tests.lab_helpers import Client, DuplicateWatch, qemu_processes, qemu_uuids
from ucloud_aio.cloud import AllInOne
from ucloud_aio.console import SerialShell, wait_for_marker
from ucloud_aio.guest import READY_MARKER

BOOT = 90


@pytest.fixture(scope="module")
def lab() -> Iterator[AllInOne]:
    with running_cloud(hosts=3) as cloud:
        yield cloud
    assert not [
        ns
        for ns in os.popen("ip netns list").read().split()
        if ns.startswith("uc") and cloud.fabric.lab_id in ns
    ], "namespaces left behind"


@pytest.fixture
def client(lab: AllInOne) -> Iterator[Client]:
    """Every test starts with three live hosts and no VMs, and leaves it so."""
    api = Client(lab)
    yield api
    for host in lab.host_names:
        if (
            not api.host(host)["alive"]
            or (lab.host_dir(host) / "cut").exists()
            or (lab.host_dir(host) / "killed").exists()
        ):
            lab.restore_host(host)
        if api.host(host).get("maintenance"):
            api.call("POST", f"/v1/host/{host}/enable", expect=202)
    api.delete_all()


def serial_log(lab: AllInOne, vm: dict) -> str:
    return str(lab.run_dir(vm["host"]) / "vm" / vm["uuid"] / "serial.log")


def test_killed_host_vms_restart_elsewhere_from_the_same_disks(lab: AllInOne, client) -> None:
    vm = client.create("durable", hdd=["16MiB"])
    vm = client.wait(vm["uuid"], status="RUNNING")
    wait_for_marker(serial_log(lab, vm), READY_MARKER, BOOT)
    with SerialShell(vm["console"]["serial"]) as shell:
        status, _ = shell.run(
            # conv=fsync: the guest flushes its disk write cache, as a database would
            "echo kept-across-hosts | dd of=/dev/vdb bs=512 count=1 conv=sync,fsync 2>/dev/null"
        )
        assert status == 0
    old_host = vm["host"]
    with DuplicateWatch() as watch:
        killed = time.monotonic()
        lab.kill_host(old_host)
        moved = client.wait_elsewhere(vm["uuid"], old_host, timeout=30)
        elapsed = time.monotonic() - killed
        wait_for_marker(serial_log(lab, moved), READY_MARKER, BOOT)
        with SerialShell(moved["console"]["serial"]) as shell:
            _, output = shell.run("dd if=/dev/vdb bs=512 count=1 2>/dev/null | head -c 17")
        assert "kept-across-hosts" in output
        assert client.host(old_host)["status"] == "DEAD"
        assert any("died" in line for line in moved["log"])
        lab.restore_host(old_host)  # the old host rejoins; the VM stays where it is
        time.sleep(2)
        assert client.vm(vm["uuid"])["host"] == moved["host"]
        assert client.host(old_host)["status"] == "ALIVE"
    watch.assert_never_twice()
    assert elapsed < 10, f"rescheduling took {elapsed:.1f} s"


def test_cut_host_fences_itself_before_the_vm_runs_elsewhere(lab: AllInOne, client) -> None:
    vm = client.wait(client.create("partitioned")["uuid"], status="RUNNING")
    cut_host = vm["host"]
    with DuplicateWatch() as watch:
        lab.cut_host(cut_host)
        moved = client.wait_elsewhere(vm["uuid"], cut_host, timeout=30)
        assert qemu_uuids().count(vm["uuid"]) == 1
        lab.restore_host(cut_host)  # processes alive all along: it rejoins
        eventually(lambda: client.host(cut_host)["status"] == "ALIVE")
        time.sleep(3)  # the rejoined host must not start its old VM again
        assert qemu_uuids().count(vm["uuid"]) == 1
        assert client.vm(vm["uuid"])["host"] == moved["host"]
    watch.assert_never_twice()
    # fenced itself: ucloud-vm or ucloud-watchdog, whichever noticed first
    logs = [lab.log_path(f"{cut_host}.{d}").read_text() for d in ("ucloud-vm", "ucloud-watchdog")]
    assert any("killed 1 VM(s)" in log for log in logs)


def test_an_etcd_stall_of_5_s_kills_no_vm(lab: AllInOne, client) -> None:
    """etcd frozen (SIGSTOP: what a slow fsync or a stuck leader looks like to the hosts) for 5 s
    is shorter than host_lease_ttl - fence_margin - keep-alive interval (7 - 1 - 0.5 s): no
    host fences, no lease expires, no VM moves."""
    vm = client.wait(client.create("steady")["uuid"], status="RUNNING")
    pid = next(p for p, uuid in qemu_processes().items() if uuid == vm["uuid"])
    hosts = {name: client.host(name) for name in lab.host_names}
    logs = {name: lab.log_path(f"{name}.ucloud-vm") for name in lab.host_names}
    sizes = {name: path.stat().st_size for name, path in logs.items()}
    etcd = int((lab.state_dir / "pids" / "etcd.pid").read_text())
    os.kill(etcd, signal.SIGSTOP)
    try:
        time.sleep(5)
    finally:
        os.kill(etcd, signal.SIGCONT)
    time.sleep(lab.config().host_lease_ttl + 2)  # an expiry it caused would show by now
    assert os.path.exists(f"/proc/{pid}") and qemu_processes().get(pid) == vm["uuid"]
    after = client.vm(vm["uuid"])
    assert (after["status"], after["host"]) == ("RUNNING", vm["host"])
    for name, before in hosts.items():
        now = client.host(name)
        assert now["status"] == "ALIVE"
        assert now["alive_since"] == before["alive_since"], f"{name} was DEAD for a while"
        with logs[name].open() as log:
            log.seek(sizes[name])
            assert "lease stale" not in log.read()


def test_a_longer_etcd_stall_restarts_vms_in_place(lab: AllInOne, client) -> None:
    """etcd frozen for 9 s, longer than the hosts tolerate: every host fences (it cannot tell a
    stall from a partition), and every lease expires at once when etcd resumes. That is the
    control plane's fault, not the hosts': the VMs wait for their hosts (evacuation.py) and
    start again where they were, instead of the whole cloud being shuffled."""
    vms = [client.wait(client.create(f"stalled{i}")["uuid"], status="RUNNING") for i in range(2)]
    etcd = int((lab.state_dir / "pids" / "etcd.pid").read_text())
    with DuplicateWatch() as watch:
        os.kill(etcd, signal.SIGSTOP)
        try:
            time.sleep(9)
        finally:
            os.kill(etcd, signal.SIGCONT)
        for vm in vms:
            seen: list[dict] = []

            def restarted(uuid: str = vm["uuid"], seen: list[dict] = seen) -> bool:
                seen.append(client.vm(uuid))
                fenced = any("fenced itself" in line for line in seen[-1]["log"])
                return fenced and seen[-1]["status"] == "RUNNING"

            assert poll(restarted, 40, interval=0.2), seen[-1]
            assert seen[-1]["host"] == vm["host"], seen[-1]["log"]
    watch.assert_never_twice()
    assert all(client.host(h)["status"] == "ALIVE" for h in lab.host_names)


def test_watchdog_fences_when_both_agents_die(lab: AllInOne, client) -> None:
    """ucloud-vm and ucloud-host killed together: nobody refreshes the lease or kills the VMs
    but ucloud-watchdog, which does before the lease expires and the VM restarts elsewhere."""
    vm = client.wait(client.create("watched")["uuid"], status="RUNNING")
    host = vm["host"]
    with DuplicateWatch() as watch:
        for agent in ("ucloud-vm", "ucloud-host"):
            pidfile = lab.state_dir / "pids" / f"{host}.{agent}.pid"
            os.kill(int(pidfile.read_text()), signal.SIGKILL)
        moved = client.wait_elsewhere(vm["uuid"], host, timeout=30)
        assert qemu_uuids().count(vm["uuid"]) == 1
    watch.assert_never_twice()
    assert "killed 1 VM(s)" in lab.log_path(f"{host}.ucloud-watchdog").read_text()
    assert moved["status"] == "RUNNING"


def test_leader_killed_during_a_reschedule(lab: AllInOne, client, tmp_path) -> None:
    standby = Daemons(tmp_path)
    try:
        standby.start("ucloud-scheduler", lab.conf_path, "--metrics-port", "0")
        vm = client.wait(client.create("orphaned")["uuid"], status="RUNNING")
        with DuplicateWatch() as watch:
            lab.kill_host(vm["host"])
            leader = int((lab.state_dir / "pids" / "ucloud-scheduler.pid").read_text())
            os.kill(leader, signal.SIGKILL)
            moved = client.wait_elsewhere(vm["uuid"], vm["host"], timeout=30)
        watch.assert_never_twice()
        assert moved["host"] != vm["host"]
    finally:
        standby.cleanup()
        lab.up()  # the killed scheduler comes back for the next tests


def test_etcd_restarted_during_a_reschedule(lab: AllInOne, client) -> None:
    vm = client.wait(client.create("resilient")["uuid"], status="RUNNING")
    with DuplicateWatch() as watch:
        lab.kill_host(vm["host"])
        etcd = int((lab.state_dir / "pids" / "etcd.pid").read_text())
        time.sleep(1)
        os.kill(etcd, signal.SIGKILL)
        eventually(lambda: not lab.status()["etcd"])
        lab.up()  # etcd again (hosts killed on purpose stay down)
        moved = client.wait_elsewhere(vm["uuid"], vm["host"], timeout=40)
        assert qemu_uuids().count(vm["uuid"]) == 1
    watch.assert_never_twice()
    assert moved["status"] == "RUNNING"


def test_drain_moves_vms_and_enable_takes_vms_again(lab: AllInOne, client) -> None:
    vm = client.wait(client.create("tenant")["uuid"], status="RUNNING")
    drained = vm["host"]
    with DuplicateWatch() as watch:
        assert client.call("POST", f"/v1/host/{drained}/drain", expect=202)["maintenance"]
        moved = client.wait_elsewhere(vm["uuid"], drained, timeout=40)
    watch.assert_never_twice()
    assert any("maintenance" in line for line in moved["log"])
    assert vm["uuid"] not in [u for u in qemu_uuids() if u == vm["uuid"]][1:]
    # new VMs avoid the drained host
    others = [client.create(f"new{i}")["uuid"] for i in range(3)]
    for uuid in others:
        assert client.wait(uuid, status="RUNNING")["host"] != drained
    client.call("POST", f"/v1/host/{drained}/enable", expect=202)
    assert not client.host(drained).get("maintenance")


def test_migrate_to_a_chosen_host(lab: AllInOne, client) -> None:
    vm = client.wait(client.create("mover")["uuid"], status="RUNNING")
    target = next(h for h in lab.host_names if h != vm["host"])
    client.call("POST", f"/v1/vm/{vm['uuid']}/migrate", {"host": target}, expect=202)
    moved = client.wait(vm["uuid"], host=target, status="RUNNING", timeout=40)
    assert qemu_uuids().count(vm["uuid"]) == 1
    assert any("migration" in line for line in moved["log"])
    answer = client.call("POST", f"/v1/vm/{vm['uuid']}/migrate", {"host": target}, expect=409)
    assert "already" in answer["error"]
    assert (
        "unknown host"
        in client.call("POST", f"/v1/vm/{vm['uuid']}/migrate", {"host": "nowhere"}, expect=404)[
            "error"
        ]
    )


def test_no_capacity_left_vms_wait_and_start_when_it_returns() -> None:
    """Each host fits one such VM: the dead host's VM waits (KILLED, with the reason), then
    runs again once the host is back."""
    with running_cloud(hosts=2, settings={"host_ram": "1GiB"}) as lab:
        client = Client(lab)
        uuids = [client.create(f"big{i}", ram="700MiB")["uuid"] for i in range(2)]
        vms = [client.wait(uuid, status="RUNNING") for uuid in uuids]
        victim = vms[0]
        lab.kill_host(victim["host"])
        waiting = eventually(
            lambda: (
                lambda v: v if v["status"] == "KILLED" and "no host fits" in v["log"][-1] else None
            )(client.vm(victim["uuid"])),
            timeout=20,
        )
        assert waiting["host"] is None
        lab.restore_host(victim["host"])
        back = client.wait(victim["uuid"], status="RUNNING", timeout=30)
        assert back["host"] == victim["host"]


def test_without_shared_storage_a_dead_hosts_vm_is_error_not_recreated() -> None:
    with running_cloud(hosts=2, settings={"shared_storage": "false"}) as lab:
        client = Client(lab)
        vm = client.wait(client.create("local-disk")["uuid"], status="RUNNING")
        lab.kill_host(vm["host"])
        failed = client.wait(vm["uuid"], status="ERROR", timeout=20)
        assert failed["host"] == vm["host"]  # not moved, not re-created empty elsewhere
        assert "not on shared storage" in failed["log"][-1]
        assert vm["uuid"] not in qemu_uuids()
        # migration and drain need shared storage too
        other = next(h for h in lab.host_names if h != vm["host"])
        assert "shared" in client.call("POST", f"/v1/host/{other}/drain", expect=409)["error"]
