"""ucloud-vm with real qemu guests (TCG where KVM does not work) in an all-in-one cloud."""

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import running_cloud
from tests.daemons import eventually
from tests.lab_helpers import Client
from ucloud_aio.cloud import QEMU_USER, AllInOne, venv_script
from ucloud_aio.console import SerialShell, wait_for_marker
from ucloud_aio.demo import run_demo
from ucloud_aio.guest import READY_MARKER
from ucloud_aio.procs import pid_alive, pids_mentioning
from ucloud_vm.drivers.qemu.user import QemuUser

BOOT_TIMEOUT = 90  # TCG on 2 busy cores


@pytest.fixture(scope="module")
def cloud() -> Iterator[AllInOne]:
    with running_cloud(settings={"vm_stop_timeout": "10"}) as aio:
        yield aio


@pytest.fixture(scope="module")
def client(cloud: AllInOne) -> Client:
    return Client(cloud)


def qemu_pids(uuid: str) -> list[int]:
    return [
        pid
        for pid in pids_mentioning(uuid)
        if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"qemu-system")
    ]


def run_dir(cloud: AllInOne, uuid: str) -> Path:
    return cloud.run_dir(cloud.host_names[0]) / "vm" / uuid


def kill_agent(cloud: AllInOne) -> None:
    pid = int((cloud.state_dir / "pids" / "host1.ucloud-vm.pid").read_text())
    os.kill(pid, signal.SIGKILL)
    eventually(lambda: not pid_alive(pid))


def assert_unprivileged(cloud: AllInOne, uuid: str, pid: int) -> None:
    """qemu runs as qemu_user (every uid of the process), and the VM's files are that user's
    alone: the run dir 0700, each file in it and each of the VM's disks 0600."""
    user = QemuUser.named(QEMU_USER)
    status = Path(f"/proc/{pid}/status").read_text()
    [uids] = [line.split()[1:] for line in status.splitlines() if line.startswith("Uid:")]
    assert uids == [str(user.uid)] * 4 and user.uid != 0
    run = run_dir(cloud, uuid)
    disks = cloud.state_dir / "images" / "disks" / uuid
    files = [p for p in run.iterdir() if p.is_file() and not p.is_symlink()]
    assert {"config-drive.iso", "serial.log", "qemu.log", "qemu.pid"} <= {p.name for p in files}
    for path, mode in [(run, 0o700), *((f, 0o600) for f in [*files, *disks.iterdir()])]:
        info = path.stat()
        assert (info.st_uid, info.st_gid, info.st_mode & 0o777) == (user.uid, user.gid, mode), path


def test_boot_console_reboot_stop_start_delete(cloud: AllInOne, client: Client) -> None:
    vm = client.create("life", hdd=["16MiB"])
    uuid = vm["uuid"]
    running = client.wait(uuid, status="RUNNING")
    assert running["host"] == cloud.host_names[0]
    console = running["console"]
    assert console["vnc"] == str(run_dir(cloud, uuid) / "vnc.sock")
    log = run_dir(cloud, uuid) / "serial.log"
    wait_for_marker(str(log), READY_MARKER, BOOT_TIMEOUT)
    # a root shell on the serial console; both disks are there, and the config drive (an
    # ISO 9660 image: "CD001" at byte 32769)
    with SerialShell(console["serial"]) as shell:
        status, output = shell.run("echo hello-$((40+2)); ls /sys/block")
        assert status == 0 and "hello-42" in output and "vdb" in output and "vdc" in output
        status, output = shell.run("dd if=/dev/vdc bs=1 skip=32769 count=5 2>/dev/null")
        assert "CD001" in output
    drive = run_dir(cloud, uuid) / "config-drive.iso"
    label = subprocess.run(["blkid", "-o", "value", "-s", "LABEL", str(drive)], capture_output=True)
    assert label.stdout.strip() == b"config-2"
    [pid] = qemu_pids(uuid)
    assert_unprivileged(cloud, uuid, pid)
    # reboot: the same process boots the guest again
    client.call("POST", f"/v1/vm/{uuid}/reboot", expect=202)
    wait_for_marker(str(log), READY_MARKER, BOOT_TIMEOUT, count=2)
    assert qemu_pids(uuid) == [pid]
    assert "rebooted" in client.vm(uuid)["log"][-1]
    # stop: ACPI power-off, the process is gone
    client.call("POST", f"/v1/vm/{uuid}/stop", expect=202)
    client.wait(uuid, status="STOPPED")
    assert qemu_pids(uuid) == []
    # start: boots again from the same disk
    client.call("POST", f"/v1/vm/{uuid}/start", expect=202)
    client.wait(uuid, status="RUNNING")
    wait_for_marker(str(log), READY_MARKER, BOOT_TIMEOUT, count=3)
    # delete: process, disks, run dir and record are gone
    disks = cloud.state_dir / "images" / "disks" / uuid
    assert (disks / "os.qcow2").exists() and (disks / "hdd0.qcow2").exists()
    client.call("DELETE", f"/v1/vm/{uuid}", expect=202)
    eventually(lambda: client.vm(uuid) is None, timeout=30)
    assert qemu_pids(uuid) == [] and not disks.exists() and not run_dir(cloud, uuid).exists()


def test_two_vms_on_one_host(cloud: AllInOne, client: Client) -> None:
    uuids = [client.create(f"pair{i}")["uuid"] for i in range(2)]
    for uuid in uuids:
        client.wait(uuid, status="RUNNING")
        assert len(qemu_pids(uuid)) == 1
    for uuid in uuids:
        client.call("DELETE", f"/v1/vm/{uuid}", expect=202)
    for uuid in uuids:
        eventually(lambda u=uuid: client.vm(u) is None, timeout=30)
        assert qemu_pids(uuid) == []


def test_agent_kill9_mid_boot_and_while_running(cloud: AllInOne, client: Client) -> None:
    uuid = client.create("survivor")["uuid"]
    eventually(lambda: qemu_pids(uuid), timeout=30)
    kill_agent(cloud)  # the guest is still booting
    [pid] = qemu_pids(uuid)
    cloud.up()
    wait_for_marker(str(run_dir(cloud, uuid) / "serial.log"), READY_MARKER, BOOT_TIMEOUT)
    assert client.wait(uuid, status="RUNNING")
    assert qemu_pids(uuid) == [pid]  # adopted, not started again
    kill_agent(cloud)  # and once more while it runs
    cloud.up()
    eventually(lambda: client.vm(uuid)["status"] == "RUNNING")
    assert qemu_pids(uuid) == [pid]
    # the adopted VM is still fully managed
    client.call("DELETE", f"/v1/vm/{uuid}", expect=202)
    eventually(lambda: client.vm(uuid) is None, timeout=30)
    assert qemu_pids(uuid) == []


def test_qemu_killed_behind_the_agents_back_is_restarted(cloud: AllInOne, client) -> None:
    uuid = client.create("phoenix")["uuid"]
    client.wait(uuid, status="RUNNING")
    [pid] = qemu_pids(uuid)
    os.kill(pid, signal.SIGKILL)
    eventually(lambda: qemu_pids(uuid) and qemu_pids(uuid) != [pid], timeout=15)
    assert len(qemu_pids(uuid)) == 1
    eventually(lambda: any("exited unexpectedly" in line for line in client.vm(uuid)["log"]))
    assert client.vm(uuid)["status"] == "RUNNING"
    client.call("DELETE", f"/v1/vm/{uuid}", expect=202)
    eventually(lambda: client.vm(uuid) is None, timeout=30)


def test_guest_poweroff_means_stopped(cloud: AllInOne, client: Client) -> None:
    uuid = client.create("quitter")["uuid"]
    vm = client.wait(uuid, status="RUNNING")
    wait_for_marker(str(run_dir(cloud, uuid) / "serial.log"), READY_MARKER, BOOT_TIMEOUT)
    with SerialShell(vm["console"]["serial"]) as shell:
        assert shell.run("true")[0] == 0  # the shell is up
        shell.sock.sendall(b"poweroff -f\n")
        shell.read_until(b"Power down", timeout=10)
    vm = client.wait(uuid, status="STOPPED", timeout=15)
    assert vm["desired"] == "stopped" and "powered itself off" in vm["log"][-1]
    assert qemu_pids(uuid) == []
    client.call("DELETE", f"/v1/vm/{uuid}", expect=202)
    eventually(lambda: client.vm(uuid) is None, timeout=30)


def test_vanished_image_gives_error_with_reason(cloud: AllInOne, client: Client) -> None:
    source = cloud.state_dir / "doomed.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(source), "32M"], check=True)
    image = client.call("POST", "/v1/image", {"name": "doomed", "file": str(source)}, 201)
    Path(image["file"]).unlink()
    uuid = client.create("orphan", image="doomed")["uuid"]
    vm = client.wait(uuid, status="ERROR")
    assert "image file" in vm["log"][-1] and "is missing" in vm["log"][-1]
    assert qemu_pids(uuid) == []
    # starting again retries, and fails the same clear way
    client.call("POST", f"/v1/vm/{uuid}/start", expect=202)
    eventually(
        lambda: (
            "start requested again" in client.vm(uuid)["log"][-2]
            and "is missing" in client.vm(uuid)["log"][-1]
        )
    )
    assert client.vm(uuid)["status"] == "ERROR"
    client.call("DELETE", f"/v1/vm/{uuid}", expect=202)
    eventually(lambda: client.vm(uuid) is None, timeout=30)
    assert not (cloud.state_dir / "images" / "disks" / uuid).exists()


def test_demo_boots_a_vm_for_a_new_user(cloud: AllInOne, client: Client) -> None:
    vm = run_demo(cloud)
    assert vm["owner"] == "demo" and vm["status"] == "RUNNING"
    assert READY_MARKER in Path(vm["console"]["serial_log"]).read_text()
    assert run_demo(cloud)["uuid"] == vm["uuid"]  # idempotent
    # the demo user reaches the console through the CLI
    env = {**os.environ, "UCLOUD_CONFIG": str(cloud.state_dir / "demo.conf")}
    result = subprocess.run(
        [venv_script("ucloud-cli"), "vm", "console", "demo"],
        env=env,
        input="echo console-$((40+2))\n",
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0 and "console-42" in result.stdout, result.stderr
    client.call("DELETE", f"/v1/vm/{vm['uuid']}", expect=202)
    eventually(lambda: client.vm(vm["uuid"]) is None, timeout=30)
