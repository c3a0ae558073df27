"""Polling with a deadline: the one helper for waiting on a condition that nothing signals
(a tap appearing, a process exiting, a socket answering)."""

import threading
import time
from collections.abc import Callable
from typing import Any


def poll(
    check: Callable[[], Any],
    timeout: float,
    interval: float = 0.02,
    stop: threading.Event | None = None,
) -> bool:
    """Call `check` until it is true (True), the timeout passes or `stop` is set (False)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline or (stop is not None and stop.is_set()):
            return False
        time.sleep(interval)
    return True


def wait_until(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> None:
    """Like `poll`, but a timeout is an error: TimeoutError naming `what`."""
    if not poll(check, timeout, interval):
        raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
