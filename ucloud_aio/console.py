"""A VM's serial console, driven like a person at the keyboard: for tests and `ucloud-aio demo`.

The tiny guest runs a root shell on ttyS0. The tty echoes what is typed and ash sends ESC[6n
after each prompt, so a command's end is found by a marker the typed text does not contain:
`cmd; echo RC-$?-END-$((1000+N))` prints `RC-<status>-END-<1000+N>`.
"""

import re
import socket
import time


class ConsoleError(Exception):
    pass


class SerialShell:
    def __init__(self, path: str, timeout: float = 10.0) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.buffer = b""
        self.count = 0

    def __enter__(self) -> "SerialShell":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def read_until(self, pattern: bytes, timeout: float) -> re.Match[bytes]:
        """Read until `pattern` (a regex) matches; consume up to the end of the match."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            match = regex.search(self.buffer)
            if match:
                self.buffer = self.buffer[match.end() :]
                return match
            left = deadline - time.monotonic()
            if left <= 0:
                raise ConsoleError(
                    f"no {pattern!r} within {timeout:.0f} s; last output: {self.buffer[-300:]!r}"
                )
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                raise ConsoleError("the serial console closed")
            self.buffer += chunk

    def run(self, command: str, timeout: float = 20.0) -> tuple[int, str]:
        """Type a shell command; return its exit status and everything printed meanwhile."""
        self.count += 1
        end = 1000 + self.count
        self.sock.sendall(f"{command}; echo RC-$?-END-$((1000+{self.count}))\n".encode())
        match = self.read_until(rb"RC-(\d+)-END-" + str(end).encode(), timeout)
        return int(match.group(1)), match.string[: match.start()].decode(errors="replace")


def wait_for_marker(log_path: str, marker: str, timeout: float, count: int = 1) -> float:
    """Wait until `marker` appears `count` times in a serial log; returns the seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            with open(log_path, "rb") as log:
                if log.read().count(marker.encode()) >= count:
                    return time.monotonic() - started
        except FileNotFoundError:
            pass
        time.sleep(0.05)
    raise ConsoleError(
        f"{marker} did not appear {count} time(s) in {log_path} within {timeout:.0f} s"
    )
