"""Metadata service benchmark: ucloud-meta answering 10 guest-equivalents (network namespaces
on one host bridge, each the NIC of a VM record) over real sockets.

- one request per new connection (what the test guest's `nc` does): latency;
- 10 guests at 100 requests/s each (1,000/s) on keep-alive connections: latency and errors;
- 10 guests as fast as they can for 5 s: throughput and errors.

    .venv/bin/python -m bench.metadata
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.util import LATENCY_HEADER, latency_row, machine, print_table
from ucloud_aio.guestnet import GuestNet, guest_vm, metadata_rig

PORT = 8776
GUESTS = 10
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKZw3hw0dEKnSo38w2vIlTU8XILQmeyPgprJ3tBorhsI b@x"

# Runs inside a guest namespace: requests for `seconds`, paced at `rate`/s (0: flat out), on one
# keep-alive connection (or a new one per request when `fresh`). Prints latencies and errors.
LOAD = """
import http.client, json, sys, time
rate, seconds, fresh = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3] == "1"
host = "fe80::a9fe:a9fe%eth0"
latencies, errors, conn = [], 0, None
start = time.monotonic()
next_at = start
while time.monotonic() - start < seconds:
    if rate:
        time.sleep(max(0.0, next_at - time.monotonic()))
        next_at += 1 / rate
    began = time.perf_counter()
    try:
        if conn is None or fresh:
            conn = http.client.HTTPConnection(host, PORT, timeout=5)
        conn.request("GET", "/ssh-keys")
        answer = conn.getresponse()
        body = answer.read()
        if answer.status != 200 or not body:
            errors += 1
        if fresh:
            conn.close()
    except OSError:
        errors += 1
        conn = None
    latencies.append(time.perf_counter() - began)
print(json.dumps({"latencies": latencies, "errors": errors}))
""".replace("PORT", str(PORT))


def load(net: GuestNet, rate: float, seconds: float, fresh: bool, guests: list[str]) -> dict:
    """Run the load in every guest at once; merged latencies, errors and requests per second."""
    arguments = [str(rate), str(seconds), "1" if fresh else "0"]
    processes = [
        subprocess.Popen(
            ["ip", "netns", "exec", guest, sys.executable, "-c", LOAD, *arguments],
            stdout=subprocess.PIPE,
            text=True,
        )
        for guest in guests
    ]
    results = [json.loads(p.communicate()[0]) for p in processes]
    latencies = [x for r in results for x in r["latencies"]]
    return {
        "latencies": latencies,
        "errors": sum(r["errors"] for r in results),
        "rate": len(latencies) / seconds,
    }


def main() -> None:
    state = Path(tempfile.mkdtemp(prefix="ubm-", dir="/tmp"))
    vms = [
        (
            guest_vm(
                f"00000000-0000-4000-8000-0000000000{i:02d}",
                f"g{i}",
                "u",
                f"02:00:00:00:01:{i:02x}",
            ),
            {"ssh_keys": [{"name": "k", "key": KEY}], "user_data": None},
        )
        for i in range(GUESTS)
    ]
    try:
        with metadata_rig(state, f"ubm{os.getpid() % 10000}", vms, PORT) as rig:
            net = rig.net
            fresh = load(net, 50, 4, True, net.guests[:1])
            paced = load(net, 100, 5, False, net.guests)
            flat = load(net, 0, 5, False, net.guests)
    finally:
        shutil.rmtree(state, ignore_errors=True)
    print(f"# Metadata benchmark, {machine()}; {GUESTS} guest namespaces, one ucloud-meta\n")
    rows = [
        ("1 guest, new connection per request", fresh),
        (f"{GUESTS} guests x 100/s, keep-alive", paced),
        (f"{GUESTS} guests flat out, keep-alive", flat),
    ]
    print_table(
        [*LATENCY_HEADER, "req/s", "errors"],
        [
            [*latency_row(name, r["latencies"]), f"{r['rate']:.0f}", str(r["errors"])]
            for name, r in rows
        ],
    )


if __name__ == "__main__":
    main()
