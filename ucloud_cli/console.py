"""`vm console`: attach the terminal to a VM's serial console (a unix socket on its host).

Interactive terminals are put in raw mode and Ctrl-] leaves; with a pipe on stdin, what is read is
sent and the command ends a moment after stdin closes (handy for scripts)."""

import contextlib
import os
import select
import socket
import sys
import termios
import time
import tty

ESCAPE = b"\x1d"  # Ctrl-]
DRAIN_SECONDS = 1.0  # after stdin closes, keep printing the guest's answer this long


def attach(path: str) -> None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    stdin = sys.stdin.fileno()
    interactive = os.isatty(stdin)
    saved = termios.tcgetattr(stdin) if interactive else None
    try:
        if interactive:
            tty.setraw(stdin)
        _pump(sock, stdin, interactive)
    finally:
        if saved is not None:
            termios.tcsetattr(stdin, termios.TCSADRAIN, saved)
        sock.close()


def _pump(sock: socket.socket, stdin: int, interactive: bool) -> None:
    stdout = sys.stdout.fileno()
    inputs: list[socket.socket | int] = [sock, stdin]
    drain_until = None
    while True:
        timeout = None if drain_until is None else max(drain_until - time.monotonic(), 0)
        ready, _, _ = select.select(inputs, [], [], timeout)
        if not ready:
            return
        if sock in ready:
            data = sock.recv(65536)
            if not data:
                return
            os.write(stdout, data)
        if stdin in ready:
            data = os.read(stdin, 4096)
            if interactive and ESCAPE in data:
                return
            if not data:
                inputs.remove(stdin)
                drain_until = time.monotonic() + DRAIN_SECONDS
                continue
            with contextlib.suppress(BrokenPipeError):
                sock.sendall(data)
