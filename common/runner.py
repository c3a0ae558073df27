"""The reconcile runner every level-triggered loop uses (ucloud-vm, -net, -ipam, -meta and the
scheduler), modelled on controller-runtime's `Reconcile() (Result, error)`.

A watch event only wakes the loop; the loop re-reads the whole state from its mirrors, so no
event can be missed. The runner waits for the mirrors' first listing, then calls `reconcile()`,
which returns when it wants to run again (None: at the idle interval, or earlier when woken).
A failing pass is logged, counted by error type, and retried with exponential back-off, capped;
the first pass that succeeds resets it. Errors that retrying cannot fix are `TerminalError`s:
the daemon records them on the object they concern (a VM's log) instead of retrying them.
`Retries` gives the same back-off per object for work done outside the pass (the VM agent's
steps).
"""

import logging
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

from prometheus_client import Counter, Histogram

from common.errors import UcloudError
from common.store.mirror import Mirror

log = logging.getLogger(__name__)

PASSES = Histogram("ucloud_reconcile_seconds", "duration of a reconcile pass", ["loop"])
ERRORS = Counter("ucloud_reconcile_errors_total", "failed reconcile passes", ["loop", "error"])


class TerminalError(UcloudError):
    """Retrying cannot fix this (a missing image, a disk qemu refuses): record it, stop trying
    until the object changes."""


@dataclass(frozen=True)
class Backoff:
    """Delay after the n-th failure in a row: first, 2 * first, 4 * first ... up to cap."""

    first: float = 0.1
    cap: float = 10.0

    def delay(self, failures: int) -> float:
        return min(self.cap, self.first * 2 ** max(failures - 1, 0))


class Runner:
    def __init__(
        self,
        name: str,
        reconcile: Callable[[], float | None],
        mirrors: Sequence[Mirror],
        wake: threading.Event,
        stop: threading.Event,
        idle: float,
        until: Callable[[], bool] = lambda: False,
        backoff: Backoff = Backoff(),
    ) -> None:
        """`wake` is set by the mirrors on every change; the loop ends when `stop` is set or
        `until()` turns true (a scheduler that lost its leadership)."""
        self.name = name
        self.reconcile = reconcile
        self.mirrors = mirrors
        self.wake = wake
        self.stop = stop
        self.idle = idle
        self.until = until
        self.backoff = backoff
        self.failures = 0  # passes failed in a row

    def _ended(self) -> bool:
        return self.stop.is_set() or self.until()

    def wait_synced(self) -> bool:
        """True once every mirror has its first listing; False if the loop ended first."""
        for mirror in self.mirrors:
            while not mirror.wait_synced(0.5):
                if self._ended():
                    return False
        return not self._ended()

    def run(self) -> None:
        if not self.wait_synced():
            return
        log.info("%s ready", self.name)
        while not self._ended():
            self.wake.clear()
            self.wake.wait(self.run_once())

    def run_once(self) -> float:
        """One pass; returns how long to wait before the next one (unless woken)."""
        started = time.perf_counter()
        try:
            again = self.reconcile()
        except Exception as error:
            self.failures += 1
            ERRORS.labels(self.name, type(error).__name__).inc()
            delay = self.backoff.delay(self.failures)
            if isinstance(error, UcloudError | OSError):
                log.warning("%s: pass failed (%s); again in %.1f s", self.name, error, delay)
            else:
                log.exception("%s: pass failed unexpectedly; again in %.1f s", self.name, delay)
            return delay
        finally:
            PASSES.labels(self.name).observe(time.perf_counter() - started)
        self.failures = 0
        return self.idle if again is None else again


class Retries:
    """Back-off per object: after its work failed, the same work waits before it is tried
    again; different work for the object (a delete after a failed start) goes ahead at once."""

    def __init__(self, backoff: Backoff = Backoff(first=1.0, cap=30.0)) -> None:
        self.backoff = backoff
        self._lock = threading.Lock()
        self._failed: dict[str, tuple[Hashable, int, float]] = {}  # key -> work, count, not before

    def failed(self, key: str, work: Hashable) -> float:
        """Count a failure of `work` on `key`; returns the delay before it is tried again."""
        with self._lock:
            last, count, _ = self._failed.get(key, (work, 0, 0.0))
            count = count + 1 if last == work else 1
            delay = self.backoff.delay(count)
            self._failed[key] = (work, count, time.monotonic() + delay)
            return delay

    def succeeded(self, key: str) -> None:
        with self._lock:
            self._failed.pop(key, None)

    def ready(self, key: str, work: Hashable) -> bool:
        with self._lock:
            last, _, not_before = self._failed.get(key, (None, 0, 0.0))
            return last != work or time.monotonic() >= not_before
