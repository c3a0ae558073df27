"""A minimal synchronous QMP client: one command per connection, events skipped.

QMP over a unix socket is line-delimited JSON: a greeting, then `qmp_capabilities`, then
commands. Events (e.g. POWERDOWN) may arrive before a command's `return`, so lines with "event"
are skipped.
"""

import json
import socket
from typing import Any


class QMPError(Exception):
    pass


def execute(
    path: str, command: str, arguments: dict[str, Any] | None = None, timeout: float = 5.0
) -> Any:
    """Run one QMP command on the socket at `path`; returns its `return` value."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(path)
            lines = sock.makefile("rb")
            _read(lines)  # greeting
            _send(sock, {"execute": "qmp_capabilities"})
            _reply(lines)
            message: dict[str, Any] = {"execute": command}
            if arguments:
                message["arguments"] = arguments
            _send(sock, message)
            return _reply(lines)
    except OSError as error:
        raise QMPError(f"QMP {command} on {path}: {error}") from None


def _send(sock: socket.socket, message: dict[str, Any]) -> None:
    sock.sendall(json.dumps(message).encode() + b"\n")


def _read(lines: Any) -> dict[str, Any]:
    line = lines.readline()
    if not line:
        raise QMPError("QMP connection closed")
    return json.loads(line)


def _reply(lines: Any) -> Any:
    while True:
        message = _read(lines)
        if "event" in message:
            continue
        if "error" in message:
            raise QMPError(message["error"].get("desc", "QMP error"))
        return message.get("return")
