"""What every daemon does at start-up: config, logging, metrics, a clean exit on SIGTERM."""

import signal
import threading
from collections.abc import Callable
from typing import Any

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
