"""QemuDriver: qemu processes in sessions of their own so VMs outlive the agent, found again by
their command line (`-uuid U` and a pidfile inside this host's run dir), driven over QMP."""

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from ucloud_vm.driver import Hypervisor, HypervisorError, PowerState, VMSpec
from ucloud_vm.drivers.qemu import accel as accelerators
from ucloud_vm.drivers.qemu import argv as qemu_argv
from ucloud_vm.drivers.qemu import qmp

log = logging.getLogger(__name__)

SOCKET_PATH_MAX = 107  # sun_path is 108 bytes with the terminating NUL


def _alive(pid: int) -> bool:
    """Running and not a zombie (a daemonized qemu lingers as a zombie for a moment)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


class QemuDriver(Hypervisor):
    def __init__(self, run_dir: str, accel: str = "auto") -> None:
        self.vm_root = Path(run_dir).absolute() / "vm"
        longest = self.vm_root / ("0" * 36) / "serial.sock"
        if len(str(longest)) > SOCKET_PATH_MAX:
            raise ValueError(f"run_dir {run_dir} is too long for unix sockets ({longest})")
        self.accel = accelerators.choose(accel)
        self._children: dict[str, subprocess.Popen] = {}
        log.info("qemu driver: accelerator %s, run dir %s", self.accel, self.vm_root)

    @classmethod
    def from_config(cls, config: Any) -> "QemuDriver":
        return cls(config.run_dir, accel=config.accel)

    def run_dir(self, uuid: str) -> Path:
        return self.vm_root / uuid

    # -- processes -----------------------------------------------------------------------------

    def processes(self) -> dict[str, int]:
        """uuid -> pid of every live qemu of this host (by /proc, not by pidfiles: a qemu started
        by an agent killed before it wrote anything is still found)."""
        found = {}
        prefix = str(self.vm_root) + "/"
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
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
        for uuid in self.processes():
            try:
                status = qmp.execute(
                    str(self.run_dir(uuid) / "qmp.sock"), "query-status", timeout=2.0
                )
                shut = status.get("status") == "shutdown"
                states[uuid] = PowerState.SHUTDOWN if shut else PowerState.RUNNING
            except (qmp.QMPError, ValueError):
                # The process is there: never mistake a slow QMP for a dead VM.
                states[uuid] = PowerState.RUNNING
        return states

    # -- operations ------------------------------------------------------------------------

    def start(self, spec: VMSpec) -> None:
        if spec.uuid in self.processes():
            return
        paths = qemu_argv.Paths.of(spec)
        paths.run.mkdir(parents=True, exist_ok=True)
        for stale in (paths.qmp, paths.vnc, paths.serial, paths.pidfile):
            stale.unlink(missing_ok=True)
        argv = qemu_argv.build(spec, self.accel)
        # A session of its own: no signal meant for the agent reaches the VM, and the VM keeps
        # running when the agent exits or is killed.
        with open(paths.log, "ab") as log_file:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=log_file,
                start_new_session=True,
            )
        self._reap_child(spec.uuid)
        self._children[spec.uuid] = process
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise HypervisorError(f"qemu failed: {self._last_log_line(paths.log)}")
            try:
                qmp.execute(str(paths.qmp), "query-status", timeout=2.0)
                return
            except (qmp.QMPError, ValueError):
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
        socket_path = str(self.run_dir(uuid) / "qmp.sock")
        with contextlib.suppress(qmp.QMPError, ValueError):
            qmp.execute(socket_path, "system_powerdown")
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and uuid in self.processes():
                status = qmp.execute(socket_path, "query-status", timeout=2.0)
                if status.get("status") == "shutdown":
                    break
                time.sleep(0.1)
        self.kill(uuid)

    def kill(self, uuid: str) -> None:
        pid = self.processes().get(uuid)
        if pid is None:
            return
        with contextlib.suppress(qmp.QMPError, ValueError):
            # `quit` lets qemu flush and close its disks cleanly.
            qmp.execute(str(self.run_dir(uuid) / "qmp.sock"), "quit", timeout=2.0)
        deadline = time.monotonic() + 5
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            while _alive(pid):
                time.sleep(0.02)
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

    def _qmp(self, uuid: str, command: str, arguments: dict | None = None) -> object:
        try:
            return qmp.execute(str(self.run_dir(uuid) / "qmp.sock"), command, arguments)
        except (qmp.QMPError, ValueError) as error:
            raise HypervisorError(str(error)) from None

    def nics(self, uuid: str) -> set[str] | None:
        try:
            children = self._qmp(uuid, "qom-list", {"path": "/machine/peripheral"})
        except HypervisorError:
            return None
        names = [child["name"] for child in children]  # type: ignore[union-attr]
        return {
            ":".join(n[4 + i : 6 + i] for i in range(0, 12, 2))
            for n in names
            if n.startswith("nic-") and len(n) == 16
        }

    def attach_nic(self, uuid: str, nic: dict[str, str]) -> None:
        netdev, device = qemu_argv.nic_options(nic)
        with contextlib.suppress(HypervisorError):  # left over from a failed attempt
            self._qmp(uuid, "netdev_del", {"id": netdev["id"]})
        self._qmp(uuid, "netdev_add", netdev)
        try:
            self._qmp(uuid, "device_add", device)
        except HypervisorError:
            with contextlib.suppress(HypervisorError):
                self._qmp(uuid, "netdev_del", {"id": netdev["id"]})
            raise

    def detach_nic(self, uuid: str, mac: str, timeout: float = 20.0) -> None:
        key = mac.replace(":", "")
        with contextlib.suppress(HypervisorError):  # already asked before
            self._qmp(uuid, "device_del", {"id": f"nic-{key}"})
        # The guest gets a PCIe attention button press and releases the slot (Linux waits 5 s
        # for a cancel first); only then is the device gone.
        deadline = time.monotonic() + timeout
        while mac in (self.nics(uuid) or {mac}):
            if time.monotonic() > deadline:
                raise HypervisorError(f"the guest did not release NIC {mac} within {timeout} s")
            time.sleep(0.2)
        with contextlib.suppress(HypervisorError):
            self._qmp(uuid, "netdev_del", {"id": f"net-{key}"})

    def reboot(self, uuid: str) -> None:
        try:
            qmp.execute(str(self.run_dir(uuid) / "qmp.sock"), "system_reset")
        except qmp.QMPError as error:
            raise HypervisorError(str(error)) from None

    def console(self, uuid: str) -> dict[str, str]:
        run = self.run_dir(uuid)
        return {
            "vnc": str(run / "vnc.sock"),
            "serial": str(run / "serial.sock"),
            "serial_log": str(run / "serial.log"),
        }

    def forget(self, uuid: str) -> None:
        """Remove the run dir of a VM that is gone for good."""
        shutil.rmtree(self.run_dir(uuid), ignore_errors=True)

    def port_ready(self, tap: str) -> bool:
        return Path("/sys/class/net", tap).exists()
