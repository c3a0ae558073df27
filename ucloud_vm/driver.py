"""The hypervisor interface. One method per operation, each with its contract; the agent above it
never imports a platform module. Drivers: qemu (Linux) now, bhyve (FreeBSD) later."""

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from enum import Enum

from common.errors import UcloudError
from common.imagestore import Disk


class PowerState(Enum):
    RUNNING = "running"  # the guest runs (or is paused by us for a moment)
    SHUTDOWN = "shutdown"  # the guest powered itself off; the process waits to be told to quit
    GONE = "gone"  # no hypervisor process for this VM


@dataclass(frozen=True)
class VMSpec:
    """What a driver needs to start a VM (derived from the VM record and the host's config)."""

    uuid: str
    cpu: int
    ram: int  # bytes
    disks: list[Disk]  # from the image store, OS disk first
    run_dir: str  # <run_dir>/vm/<uuid>
    nics: list[dict[str, str]] = field(default_factory=list)  # {"mac", "tap", "slot"}


class HypervisorError(UcloudError):
    """The hypervisor refused or failed; the message goes into the VM's log."""


class Hypervisor(ABC):
    @abstractmethod
    def start(self, spec: VMSpec) -> None:
        """Start the VM detached from the agent (it must outlive it). Returns once the process
        runs. On failure raises HypervisorError and leaves no process behind."""

    @abstractmethod
    def observe(self) -> dict[str, PowerState]:
        """The power state of every VM this host's hypervisor runs, by uuid (GONE ones left out).
        Must find VMs started by an earlier agent too: this is how they are re-adopted."""

    @abstractmethod
    def power_off(self, uuid: str, timeout: float) -> None:
        """Ask the guest to power off (ACPI); after `timeout` seconds, or if it cannot be asked,
        end the process. Returns once the process is gone."""

    @abstractmethod
    def kill(self, uuid: str) -> None:
        """End the process now (no guest shutdown). Idempotent."""

    @abstractmethod
    def reboot(self, uuid: str) -> None:
        """Hard reset of the guest; the process keeps running."""

    @abstractmethod
    def console(self, uuid: str) -> dict[str, str]:
        """Where a user reaches the VM (e.g. {"vnc": socket path, "serial": socket path})."""

    @abstractmethod
    def forget(self, uuid: str) -> None:
        """Remove what the host keeps for a VM that is gone for good (sockets, logs)."""

    @abstractmethod
    def fence(self) -> list[str]:
        """Kill every VM process of this host at once (SIGKILL, no guest shutdown): the host is
        about to be declared dead. Returns the uuids killed."""

    @abstractmethod
    def nics(self, uuid: str) -> set[str] | None:
        """MACs of the running VM's NICs (None if it cannot be asked right now)."""

    @abstractmethod
    def attach_nic(self, uuid: str, nic: dict[str, str]) -> None:
        """Hot-plug a NIC ({"mac", "tap", "slot"}) into the running VM."""

    @abstractmethod
    def detach_nic(self, uuid: str, mac: str, timeout: float = 20.0) -> None:
        """Hot-unplug a NIC; returns once the guest released it (or raises HypervisorError)."""

    @abstractmethod
    def port_ready(self, tap: str) -> bool:
        """Whether the host side of a NIC (a tap made by ucloud-net) exists, so the VM can be
        started with it or it can be hot-plugged."""
