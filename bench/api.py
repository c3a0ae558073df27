"""API benchmarks through gunicorn over real HTTP, on an all-in-one cloud:
POST /v1/vm latency, GET /v1/vm with 10,000 VMs in etcd, authenticated GET throughput (wrk).
Every request carries a session token (Authorization: Bearer), as the CLI's do: a TOTP code is
accepted once.

    .venv/bin/python -m bench.api [--workers N] [--vms 10000] [--no-tls]

Over HTTPS with ucloud-aio's CA, as a cloud runs by default; --no-tls measures plain HTTP.
"""

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path

from bench.util import LATENCY_HEADER, latency_row, machine, print_table
from common import model
from common.store import Put, keys
from ucloud_aio.cloud import AllInOne
from ucloud_aio.procs import free_port
from ucloud_cli.client import Client


def timed(function, count: int) -> list[float]:
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        function()
        samples.append(time.perf_counter() - started)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--vms", type=int, default=10_000)
    parser.add_argument("--no-tls", dest="tls", action="store_false", help="plain HTTP API")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ucloud-bench-") as tmp:
        os.chmod(tmp, 0o711)  # qemu_user must reach the hosts' run dirs inside (docs/vm.md)
        cloud = AllInOne(
            Path(tmp) / "aio",
            api_port=free_port(),
            tls=args.tls,
            settings={
                "host_cpu": "1000000",
                "host_ram": "1000TiB",
                "host_disk": "100000TB",
                # the admin POSTs hundreds of VMs: no quota may stop the benchmark
                "quota_vms": "1000000",
                "quota_cpu": "1000000",
                "quota_ram": "1000TiB",
                "quota_disk": "100000TB",
                "api_workers": str(args.workers),
                "api_threads": str(args.threads),
                "log_level": "WARNING",
            },
        )
        try:
            cloud.up()
            run(cloud, args)
        finally:
            cloud.down()


def run(cloud: AllInOne, args: argparse.Namespace) -> None:
    admin = cloud.admin_client()
    # The API is measured, not qemu: the only host is drained, so the VMs posted stay PENDING
    # instead of booting (ucloud-aio registered the image tiny).
    admin.post("/v1/host/host1/drain")
    body = {"name": "bench", "cpu": 1, "ram": "512MiB", "os_ssd": "1GiB", "image": "tiny"}

    def create() -> None:
        admin.post("/v1/vm", body)

    timed(create, 20)  # warm up every worker
    post = timed(create, 300)

    # 10,000 VMs straight into etcd (as the API would store them), owned by two users
    store = cloud.store()
    image_entry = store.list(keys.IMAGE).entries[0].value
    records = []
    for index in range(args.vms):
        vm = model.new_vm(
            {"name": f"vm{index}", "cpu": 1, "ram": 2**30, "os_ssd": 2**30},
            "alice" if index % 2 else "bob",
            image_entry,
        )
        vm.update(host="bench-host", status=model.SCHEDULED)
        records.append(vm)
    for start in range(0, len(records), 100):
        store.txn([], [Put(keys.vm(v["uuid"]), v) for v in records[start : start + 100]])
    total = store.count(keys.VM)
    store.close()
    account = admin.post("/v1/user", {"name": "alice", "realm": "users"})
    ca = str(cloud.ca_file) if cloud.ca_file else None
    alice = Client.of(cloud.api_url, "alice", "users", account["seed"], ca, cache=False)

    def list_all() -> None:
        admin.get("/v1/vm")

    def list_own() -> None:
        alice.get("/v1/vm")

    # Timed: until the whole body is received (and decoded: the client's share is small).
    assert len(admin.get("/v1/vm")) == total
    get_all = timed(list_all, 30)
    get_own = timed(list_own, 30)

    print(f"# API benchmark, {time.strftime('%Y-%m-%d')}, {machine()}")
    print(
        f"gunicorn gthread workers: {args.workers} x {args.threads} threads;"
        f" {'HTTPS (TLS)' if cloud.tls else 'plain HTTP'};"
        f" VMs in etcd for the GETs: {total}\n"
    )
    print_table(
        LATENCY_HEADER,
        [
            latency_row("POST /v1/vm", post),
            latency_row(f"GET /v1/vm admin ({total} VMs)", get_all),
            latency_row(f"GET /v1/vm user ({total // 2} own)", get_own),
        ],
    )
    print()
    one = records[1]["uuid"]
    throughput(cloud.api_url, alice, f"/v1/vm/{one}")
    alice.logout()


def throughput(api: str, client: Client, path: str) -> None:
    """wrk with the session token of `client` (Authorization: Bearer)."""
    rows = []
    for connections in (8, 32):
        argv = ["wrk", "-t2", f"-c{connections}", "-d10s", "--latency"]
        for name, value in client.auth.headers().items():
            argv += ["-H", f"{name}: {value}"]
        result = subprocess.run([*argv, f"{api}{path}"], capture_output=True, text=True, check=True)
        out = result.stdout
        rps = next(line.split()[1] for line in out.splitlines() if line.startswith("Requests/sec"))
        p50 = next(line.split()[1] for line in out.splitlines() if line.strip().startswith("50%"))
        errors = [
            line.strip()
            for line in out.splitlines()
            if "Non-2xx" in line or "Socket errors" in line
        ]
        rows.append(
            [
                f"GET {path.split('/')[2]}/<uuid>",
                str(connections),
                rps,
                p50,
                "; ".join(errors) or "none",
            ]
        )
    print_table(["authenticated GET", "connections", "req/s", "p50", "errors"], rows)


if __name__ == "__main__":
    main()
