"""Firewall benchmark: nft rules for many ports, a new NIC's rules in force, throughput cost.

- full reconcile of N ports (default 1,000) from nothing, a no-op pass (policy computed from N
  VM records, rendered, found unchanged), one NIC added to N: nft in a namespace of its own;
- NIC attached -> its rules in force: a real ucloud-firewall in a host namespace with its own
  etcd; from the VM record's write until the port's mark appears (made after nft accepted);
- TCP throughput between two guest namespaces with iperf3, through a guarded port with rules
  and with the tables removed.

    .venv/bin/python -m bench.firewall [--ports 1000] [--runs 30]
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.util import LATENCY_HEADER, latency_row, machine, print_table, until
from common import ipam, netnames
from common.store import keys
from ucloud_aio.guestnet import AgentRig, GuestNet, agent_rig, guest_vm, run
from ucloud_firewall import policy
from ucloud_firewall.drivers.nft import NftFirewall


def mac(index: int) -> str:
    return "02:fb:" + ":".join(f"{(index >> shift) & 0xFF:02x}" for shift in (24, 16, 8, 0))


def records(count: int) -> list[dict]:
    vms = []
    for index in range(count):
        vm = guest_vm(f"00000000-0000-4000-8000-{index:012x}", f"vm{index}", "u", mac(index))
        if index % 2:
            vm["firewall"] = [{"protocol": "tcp", "ports": [22, 22], "source": "::/0"}]
        vms.append(vm)
    return vms


def marked(run_dir: Path, *macs: str) -> Callable[[object], bool]:
    """The rig is ready once ucloud-firewall marked these NICs' ports."""
    marks = netnames.firewall_marks(str(run_dir))
    return lambda _rig: all((marks / netnames.tap(m)).exists() for m in macs)


def many_ports(count: int) -> list[list[str]]:
    namespace = f"ubfw{os.getpid() % 10000}"
    run("ip", "netns", "add", namespace)
    try:
        firewall = NftFirewall(("ip", "netns", "exec", namespace, "nft"))
        vms = records(count)
        started = time.perf_counter()
        firewall.apply(policy.desired("h1", vms, [], 80))
        full = time.perf_counter() - started
        started = time.perf_counter()
        changed = firewall.apply(policy.desired("h1", vms, [], 80))
        noop = time.perf_counter() - started
        assert not changed
        started = time.perf_counter()
        firewall.apply(policy.desired("h1", [*vms, *records(count + 1)[count:]], [], 80))
        one_more = time.perf_counter() - started
    finally:
        run("ip", "netns", "del", namespace)
    return [
        [f"full reconcile, {count} ports from nothing", f"{full * 1000:.0f}"],
        [f"no-op pass over {count} VM records", f"{noop * 1000:.1f}"],
        [f"one NIC added to {count} ports", f"{one_more * 1000:.0f}"],
    ]


def attach_latency(state: Path, runs: int) -> list[float]:
    run_dir = state / "run"
    marks = netnames.firewall_marks(str(run_dir))
    vms = [(guest_vm("00000000-0000-4000-8000-00000000000a", "a", "u", mac(0)), {})]
    net = GuestNet(f"ubfa{os.getpid() % 10000}")
    settings = {"run_dir": str(run_dir), "firewall": "nft"}
    samples = []
    with agent_rig(state, net, vms, "ucloud_firewall", settings, marked(run_dir, mac(0))) as rig:
        vm = vms[0][0]
        for index in range(1, runs + 1):
            nic = {**vm["networks"][0], "mac": mac(index), "slot": 1}
            vm["networks"] = [vm["networks"][0], nic]
            started = time.monotonic()
            rig.store.put(keys.vm(vm["uuid"]), vm)
            done = until(lambda m=nic["mac"]: (marks / netnames.tap(m)).exists(), 10, 0.001)
            samples.append(done - started)
    return samples


def throughput(state: Path, rounds: int) -> list[list[str]]:
    """iperf3 from guest a to guest g (guarded: tcp 5201 allowed), with the rules and with the
    tables removed, alternating (a busy machine drifts): the median of `rounds` runs of 3 s."""
    run_dir = state / "run"
    a = guest_vm("00000000-0000-4000-8000-00000000000a", "a", "u", mac(1))
    g = guest_vm("00000000-0000-4000-8000-00000000000b", "g", "u", mac(2))
    g["firewall"] = [{"protocol": "tcp", "ports": [5201, 5201], "source": "::/0"}]
    net = GuestNet(f"ubft{os.getpid() % 10000}")
    settings = {"run_dir": str(run_dir), "firewall": "nft"}
    rates: dict[bool, list[float]] = {True: [], False: []}
    with agent_rig(state, net, [(a, {}), (g, {})], "ucloud_firewall", settings, ready) as rig:
        client, server = net.guests
        nft = NftFirewall(("ip", "netns", "exec", net.host, "nft"))
        target = ipam.eui64("fe80::/64", mac(2))
        iperf = subprocess.Popen(
            ["ip", "netns", "exec", server, "iperf3", "-s"], stdout=subprocess.DEVNULL
        )
        time.sleep(0.5)
        try:
            for _ in range(rounds):
                for rules in (True, False):
                    if rules:
                        if rig.process is None:  # killed for the round without rules
                            rig.start()  # ready once the rules are in force again
                    else:
                        rig.kill()
                        nft.remove()
                    out = run(
                        "ip", "netns", "exec", client, "iperf3", "-J", "-t", "3", "-c",
                        f"{target}%eth0",
                    )  # fmt: skip
                    rates[rules].append(json.loads(out)["end"]["sum_received"]["bits_per_second"])
        finally:
            iperf.kill()
            iperf.wait()
    return [
        [label, f"{statistics.median(rates[rules]) / 1e9:.2f}"]
        for label, rules in (("with the rules", True), ("tables removed", False))
    ]


def ready(rig: AgentRig) -> bool:
    """ucloud-firewall has put the rules of the rig's guests in force."""
    nft = NftFirewall(("ip", "netns", "exec", rig.net.host, "nft"))
    return bool(nft.drops().by_class)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ports", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=5, help="iperf3 runs with and without")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    print_table(["measure", "ms"], many_ports(args.ports))
    print()
    state = Path(tempfile.mkdtemp(prefix="ucloud-bench-fw-"))
    try:
        samples = attach_latency(state / "attach", args.runs)
        print_table(LATENCY_HEADER, [latency_row("NIC attached -> rules in force", samples)])
        print()
        rows = throughput(state / "iperf", args.rounds)
        with_rules, without = (float(row[1]) for row in rows)
        rows.append(["loss", f"{(1 - with_rules / without) * 100:.1f} %"])
        print_table([f"TCP a -> guarded g (iperf3, median of {args.rounds})", "Gbit/s"], rows)
    finally:
        shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    main()
