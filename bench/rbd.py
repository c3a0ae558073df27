"""Ceph RBD image store benchmarks on a single-node Ceph (ucloud_aio/ceph.py: memstore, so the
data is in RAM and the figures show the store's overhead, not a disk's speed):
- import: RbdStore.import_image of a qcow2 full of random data (private copy, qemu-img
  info/check of the copy, convert into a new RBD image, snapshot and protect), next to a plain
  `qemu-img convert -O raw x.qcow2 rbd:pool/name` of the same file;
- VM create on RBD: POST /v1/vm -> the VM's qemu process exists, and -> status RUNNING, on an
  all-in-one cloud with `ceph=True` (the OS disk an RBD clone).

    .venv/bin/python -m bench.rbd [--size 256] [--runs 3] [--vms 10]
"""

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time
import uuid as uuids
from pathlib import Path

import rbd

from bench.util import LATENCY_HEADER, latency_row, machine, print_table, until
from bench.vm import Bench, qemu_running
from common.imagestore.drivers.rbd import RbdStore
from ucloud_aio.ceph import CephCluster, pool_images
from ucloud_aio.cloud import CEPH_POOL, AllInOne
from ucloud_aio.procs import free_port

MiB = 1024 * 1024


def random_qcow2(directory: Path, size_mib: int) -> Path:
    """A qcow2 whose every cluster holds random data (nothing for zero detection to skip)."""
    raw = directory / "random.raw"
    with open(raw, "wb") as out:
        for _ in range(size_mib):
            out.write(os.urandom(MiB))
    qcow2 = directory / "random.qcow2"
    subprocess.run(
        ["qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", str(raw), str(qcow2)], check=True
    )
    raw.unlink()
    return qcow2


def imports(size_mib: int, runs: int) -> list[list[str]]:
    with tempfile.TemporaryDirectory(prefix="ubrbd-", dir="/tmp") as tmp:
        work = Path(tmp)
        # room for one image at a time (each is removed before the next) plus slack
        cluster = CephCluster(work / "ceph", memory=max(2 * size_mib, 256) * MiB).start()
        store = RbdStore(cluster.pool, str(cluster.conf), "admin", str(work / "scratch"))
        try:
            source = random_qcow2(work, size_mib)
            store.remove_image(str(uuids.uuid4()))  # connected before the first measurement
            times: dict[str, list[float]] = {"ours": [], "same flags": [], "defaults": []}
            for run in range(runs):  # interleaved: a noisy neighbour hits all three alike
                image = str(uuids.uuid4())
                started = time.monotonic()
                store.import_image(image, str(source))
                times["ours"].append(time.monotonic() - started)
                store.remove_image(image)
                for kind, flags in (("same flags", ["-W", "-m", "16"]), ("defaults", [])):
                    name = f"plain-{run}-{len(flags)}"
                    started = time.monotonic()
                    subprocess.run(
                        ["qemu-img", "convert", "-q", *flags, "-f", "qcow2", "-O", "raw",
                         str(source), f"rbd:{cluster.pool}/{name}:conf={cluster.conf}"],
                        check=True,
                    )  # fmt: skip
                    times[kind].append(time.monotonic() - started)
                    with cluster.client() as client, client.open_ioctx(cluster.pool) as ioctx:
                        rbd.RBD().remove(ioctx, name)
            assert cluster.images() == []
        finally:
            store.close()
            cluster.kill()
            shutil.rmtree(work / "ceph", ignore_errors=True)
    median = {kind: statistics.median(samples) for kind, samples in times.items()}
    return [
        [f"RbdStore.import_image ({size_mib} MiB)", str(runs), f"{median['ours']:.2f}"],
        [
            "plain qemu-img convert -W -m 16 to rbd (the store's flags)",
            str(runs),
            f"{median['same flags']:.2f}",
        ],
        ["plain qemu-img convert to rbd (default flags)", str(runs), f"{median['defaults']:.2f}"],
        [
            "overhead of the store (copy, check, snapshot) vs the same flags",
            "",
            f"{(median['ours'] / median['same flags'] - 1) * 100:+.0f} %",
        ],
        [
            "overhead vs default flags",
            "",
            f"{(median['ours'] / median['defaults'] - 1) * 100:+.0f} %",
        ],
    ]


def creates(count: int) -> list[list[str]]:
    state = Path(tempfile.mkdtemp(prefix="ubench-", dir="/tmp"))
    cloud = AllInOne(state, api_port=free_port(), settings={"log_level": "WARNING"}, ceph=True)
    try:
        cloud.up()
        bench = Bench(cloud)
        process, running = [], []
        for index in range(count):
            uuid, to_process, to_running = bench.measure(f"rbd{index}")
            assert qemu_running(uuid)
            process.append(to_process)
            running.append(to_running)
            bench.delete([uuid])  # one guest at a time: TCG guests would slow the next create
        conf = cloud.ceph_dir / "ceph.conf"
        until(lambda: len(pool_images(conf, CEPH_POOL)) == 1, interval=0.1)  # only the image
    finally:
        cloud.down()
        shutil.rmtree(state, ignore_errors=True)
    return [
        latency_row("RBD, sequential: POST -> qemu process", process),
        latency_row("RBD, sequential: POST -> status RUNNING", running),
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=256, help="MiB of random data to import")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--vms", type=int, default=10)
    args = parser.parse_args()
    import_rows = imports(args.size, args.runs)
    create_rows = creates(args.vms)
    print(f"# RBD benchmark, {time.strftime('%Y-%m-%d')}, {machine()}\n")
    print_table(["import", "runs", "median s"], import_rows)
    print()
    print_table(LATENCY_HEADER, create_rows)


if __name__ == "__main__":
    main()
