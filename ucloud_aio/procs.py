"""Small process helpers: free ports, waiting for readiness, stopping by PID."""

import contextlib
import os
import signal
import socket
import subprocess
from pathlib import Path

from common.poll import poll


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the caller binds it soon after)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def spawn(
    argv: list[str], log_path: str | Path | None = None, env: dict[str, str] | None = None
) -> subprocess.Popen:
    """Start a child in its own session (so a terminal's Ctrl-C reaches only us), with stdout and
    stderr appended to log_path (or discarded)."""
    if log_path is None:
        return subprocess.Popen(
            argv,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
    with open(log_path, "ab") as log:
        return subprocess.Popen(argv, stdout=log, stderr=log, env=env, start_new_session=True)


def stop_process(process: subprocess.Popen, timeout: float = 5.0) -> None:
    """SIGTERM, then SIGKILL after `timeout`; always reaps."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def kill_process(process: subprocess.Popen) -> None:
    """SIGKILL (a crash, not a shutdown) and reap."""
    if process.poll() is None:
        process.kill()
    process.wait()


def pid_alive(pid: int) -> bool:
    """True if pid runs and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            state = stat.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


def kill_pid(pid: int, sig: int = signal.SIGTERM, timeout: float = 5.0) -> None:
    """Signal a process we do not own as a Popen; escalate to SIGKILL after timeout."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    if not poll(lambda: not pid_alive(pid), timeout, interval=0.05):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def kill_group(pgid: int) -> None:
    """SIGKILL what is left of a process group (e.g. gunicorn workers whose master died)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _ancestors() -> set[int]:
    """This process and its parents (a `sudo` or `timeout` around us mentions our arguments)."""
    pids, pid = set(), os.getpid()
    while pid > 1 and pid not in pids:
        pids.add(pid)
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            break
    return pids


def pids_mentioning(text: str) -> list[int]:
    """Live processes whose command line contains `text` (e.g. a state dir), except this
    process and its ancestors."""
    needle = text.encode()
    found = []
    mine = _ancestors()
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and int(entry.name) not in mine:
            try:
                if needle in Path(entry.path, "cmdline").read_bytes() and pid_alive(
                    int(entry.name)
                ):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found
