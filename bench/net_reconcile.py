"""ucloud-net's reconcile pass for N networks on one host, against the real kernel, inside a
throwaway network namespace (no etcd: the records are made up, the links are real).

    .venv/bin/python -m bench.net_reconcile [--networks 100]
"""

import argparse
import subprocess
import sys
import time

from bench.util import machine, print_table

NS = "ucbench-net"


def inside(count: int) -> None:
    from ucloud_net import plan
    from ucloud_net.drivers.linux import LinuxNetwork

    driver = LinuxNetwork("fd42:ffff::1", "eth0")
    vms = [
        {
            "host": "h1",
            "desired": "running",
            "networks": [
                {
                    "vni": 1000 + i,
                    "mac": f"02:00:00:00:{i >> 8:02x}:{i & 0xFF:02x}",
                    "mtu": 1500,
                    "prefix": f"fd00:{i:x}::/64",
                }
            ],
        }
        for i in range(count)
    ]
    vms += [
        {
            "host": "h2",
            "desired": "running",
            "networks": [
                {
                    "vni": 1000 + i,
                    "mac": f"02:00:00:01:{i >> 8:02x}:{i & 0xFF:02x}",
                    "mtu": 1500,
                    "prefix": f"fd00:{i:x}::/64",
                }
            ],
        }
        for i in range(count)
    ]
    hosts = [{"hostname": "h2", "status": "ALIVE", "underlay": "fd42:ffff::2"}]
    rows = []
    for label in ("from nothing", "nothing to do", "after losing every tap"):
        if label.startswith("after"):
            for i in range(count):
                driver.del_tap(f"ut02000000{i >> 8:02x}{i & 0xFF:02x}")
        started = time.perf_counter()
        want = plan.desired("h1", vms, hosts)
        todo = plan.steps(want, driver.observe())
        for step in todo:
            getattr(driver, step.action)(
                *{
                    "add_network": (step.vni, step.mtu),
                    "add_tap": (step.name, step.vni, step.mtu),
                    "add_peer": (step.vni, step.peer),
                    "del_peer": (step.vni, step.peer),
                    "del_tap": (step.name,),
                    "del_network": (step.vni,),
                }[step.action]
            )
        rows.append([label, str(count), str(len(todo)), f"{time.perf_counter() - started:.3f}"])
    assert not plan.steps(plan.desired("h1", vms, hosts), driver.observe())
    print_table(["reconcile pass", "networks", "link changes", "seconds"], rows)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--networks", type=int, default=100)
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inside:
        inside(args.networks)
        return
    subprocess.run(["ip", "netns", "del", NS], capture_output=True, check=False)
    subprocess.run(["ip", "netns", "add", NS], check=True)
    try:
        for command in (
            ["link", "add", "eth0", "type", "veth", "peer", "name", "eth1"],
            ["addr", "add", "fd42:ffff::1/64", "dev", "eth0", "nodad"],
            ["link", "set", "eth0", "up"],
        ):
            subprocess.run(["ip", "-n", NS, *command], check=True)
        print(f"# ucloud-net reconcile, {time.strftime('%Y-%m-%d')}, {machine()}\n")
        subprocess.run(
            [
                "ip",
                "netns",
                "exec",
                NS,
                sys.executable,
                "-m",
                "bench.net_reconcile",
                "--inside",
                "--networks",
                str(args.networks),
            ],
            check=True,
        )
    finally:
        subprocess.run(["ip", "netns", "del", NS], check=False)


if __name__ == "__main__":
    main()
