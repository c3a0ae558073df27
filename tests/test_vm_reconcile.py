"""reconcile.plan: every (desired, status, observed) combination that matters (pure logic)."""

import pytest

from ucloud_vm.driver import PowerState
from ucloud_vm.reconcile import Action, plan

RUN, OFF, GONE = PowerState.RUNNING, PowerState.SHUTDOWN, PowerState.GONE


def vm(desired: str = "running", status: str = "SCHEDULED", **extra: object) -> dict:
    return {"desired": desired, "status": status, **extra}


@pytest.mark.parametrize(
    ("record", "state", "action", "status"),
    [
        (None, GONE, Action.NOTHING, None),
        (None, RUN, Action.KILL_STRAY, None),
        (None, OFF, Action.KILL_STRAY, None),
        (vm("deleted", "RUNNING"), RUN, Action.DELETE, None),
        (vm("deleted", "STOPPED"), GONE, Action.DELETE, None),
        (vm("running", "SCHEDULED"), GONE, Action.START, "RUNNING"),
        (vm("running", "STOPPED"), GONE, Action.START, "RUNNING"),
        (vm("running", "SCHEDULED"), RUN, Action.REPORT, "RUNNING"),
        (vm("running", "RUNNING"), RUN, Action.NOTHING, None),
        (vm("running", "RUNNING"), OFF, Action.GUEST_OFF, "STOPPED"),
        (vm("running", "RUNNING", reboot_requested="t1"), RUN, Action.REBOOT, "RUNNING"),
        (vm("running", "RUNNING", reboot_requested="t1", rebooted="t1"), RUN, Action.NOTHING, None),
        (vm("stopped", "RUNNING"), RUN, Action.POWER_OFF, "STOPPED"),
        (vm("stopped", "RUNNING"), OFF, Action.END, "STOPPED"),
        (vm("stopped", "RUNNING"), GONE, Action.REPORT, "STOPPED"),
        (vm("stopped", "STOPPED"), GONE, Action.NOTHING, None),
        (vm("stopped", "ERROR"), GONE, Action.REPORT, "STOPPED"),
        # an ERROR waits for the user, unless they asked to start again
        (vm("running", "ERROR"), GONE, Action.NOTHING, None),
        (vm("running", "ERROR", retries=1, retries_seen=1), GONE, Action.NOTHING, None),
        (vm("running", "ERROR", retries=2, retries_seen=1), GONE, Action.START, "RUNNING"),
    ],
)
def test_plan(record, state, action, status) -> None:
    step = plan(record, state)
    assert step.action is action
    assert step.status == status


def test_crash_restart_and_give_up() -> None:
    crashed = vm("running", "RUNNING")
    step = plan(crashed, GONE, may_restart=True)
    assert step.action is Action.START and "unexpectedly" in step.message
    step = plan(crashed, GONE, may_restart=False)
    assert step.action is Action.REPORT and step.status == "ERROR"
    assert "keeps exiting" in step.message


def test_nics_of_a_running_vm_follow_its_record() -> None:
    record = vm("running", "RUNNING", networks=[{"mac": "02:00:00:00:00:01"}])
    assert plan(record, RUN, nics={"02:00:00:00:00:01"}).action is Action.NOTHING
    assert plan(record, RUN, nics=set()).action is Action.SYNC_NICS
    assert (
        plan(record, RUN, nics={"02:00:00:00:00:01", "02:00:00:00:00:02"}).action
        is Action.SYNC_NICS
    )
    assert plan(record, RUN, nics=None).action is Action.NOTHING  # could not ask qemu
