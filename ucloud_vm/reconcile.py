"""What to do about one VM: a pure function of its record and the hypervisor's observation.
No I/O here (agent.py acts); table-tested in tests/test_vm_reconcile.py."""

from dataclasses import dataclass
from enum import Enum

from common import model
from common.records import VM
from ucloud_vm.driver import PowerState


class Action(Enum):
    NOTHING = "nothing"
    START = "start"  # make disks if missing, start the hypervisor process
    POWER_OFF = "power_off"  # ACPI power-off, then end the process
    END = "end"  # end a process whose guest already powered off
    GUEST_OFF = "guest_off"  # the guest powered itself off although it should run
    REBOOT = "reboot"
    DELETE = "delete"  # end the process, remove disks and run dir, remove the record
    KILL_STRAY = "kill_stray"  # a process for a VM that is not (any more) assigned here
    REPORT = "report"  # only the status needs updating
    HAND_OVER = "hand_over"  # migration: power off, then leave the VM to the scheduler
    SYNC_NICS = "sync_nics"  # hot-plug / unplug NICs of a running VM to match its record


@dataclass(frozen=True)
class Step:
    action: Action
    status: str | None = None  # status to write once the action is done
    message: str | None = None  # log line to write with it
    crashed: bool = False  # qemu exited although the VM should run (counts towards a crash loop)


NOTHING = Step(Action.NOTHING)


def plan(
    vm: VM | None,
    state: PowerState,
    may_restart: bool = True,
    nics: set[str] | None = None,
) -> Step:
    """The next step for one VM. `vm` is None when no record assigns it to this host;
    `may_restart` is False once qemu died unexpectedly too often (crash loop); `nics` are the
    MACs a running VM has (None: unknown)."""
    if vm is None:
        if state is PowerState.GONE:
            return NOTHING
        return Step(Action.KILL_STRAY, message="not assigned to this host: stopped")
    if vm["desired"] == model.DELETED:
        return Step(Action.DELETE)
    if vm.get("migrate"):
        return Step(Action.HAND_OVER, model.MIGRATING, "stopped for migration")
    if vm["desired"] == model.STOPPED:
        if state is PowerState.RUNNING:
            return Step(Action.POWER_OFF, model.STATUS_STOPPED, "stopped")
        if state is PowerState.SHUTDOWN:
            return Step(Action.END, model.STATUS_STOPPED, "stopped")
        if vm["status"] != model.STATUS_STOPPED:
            return Step(Action.REPORT, model.STATUS_STOPPED, "stopped")
        return NOTHING
    # desired running
    if state is PowerState.RUNNING:
        requested = vm.get("reboot_requested")
        if requested and requested != vm.get("rebooted"):
            return Step(Action.REBOOT, model.STATUS_RUNNING, "rebooted")
        if nics is not None and nics != {nic["mac"] for nic in vm.get("networks", [])}:
            return Step(Action.SYNC_NICS, model.STATUS_RUNNING)
        if vm["status"] != model.STATUS_RUNNING:
            return Step(Action.REPORT, model.STATUS_RUNNING, "running")
        return NOTHING
    if state is PowerState.SHUTDOWN:
        return Step(
            Action.GUEST_OFF,
            model.STATUS_STOPPED,
            "the guest powered itself off: desired state is now stopped",
        )
    # no process
    if vm["status"] == model.ERROR and vm.get("retries", 0) <= vm.get("retries_seen", 0):
        return NOTHING  # waits for the user to start it again
    if vm["status"] == model.STATUS_RUNNING:
        if not may_restart:
            return Step(
                Action.REPORT,
                model.ERROR,
                "qemu keeps exiting unexpectedly: not restarting (start it to retry)",
            )
        return Step(
            Action.START, model.STATUS_RUNNING, "qemu exited unexpectedly: restarted", crashed=True
        )
    return Step(Action.START, model.STATUS_RUNNING, "running")
