"""Network benchmarks on a 2-host lab with real guests (TCG):
- network create -> usable by a new VM: POST /v1/network, POST /v1/vm on it, until the
  network's bridge exists on the VM's host and until the VM's qemu runs (control plane);
- hot attach -> NIC visible in the guest;
- interface up -> SLAAC address configured (non-tentative) in the guest.

    .venv/bin/python -m bench.network [--runs 5]
"""

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

from bench.util import LATENCY_HEADER, latency_row, machine, print_table, until
from tests.lab_helpers import Client, qemu_uuids
from ucloud_aio.cloud import AllInOne
from ucloud_aio.console import SerialShell, wait_for_marker
from ucloud_aio.guest import READY_MARKER
from ucloud_aio.procs import free_port


def has_link(lab: AllInOne, host: str, name: str) -> bool:
    ns = lab.fabric.netns(lab.host_index(host))
    return (
        subprocess.run(
            ["ip", "-n", ns, "link", "show", name], capture_output=True, check=False
        ).returncode
        == 0
    )


def create_to_usable(lab: AllInOne, client: Client, run: int) -> tuple[float, float]:
    started = time.monotonic()
    net = client.call("POST", "/v1/network", {"name": f"bench{run}"}, 201)
    vm = client.create(f"user{run}", networks=[net["name"]])
    bridge = f"ubr{net['vni']}"
    usable = until(lambda: any(has_link(lab, h, bridge) for h in lab.host_names)) - started
    running = until(lambda: vm["uuid"] in qemu_uuids()) - started
    return usable, running


def attach_and_slaac(
    lab: AllInOne, client: Client, shell: SerialShell, vm: dict, run: int
) -> tuple[float, float]:
    """(POST attach -> ethN visible in the guest, ethN up -> its SLAAC address valid)."""
    client.call("POST", "/v1/network", {"name": f"hot{run}"}, 201)
    started = time.monotonic()
    attached = client.call("POST", f"/v1/vm/{vm['uuid']}/networks", {"network": f"hot{run}"}, 202)
    nic = attached["networks"][-1]
    iface = f"eth{len(attached['networks']) - 1}"
    visible = until(lambda: iface in shell.run("ls /sys/class/net")[1], interval=0)
    seen = visible - started

    def configured() -> bool:
        out = shell.run(f"ip -6 addr show dev {iface}")[1]
        return nic["ipv6"] in out and "tentative" not in out.split(nic["ipv6"], 1)[1][:60]

    # The guest's own loop sets a new NIC up within 200 ms; the target counts from there.
    up = until(lambda: ",UP" in shell.run(f"ip link show {iface}")[1], interval=0)
    slaac = until(configured, interval=0) - up
    client.call("DELETE", f"/v1/vm/{vm['uuid']}/networks/hot{run}", expect=202)
    until(lambda: iface not in shell.run("ls /sys/class/net")[1], timeout=30, interval=0.2)
    return seen, slaac


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    state = Path(tempfile.mkdtemp(prefix="ubn-", dir="/tmp"))
    lab = AllInOne(state, api_port=free_port(), hosts=2, settings={"log_level": "WARNING"})
    usable, running, visible, slaac = [], [], [], []
    try:
        lab.up()
        client = Client(lab)
        for run in range(args.runs):
            u, r = create_to_usable(lab, client, run)
            usable.append(u)
            running.append(r)
            client.delete_all()  # a booting TCG guest would slow the next run's control plane
        client.call("POST", "/v1/network", {"name": "base"}, 201)
        vm = client.wait(client.create("guest", networks=["base"])["uuid"], status="RUNNING")
        wait_for_marker(
            str(lab.run_dir(vm["host"]) / "vm" / vm["uuid"] / "serial.log"), READY_MARKER, 120
        )
        with SerialShell(vm["console"]["serial"]) as shell:
            for run in range(args.runs):
                v, s = attach_and_slaac(lab, client, shell, vm, run)
                visible.append(v)
                slaac.append(s)
    finally:
        lab.down()
        subprocess.run(["rm", "-rf", str(state)], check=False)
    print(f"# Network benchmark, {time.strftime('%Y-%m-%d')}, {machine()}; 2 lab hosts, TCG\n")
    print_table(
        LATENCY_HEADER,
        [
            latency_row("network create -> bridge on the VM's host", usable),
            latency_row("network create -> VM's qemu running on it", running),
            latency_row("hot attach -> NIC visible in the guest", visible),
            latency_row("NIC up -> SLAAC address valid in the guest", slaac),
        ],
    )


if __name__ == "__main__":
    main()
