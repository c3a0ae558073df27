"""The reconcile runner (common/runner.py): back-off on failing passes, reset on success, the
error type counted, `until` ends the loop; per-object retries. Pure logic: no etcd needed (the
runner gets no mirrors to wait for)."""

import threading

import pytest
from prometheus_client import REGISTRY

from common.errors import Unavailable
from common.runner import Backoff, Retries, Runner


def errors_counted(loop: str, error: str) -> float:
    value = REGISTRY.get_sample_value(
        "ucloud_reconcile_errors_total", {"loop": loop, "error": error}
    )
    return value or 0.0


def test_backoff_doubles_up_to_the_cap() -> None:
    backoff = Backoff(first=0.1, cap=1.0)
    assert [backoff.delay(n) for n in (1, 2, 3, 4, 5, 6)] == pytest.approx(
        [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    )


def test_failures_back_off_and_success_resets() -> None:
    outcomes = [Unavailable("etcd away"), KeyError("bug"), None, 0.25]

    def reconcile() -> float | None:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    stop = threading.Event()
    runner = Runner("test-loop", reconcile, [], threading.Event(), stop, idle=2.0)
    before = errors_counted("test-loop", "Unavailable"), errors_counted("test-loop", "KeyError")
    assert runner.run_once() == pytest.approx(0.1)
    assert runner.run_once() == pytest.approx(0.2)  # any exception is caught, none kills it
    assert runner.run_once() == 2.0  # None: the idle interval
    assert runner.failures == 0
    assert runner.run_once() == 0.25  # the pass asked to come back sooner
    after = errors_counted("test-loop", "Unavailable"), errors_counted("test-loop", "KeyError")
    assert (after[0] - before[0], after[1] - before[1]) == (1, 1)


def test_until_ends_the_loop() -> None:
    passes = []
    leading = [True, True, False]
    wake = threading.Event()

    def reconcile() -> float:
        passes.append(1)
        wake.set()  # as a mirror would: the next pass follows at once
        return 10.0

    Runner(
        "leader", reconcile, [], wake, threading.Event(), 10.0, until=lambda: not leading.pop(0)
    ).run()
    assert len(passes) == 1


def test_retries_per_object_and_work() -> None:
    retries = Retries(Backoff(first=60.0, cap=60.0))
    assert retries.ready("vm1", "start")
    retries.failed("vm1", "start")
    assert not retries.ready("vm1", "start")
    assert retries.ready("vm1", "delete")  # other work is not held back
    assert retries.ready("vm2", "start")
    retries.succeeded("vm1")
    assert retries.ready("vm1", "start")
