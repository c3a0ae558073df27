"""Scheduler benchmark: N hosts registered, N PENDING VMs written at once; time until every VM
is placed, through a real etcd and a real ucloud-scheduler process.

    .venv/bin/python -m bench.scheduler [--hosts 1000] [--vms 1000]
"""

import argparse
import tempfile
import time
from pathlib import Path

from bench.util import machine, print_table
from common import model
from common.poll import wait_until
from common.store import Put, Store, keys
from common.store.mirror import Mirror
from ucloud_aio.cloud import venv_script
from ucloud_aio.etcd import EtcdServer
from ucloud_aio.procs import spawn, stop_process

GiB = 1024**3


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--vms", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    rows = []
    for strategy in ("spread", "pack"):
        for run in range(args.runs):
            rows.append([strategy, str(run + 1), *measure(args.hosts, args.vms, strategy)])
    print(f"# Scheduler benchmark, {time.strftime('%Y-%m-%d')}, {machine()}\n")
    print_table(["strategy", "run", "hosts", "VMs", "all placed s", "placements/s"], rows)


def measure(host_count: int, vm_count: int, strategy: str) -> list[str]:
    with tempfile.TemporaryDirectory(prefix="ucloud-bench-") as tmp:
        etcd = EtcdServer(Path(tmp) / "etcd", log_path=str(Path(tmp) / "etcd.log")).start()
        store = Store([etcd.endpoint])
        scheduler = None
        try:
            ops = []
            for index in range(host_count):
                name = f"host{index:05}"
                ops.append(
                    Put(
                        keys.host(name),
                        {
                            "hostname": name,
                            "status": model.ALIVE,
                            "capacity": {"cpu": 64, "ram": 256 * GiB, "disk": 10_000 * GiB},
                        },
                    )
                )
                ops.append(Put(keys.alive(name), {"hostname": name}))
            for start in range(0, len(ops), 100):
                store.txn([], ops[start : start + 100])
            conf = Path(tmp) / "scheduler.conf"
            conf.write_text(
                f"etcd_endpoints = {etcd.endpoint}\nmetrics_port = 0\n"
                f"placement = {strategy}\nlog_level = WARNING\n"
            )
            scheduler = spawn(
                [venv_script("ucloud-scheduler"), "--config", str(conf)],
                Path(tmp) / "scheduler.log",
            )
            wait_until(lambda: store.get(keys.SCHEDULER_LEADER) is not None, 10, "a leader")
            time.sleep(0.5)  # let the leader list and settle
            vms = [
                model.new_vm(
                    {"name": f"vm{i}", "cpu": 1, "ram": GiB, "os_ssd": 10 * GiB},
                    "bench",
                    {"uuid": "img", "name": "tiny"},
                )
                for i in range(vm_count)
            ]
            mirror = Mirror(store, keys.VM).start()
            mirror.wait_synced(5)
            started = time.perf_counter()
            for start in range(0, len(vms), 100):
                store.txn([], [Put(keys.vm(v["uuid"]), v) for v in vms[start : start + 100]])

            def all_placed() -> bool:
                values = mirror.values()
                return len(values) == vm_count and all(e.value["host"] for e in values)

            wait_until(all_placed, 60, "every VM placed", interval=0.005)
            elapsed = time.perf_counter() - started
            mirror.stop()
            return [str(host_count), str(vm_count), f"{elapsed:.2f}", f"{vm_count / elapsed:.0f}"]
        finally:
            if scheduler is not None:
                stop_process(scheduler)
            store.close()
            etcd.kill()


if __name__ == "__main__":
    main()
