"""An unmodified Debian 12 cloud image (guest/build-debian-image.sh: Debian's own cloud-init,
stock configuration) boots under ucloud, finds its keys, hostname and user data on the config
drive, and takes an ssh login from the tenant network with its owner's key, not with another
user's. Slow under TCG (minutes): one VM for the whole module."""

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import running_cloud
from tests.lab_helpers import Client
from tests.tenant_client import tenant_client
from ucloud_aio.cloud import AllInOne
from ucloud_aio.guest import ensure_debian_image

BOOT = 900  # create -> ssh login; ~3 min on an idle 2-core machine under TCG
MARKER = "/var/lib/ucloud-test-runcmd"
WHY = "cloud-init status --long; grep -E 'WARNING|ERROR|Traceback' /var/log/cloud-init.log"
USER_DATA = f"#cloud-config\nruncmd:\n  - [sh, -c, 'echo ran > {MARKER}']\n"


@pytest.fixture(scope="module")
def lab() -> Iterator[AllInOne]:
    with running_cloud(hosts=1) as cloud:
        yield cloud


def keypair(directory: Path, name: str) -> tuple[Path, str]:
    """A fresh ed25519 key: (private key file, public key line)."""
    path = directory / name
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"{name}@test", "-f", str(path)],
        check=True,
    )
    return path, Path(f"{path}.pub").read_text().strip()


def ssh(ns: str, key: Path, address: str, command: str) -> subprocess.CompletedProcess:
    """Real OpenSSH from the tenant network, with this key only (no agent, no config)."""
    return subprocess.run(
        [
            "ip", "netns", "exec", ns, "ssh", "-F", "/dev/null", "-i", str(key),
            "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none", "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "ConnectTimeout=60", "-o", "LogLevel=ERROR", f"debian@{address}", command,
        ],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def wait_for_login(ns: str, key: Path, address: str, serial_log: Path, deadline: float) -> None:
    """Until ssh with `key` runs a command (sshd is up and cloud-init installed the key)."""
    while True:
        done = ssh(ns, key, address, "true")
        if done.returncode == 0:
            return
        if time.monotonic() > deadline:
            tail = serial_log.read_text(errors="replace")[-3000:]
            raise AssertionError(f"no ssh login: {done.stderr}\n--- serial log:\n{tail}")
        time.sleep(5)


@pytest.mark.timeout(BOOT + 300)
def test_debian_cloud_image_login_with_the_owners_key(lab: AllInOne, tmp_path: Path) -> None:
    admin = Client(lab)
    source = str(ensure_debian_image())
    image = admin.call("POST", "/v1/image", {"name": "debian-12", "file": source}, 201)
    alice, bob = admin.new_user("alice"), admin.new_user("bob")
    alice_key, alice_pub = keypair(tmp_path, "alice")
    bob_key, bob_pub = keypair(tmp_path, "bob")
    alice.call("POST", "/v1/user/ssh-key", {"name": "laptop", "key": alice_pub}, 201)
    bob.call("POST", "/v1/user/ssh-key", {"name": "laptop", "key": bob_pub}, 201)
    alice.call("POST", "/v1/network", {"name": "net"}, 201)

    started = time.monotonic()
    vm = alice.create(
        "deb1", image="debian-12", cpu=2, ram="512MiB", os_ssd=f"{image['size']}",
        networks=["net"], user_data=USER_DATA,
    )  # fmt: skip
    vm = alice.wait(vm["uuid"], status="RUNNING", timeout=120)
    serial_log = lab.run_dir(vm["host"]) / "vm" / vm["uuid"] / "serial.log"
    address = vm["networks"][0]["ipv6"]
    with tenant_client(lab, vm["host"], vm["networks"][0]) as (ns, _):
        wait_for_login(ns, alice_key, address, serial_log, started + BOOT)
        login = time.monotonic() - started
        # cloud-init may still be in its final stage (runcmd) when sshd takes logins
        status = ssh(ns, alice_key, address, "cloud-init status --wait")
        why = ssh(ns, alice_key, address, WHY).stdout
        assert status.returncode == 0 and "status: done" in status.stdout, f"{status}\n{why}"
        assert ssh(ns, alice_key, address, "hostname").stdout.strip() == "deb1"
        assert ssh(ns, alice_key, address, f"cat {MARKER}").stdout.strip() == "ran"
        refused = ssh(ns, bob_key, address, "true")
        assert refused.returncode == 255 and "Permission denied" in refused.stderr, refused
        analyze = ssh(ns, alice_key, address, "cloud-init analyze show; systemd-analyze")
    print(f"\ncreate -> ssh login: {login:.0f} s\n{analyze.stdout}")
