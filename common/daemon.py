"""What every daemon does at start-up: config, logging, metrics, a clean exit on SIGTERM."""

import signal
import threading
from collections.abc import Callable
from typing import Any, Protocol

from common import config as configuration
from common import log as logsetup
from common import metrics


def start(daemon: str, config_path: str | None, flags: dict[str, Any]) -> configuration.Config:
    config = configuration.load_from_flags(config_path, flags)
    logsetup.setup(config.log_level, daemon)
    metrics.serve(daemon, config.metrics_port)
    return config


def stop_on_signals(stop: threading.Event, also: Callable[[], None] | None = None) -> None:
    """SIGTERM and SIGINT set `stop` (and call `also`): the daemon's loops end cleanly."""

    def handler(signum: int, frame: Any) -> None:
        stop.set()
        if also is not None:
            also()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


class Agent(Protocol):
    stop: threading.Event

    def run(self) -> None: ...


class Closable(Protocol):
    def close(self) -> None: ...


def serve(agent: Agent, *used: Closable, wake: threading.Event | None = None) -> None:
    """Run the agent until SIGTERM or SIGINT (which set its `stop`, and `wake` so its loop
    notices at once), then close what it used (the store, drivers)."""
    stop_on_signals(agent.stop, wake.set if wake is not None else None)
    agent.run()
    for resource in used:
        resource.close()
