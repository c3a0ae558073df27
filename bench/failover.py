"""Failover benchmarks on a 2-host lab with real qemu (TCG):
- host killed (power cut) with 1 and with 10 VMs: detection (liveness key gone), every VM
  RUNNING on the other host (control plane; the guests' own boot comes on top);
- host cut off (partition): fencing margin = time from the host killing its VMs to its lease
  expiring at etcd (must be > 0: the VMs are dead before anyone may restart them);
- scheduler leader killed: time until the standby places a new VM.

    .venv/bin/python -m bench.failover [--runs 3]
"""

import argparse
import os
import signal
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from bench.util import machine, percentile, print_table, until
from common.store import keys
from common.store.mirror import Mirror
from tests.lab_helpers import Client, qemu_uuids
from ucloud_aio.cloud import AllInOne, venv_script
from ucloud_aio.procs import free_port, spawn, stop_process


def place_all_on(client: Client, lab: AllInOne, host: str, count: int) -> list[str]:
    others = [h for h in lab.host_names if h != host]
    for other in others:
        client.call("POST", f"/v1/host/{other}/drain", expect=202)
    uuids = [client.create(f"b{i}")["uuid"] for i in range(count)]
    for uuid in uuids:
        try:
            client.wait(uuid, status="RUNNING", host=host, timeout=60)
        except AssertionError:
            raise RuntimeError(f"VM {uuid} did not run on {host}: {client.vm(uuid)}") from None
    for other in others:
        client.call("POST", f"/v1/host/{other}/enable", expect=202)
    return uuids


def power_cut(lab: AllInOne, client: Client, count: int) -> tuple[float, list[float]]:
    """(detection s, [kill -> RUNNING elsewhere s per VM])."""
    victim = lab.host_names[0]
    uuids = place_all_on(client, lab, victim, count)
    store = lab.store()
    alive = Mirror(store, keys.ALIVE).start()
    vms = Mirror(store, keys.VM).start()
    alive.wait_synced(5)
    vms.wait_synced(5)
    killed = time.monotonic()
    lab.kill_host(victim)
    detected = until(lambda: keys.alive(victim) not in alive.entries) - killed
    running: dict[str, float] = {}

    def all_moved() -> bool:
        for uuid in uuids:
            entry = vms.entries.get(keys.vm(uuid))
            if (
                uuid not in running
                and entry
                and entry.value["host"] not in (None, victim)
                and entry.value["status"] == "RUNNING"
            ):
                running[uuid] = time.monotonic() - killed
        return len(running) == len(uuids)

    until(all_moved, timeout=120)
    alive.stop()
    vms.stop()
    store.close()
    lab.restore_host(victim)
    client.delete_all()
    return detected, sorted(running.values())


def partition(lab: AllInOne, client: Client) -> tuple[float, float, float]:
    """(cut -> VMs killed by the host, cut -> lease expired at etcd, margin)."""
    victim = lab.host_names[0]
    [uuid] = place_all_on(client, lab, victim, 1)
    store = lab.store()
    alive = Mirror(store, keys.ALIVE).start()
    alive.wait_synced(5)
    cut = time.monotonic()
    lab.cut_host(victim)
    fenced = until(lambda: uuid not in qemu_uuids(), interval=0.002) - cut
    expired = until(lambda: keys.alive(victim) not in alive.entries) - cut
    alive.stop()
    store.close()
    client.wait(uuid, status="RUNNING", timeout=60)
    lab.restore_host(victim)
    client.delete_all()
    return fenced, expired, expired - fenced


def leader_failover(lab: AllInOne, client: Client, tmp: Path) -> float:
    standby = spawn(
        [venv_script("ucloud-scheduler"), "--config", str(lab.conf_path), "--metrics-port", "0"],
        tmp / "standby.log",
    )
    try:
        time.sleep(1)
        leader = int((lab.state_dir / "pids" / "ucloud-scheduler.pid").read_text())
        killed = time.monotonic()
        os.kill(leader, signal.SIGKILL)
        uuid = client.create("after-leader")["uuid"]
        placed = until(lambda: (client.vm(uuid) or {}).get("host") is not None, timeout=30)
        client.delete_all()
        return placed - killed
    finally:
        stop_process(standby)
        lab.up()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    state = Path(tempfile.mkdtemp(prefix="ubf-", dir="/tmp"))
    lab = AllInOne(
        state, api_port=free_port(), hosts=2, settings={"log_level": "WARNING", "host_cpu": "16"}
    )
    rows, fence_rows, leader = [], [], []
    try:
        lab.up()
        config = lab.config()
        client = Client(lab)
        for count in (1, 10):
            for run in range(args.runs):
                detected, moved = power_cut(lab, client, count)
                rows.append(
                    [
                        str(count),
                        str(run + 1),
                        f"{detected:.2f}",
                        f"{percentile(moved, 50):.2f}",
                        f"{percentile(moved, 95):.2f}",
                        f"{max(moved):.2f}",
                        f"{max(moved) - detected:.2f}",
                    ]
                )
        for run in range(args.runs):
            fenced, expired, margin = partition(lab, client)
            fence_rows.append([str(run + 1), f"{fenced:.2f}", f"{expired:.2f}", f"{margin:.2f}"])
        for _ in range(args.runs):
            leader.append(leader_failover(lab, client, state))
    finally:
        lab.down()
        subprocess.run(["rm", "-rf", str(state)], check=False)
    print(
        f"# Failover benchmark, {time.strftime('%Y-%m-%d')}, {machine()}; host lease TTL "
        f"{config.host_lease_ttl} s, fence margin {config.fence_margin} s, scheduler lease TTL"
        f" {config.scheduler_lease_ttl} s\n"
    )
    print_table(
        [
            "VMs on the dead host",
            "run",
            "detected s",
            "RUNNING p50 s",
            "RUNNING p95 s",
            "last RUNNING s",
            "restart after detection s",
        ],
        rows,
    )
    print()
    print_table(
        ["partition run", "host killed its VMs s", "lease expired at etcd s", "fencing margin s"],
        fence_rows,
    )
    print()
    print_table(
        ["leader failover", "runs", "median s", "max s"],
        [
            [
                "kill leader -> standby places a VM",
                str(len(leader)),
                f"{statistics.median(leader):.2f}",
                f"{max(leader):.2f}",
            ]
        ],
    )


if __name__ == "__main__":
    main()
