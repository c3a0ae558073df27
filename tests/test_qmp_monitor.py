"""qmp.Monitor against a real qemu without a guest (-machine none, or q35 paused with -S):
typed commands, events, and every failure raised as the hypervisor error type."""

import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from common.errors import UcloudError
from ucloud_vm.driver import HypervisorError
from ucloud_vm.drivers.qemu.argv import QEMU
from ucloud_vm.drivers.qemu.qmp import Monitor, QMPError


@contextmanager
def qemu(*args: str) -> Iterator[tuple[subprocess.Popen, str]]:
    """A qemu with its QMP socket in a temp dir; killed by its pid and the dir removed after."""
    run = tempfile.mkdtemp(prefix="ucloud-qmp-")
    path = os.path.join(run, "qmp.sock")
    argv = [QEMU, "-accel", "tcg", "-nodefaults", "-display", "none", "-no-shutdown", *args]
    process = subprocess.Popen(
        [*argv, "-qmp", f"unix:{path},server=on,wait=off"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
    )
    try:
        yield process, path
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
        process.wait()
        shutil.rmtree(run)


def connect(path: str, deadline: float = 10.0) -> Monitor:
    give_up = time.monotonic() + deadline
    while True:
        try:
            return Monitor(path, timeout=5.0, connect_timeout=2.0)
        except QMPError:
            if time.monotonic() > give_up:
                raise
            time.sleep(0.01)


@pytest.fixture
def bare() -> Iterator[tuple[subprocess.Popen, Monitor]]:
    """-machine none: a qemu with no devices at all, answering QMP."""
    with qemu("-machine", "none") as (process, path), connect(path) as monitor:
        yield process, monitor


def test_error_type_is_the_projects() -> None:
    assert issubclass(QMPError, HypervisorError)
    assert issubclass(HypervisorError, UcloudError)


def test_status_and_nic_hotplug_commands() -> None:
    port = "pcie-root-port,id=rp0,bus=pcie.0,chassis=1"
    with qemu("-machine", "q35", "-S", "-device", port) as (_, path), connect(path) as monitor:
        assert monitor.status() == "prelaunch"
        assert monitor.peripherals() == ["rp0"]
        monitor.netdev_add("net-525400000001", "user")
        monitor.device_add(
            "virtio-net-pci",
            "nic-525400000001",
            netdev="net-525400000001",
            mac="52:54:00:00:00:01",
            bus="rp0",
        )
        assert sorted(monitor.peripherals()) == ["nic-525400000001", "rp0"]
        monitor.execute("cont")
        assert monitor.status() == "running"


def test_events_reach_the_caller_even_before_the_return(bare) -> None:
    process, monitor = bare
    assert monitor.wait_event("POWERDOWN", 0.05) is None
    # Another thread waits while this one commands (as a migration would wait for MIGRATION).
    seen: list = []
    waiter = threading.Thread(target=lambda: seen.append(monitor.wait_event("POWERDOWN", 10)))
    waiter.start()
    monitor.system_powerdown()
    waiter.join()
    assert seen[0]["event"] == "POWERDOWN"
    # Kept until asked for: emitted before system_reset's return, taken afterwards.
    monitor.system_reset()
    reset = monitor.wait_event("RESET", 5, reason="host-qmp-system-reset")
    assert reset is not None and reset["data"]["guest"] is False
    assert monitor.wait_event("RESET", 0.05) is None  # taken once
    monitor.system_powerdown()
    assert [e["event"] for e in monitor.events()] == ["POWERDOWN"]
    assert monitor.events() == []
    # -no-shutdown keeps qemu alive after a guest poweroff, but quit ends it.
    monitor.quit()
    assert process.wait(10) == 0
    shutdown = monitor.wait_event("SHUTDOWN", 5)
    assert shutdown is not None and shutdown["data"]["reason"] == "host-qmp-quit"
    assert not monitor.connected


def test_an_error_from_qemu_is_a_hypervisor_error(bare) -> None:
    _, monitor = bare
    with pytest.raises(HypervisorError) as raised:
        monitor.device_del("nic-000000000000")
    assert isinstance(raised.value, QMPError)
    assert raised.value.error_class == "DeviceNotFound"
    assert "nic-000000000000" in raised.value.message
    with pytest.raises(HypervisorError):
        monitor.netdev_del("net-000000000000")
    assert monitor.status() == "running"  # the connection outlives a refused command


def test_a_closed_socket_is_a_hypervisor_error(bare) -> None:
    process, monitor = bare
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    with pytest.raises(HypervisorError, match="query-status"):
        monitor.status()
    assert not monitor.connected
    with pytest.raises(HypervisorError):
        monitor.wait_event("SHUTDOWN", 5)
    monitor.close()
    monitor.close()
    with pytest.raises(HypervisorError, match="connect"):
        Monitor(monitor.path, connect_timeout=1.0)


def test_a_silent_qemu_times_out_and_the_connection_survives(bare) -> None:
    process, monitor = bare
    os.kill(process.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        with pytest.raises(HypervisorError, match="timed out"):
            monitor.status(timeout=0.3)
        assert time.monotonic() - started < 2
    finally:
        os.kill(process.pid, signal.SIGCONT)
    assert monitor.status() == "running"


def test_threads_share_one_monitor(bare) -> None:
    _, monitor = bare
    answers: list[str] = []

    def ask() -> None:
        answers.extend(monitor.status() for _ in range(50))

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == ["running"] * 200
