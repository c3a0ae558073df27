"""Prometheus metrics. Daemons serve them on 127.0.0.1:<metrics_port>/metrics; ucloud-api serves
them itself at /metrics, aggregated over its gunicorn workers (prometheus multiprocess mode)."""

import logging

from prometheus_client import start_http_server

log = logging.getLogger(__name__)

DEFAULT_PORTS = {
    "ucloud-scheduler": 9181,
    "ucloud-host": 9182,
    "ucloud-vm": 9183,
    "ucloud-net": 9184,
    "ucloud-ipam": 9185,
    "ucloud-meta": 9186,
}


def serve(daemon: str, port: int | None) -> None:
    """Start the /metrics listener (port None: the daemon's default; 0: none)."""
    port = DEFAULT_PORTS.get(daemon, 0) if port is None else port
    if not port:
        return
    try:
        start_http_server(port, addr="127.0.0.1")
    except OSError as error:
        # Metrics must never keep a daemon from doing its job.
        log.warning("metrics listener on 127.0.0.1:%d not started: %s", port, error)
