"""QemuDriver: qemu processes in sessions of their own so VMs outlive the agent, found again by
their command line (`-uuid U` and a pidfile inside this host's run dir) and their user
(`qemu_user`, never root: user.py), driven over QMP."""

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from common.imagestore import FileSource
from ucloud_vm.driver import Hypervisor, HypervisorError, PowerState, VMSpec
from ucloud_vm.drivers.qemu import accel as accelerators
from ucloud_vm.drivers.qemu import argv as qemu_argv
from ucloud_vm.drivers.qemu import logcap, qmp, tap
from ucloud_vm.drivers.qemu.user import QemuUser

log = logging.getLogger(__name__)

SOCKET_PATH_MAX = 107  # sun_path is 108 bytes with the terminating NUL


def _alive(pid: int) -> bool:
    """Running and not a zombie (a daemonized qemu lingers as a zombie for a moment)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


def _owned_by(proc: str, uid: int) -> bool:
    """Every user id of the process (real, effective, saved, filesystem) is `uid`. Not the owner
    of /proc/<pid>: a process that makes itself non-dumpable shows that as root."""
    with open(f"{proc}/status") as status:
        for line in status:
            if line.startswith("Uid:"):
                return all(int(field) == uid for field in line.split()[1:])
    return False


class QemuDriver(Hypervisor):
    def __init__(
        self,
        run_dir: str,
        user: str,
        accel: str = "auto",
        serial_log_max: int = 2 * 1024**2,
    ) -> None:
        self.vm_root = Path(run_dir).absolute() / "vm"
        longest = self.vm_root / ("0" * 36) / "serial.sock"
        if len(str(longest)) > SOCKET_PATH_MAX:
            raise ValueError(f"run_dir {run_dir} is too long for unix sockets ({longest})")
        self.user = QemuUser.named(user)
        self.vm_root.mkdir(parents=True, exist_ok=True)
        if not self.user.can_enter(self.vm_root):
            raise ValueError(
                f"qemu_user {user} cannot enter {self.vm_root}: a directory above is not"
                " searchable by it"
            )
        self.accel = accelerators.choose(accel, self.user)
        self.serial_log_max = serial_log_max
        self._children: dict[str, subprocess.Popen] = {}
        # One QMP connection per VM, kept open (connecting costs 3x a query-status) and shared
        # by all threads; the lock keeps them from opening two (qemu would serve only one).
        self._monitors: dict[str, qmp.Monitor] = {}
        self._connecting: defaultdict[str, threading.RLock] = defaultdict(threading.RLock)
        log.info("qemu driver: accelerator %s, run dir %s", self.accel, self.vm_root)

    @classmethod
    def from_config(cls, config: Any) -> "QemuDriver":
        return cls(
            config.run_dir,
            config.qemu_user,
            accel=config.accel,
            serial_log_max=config.serial_log_max,
        )

    def run_dir(self, uuid: str) -> Path:
        return self.vm_root / uuid

    def _monitor(self, uuid: str) -> qmp.Monitor:
        """The VM's QMP monitor, connected now if it is not (QMPError if that fails in 2 s)."""
        with self._connecting[uuid]:
            self._close_monitor(uuid)
            if uuid not in self._monitors:
                path = str(self.run_dir(uuid) / "qmp.sock")
                self._monitors[uuid] = qmp.Monitor(path, connect_timeout=2.0)
            return self._monitors[uuid]

    def _close_monitor(self, uuid: str) -> None:
        """Forget the VM's monitor if qemu closed it (quit or died)."""
        with self._connecting[uuid]:
            if uuid in self._monitors and not self._monitors[uuid].connected:
                self._monitors.pop(uuid).close()

    # -- processes -----------------------------------------------------------------------------

    def processes(self) -> dict[str, int]:
        """uuid -> pid of every live qemu of this host (by /proc, not by pidfiles: a qemu started
        by an agent killed before it wrote anything is still found). Only processes of the uid
        qemu runs as (`qemu_user`'s): anyone can give a process a qemu-like command line, and
        such a process must never be adopted, or killed; nor can a qemu running as root (or
        as anyone else) be one of ours."""
        found = {}
        prefix = str(self.vm_root) + "/"
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                if not _owned_by(entry.path, self.user.uid):
                    continue
                args = Path(entry.path, "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if not args or not args[0].endswith(qemu_argv.QEMU.encode()):
                continue
            text = [a.decode(errors="replace") for a in args]
            try:
                uuid = text[text.index("-uuid") + 1]
                pidfile = text[text.index("-pidfile") + 1]
            except (ValueError, IndexError):
                continue
            if pidfile == f"{prefix}{uuid}/qemu.pid" and _alive(int(entry.name)):
                found[uuid] = int(entry.name)
        return found

    def observe(self) -> dict[str, PowerState]:
        self.reap()
        states = {}
        for uuid in list(self._monitors):
            self._close_monitor(uuid)
        for uuid in self.processes():
            logcap.cap(self.run_dir(uuid) / "serial.log", self.serial_log_max)
            try:
                shut = self._monitor(uuid).status(timeout=2.0) == "shutdown"
                states[uuid] = PowerState.SHUTDOWN if shut else PowerState.RUNNING
            except HypervisorError:
                # The process is there: never mistake a slow QMP for a dead VM.
                states[uuid] = PowerState.RUNNING
        return states

    # -- operations ------------------------------------------------------------------------

    def start(self, spec: VMSpec) -> None:
        if spec.uuid in self.processes():
            return
        paths = qemu_argv.Paths.of(spec)
        try:
            self.user.own_dir(paths.run)
            for stale in (paths.qmp, paths.vnc, paths.serial, paths.pidfile):
                stale.unlink(missing_ok=True)
            # The VM's own disks (overlay, extra disks, config drive) become qemu's user's;
            # what is under them (the images) is shared, read-only and stays the store's.
            # RBD disks are no files here: qemu reaches them with the Ceph client's key.
            for disk in spec.disks:
                if isinstance(disk.source, FileSource):
                    self.user.give(Path(disk.source.path))
            log_fd = self.user.open_own(paths.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        except OSError as error:
            raise HypervisorError(
                f"cannot give the VM's files to {self.user.name}: {error}"
            ) from None
        # A session of its own: no signal meant for the agent reaches the VM, and the VM keeps
        # running when the agent exits or is killed.
        with os.fdopen(log_fd, "ab") as log_file, tap.opened(n["tap"] for n in spec.nics) as taps:
            process = subprocess.Popen(
                self.user.command(qemu_argv.build(spec, self.accel, taps)),
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=log_file,
                start_new_session=True,
                pass_fds=list(taps.values()),
                umask=self.user.UMASK,
            )
        self._reap_child(spec.uuid)
        self._children[spec.uuid] = process
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise HypervisorError(f"qemu failed: {self._last_log_line(paths.log)}")
            try:
                self._monitor(spec.uuid).status(timeout=2.0)
                return
            except HypervisorError:
                time.sleep(0.01)
        self.kill(spec.uuid)
        raise HypervisorError("qemu did not answer on its QMP socket within 60 s")

    @staticmethod
    def _last_log_line(path: Path) -> str:
        lines = path.read_text(errors="replace").strip().splitlines() if path.exists() else []
        return lines[-1] if lines else "no message"

    def reap(self) -> None:
        """Collect exited children (VMs this agent started), so none lingers as a zombie.
        VMs adopted from an earlier agent are not our children: init reaps those."""
        for uuid, process in list(self._children.items()):
            if process.poll() is not None:
                del self._children[uuid]

    def _reap_child(self, uuid: str) -> None:
        process = self._children.pop(uuid, None)
        if process is not None:
            process.wait()

    def power_off(self, uuid: str, timeout: float) -> None:
        with contextlib.suppress(HypervisorError):  # no QMP (or qemu died): kill() it is
            monitor = self._monitor(uuid)
            monitor.events()  # only a SHUTDOWN from now on counts
            if monitor.status() != "shutdown":
                monitor.system_powerdown()
                monitor.wait_event("SHUTDOWN", timeout)
        self.kill(uuid)

    def kill(self, uuid: str) -> None:
        pid = self.processes().get(uuid)
        if pid is None:
            return
        with contextlib.suppress(HypervisorError):
            # `quit` lets qemu flush and close its disks cleanly.
            self._monitor(uuid).quit(timeout=2.0)
        deadline = time.monotonic() + 5
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            while _alive(pid):
                time.sleep(0.02)
        self._close_monitor(uuid)
        self._reap_child(uuid)

    def fence(self) -> list[str]:
        processes = self.processes()
        for pid in processes.values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for uuid, pid in processes.items():
            while _alive(pid):
                time.sleep(0.005)
            self._reap_child(uuid)
        return sorted(processes)

    def nics(self, uuid: str) -> set[str] | None:
        try:
            names = self._monitor(uuid).peripherals()
        except HypervisorError:
            return None
        return {
            ":".join(n[4 + i : 6 + i] for i in range(0, 12, 2))
            for n in names
            if n.startswith("nic-") and len(n) == 16
        }

    def attach_nic(self, uuid: str, nic: dict[str, str]) -> None:
        netdev, device = qemu_argv.nic_options(nic, nic["tap"])  # the descriptor's QMP name
        monitor = self._monitor(uuid)
        # Left over from a failed attempt: a backend, or a descriptor sent but not yet taken
        # (either holds the tap, and a tap takes one opener: opening it again would fail).
        with contextlib.suppress(HypervisorError):
            monitor.netdev_del(netdev["id"])
        with contextlib.suppress(HypervisorError):
            monitor.closefd(netdev["fd"])
        with tap.opened([nic["tap"]]) as taps:
            monitor.getfd(netdev["fd"], taps[nic["tap"]])
        monitor.netdev_add(**netdev)
        try:
            monitor.device_add(**device)
        except HypervisorError:
            with contextlib.suppress(HypervisorError):
                monitor.netdev_del(netdev["id"])
            raise

    def detach_nic(self, uuid: str, mac: str, timeout: float = 20.0) -> None:
        key = mac.replace(":", "")
        deadline = time.monotonic() + timeout
        with contextlib.suppress(HypervisorError):  # already asked before
            monitor = self._monitor(uuid)
            monitor.events()  # only a DEVICE_DELETED from now on counts
            monitor.device_del(f"nic-{key}")
        # The guest is asked to release the slot (ACPI hot-plug on q35 since qemu 6.1; native
        # PCIe makes Linux wait 5 s for a cancel); only then is the device gone (DEVICE_DELETED).
        while (present := self.nics(uuid)) is None or mac in present:
            if time.monotonic() > deadline:
                raise HypervisorError(f"the guest did not release NIC {mac} within {timeout} s")
            try:
                self._monitor(uuid).wait_event("DEVICE_DELETED", 1.0, device=f"nic-{key}")
            except HypervisorError:
                time.sleep(0.2)
        with contextlib.suppress(HypervisorError):
            self._monitor(uuid).netdev_del(f"net-{key}")

    def reboot(self, uuid: str) -> None:
        self._monitor(uuid).system_reset()

    def console(self, uuid: str) -> dict[str, str]:
        run = self.run_dir(uuid)
        return {
            "vnc": str(run / "vnc.sock"),
            "serial": str(run / "serial.sock"),
            "serial_log": str(run / "serial.log"),
        }

    def forget(self, uuid: str) -> None:
        """Remove the run dir of a VM that is gone for good."""
        self._connecting.pop(uuid, None)
        shutil.rmtree(self.run_dir(uuid), ignore_errors=True)

    def port_ready(self, tap: str) -> bool:
        return Path("/sys/class/net", tap).exists()
