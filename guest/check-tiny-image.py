#!/usr/bin/env python3
"""Boot a tiny test image (from guest/build-tiny-image.sh) under qemu TCG and check it.

    guest/check-tiny-image.py IMAGE.qcow2

Boots a copy-on-write overlay of IMAGE (IMAGE itself is never written), waits for
the UCLOUD-GUEST-READY marker on the serial console, drives the root shell over
the serial socket, then powers the guest off with QMP system_powerdown.
Prints timings; exit status 0 when every check passed. Stdlib only.

The guest NIC uses `-netdev user,restrict=on`: isolated, no traffic leaves it.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

MARKER = "UCLOUD-GUEST-READY"
BOOT_TIMEOUT = 120.0  # TCG; a normal boot takes ~5 s
CMD_TIMEOUT = 20.0
POWEROFF_TIMEOUT = 5.0


class CheckFailed(Exception):
    pass


def log(msg):
    print(f"check-tiny-image: {msg}", flush=True)


def wait_for_file_text(path, text, timeout, proc):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise CheckFailed(f"qemu exited with status {proc.returncode} before {text!r}")
        try:
            with open(path, "rb") as f:
                if text.encode() in f.read():
                    return
        except FileNotFoundError:
            pass
        time.sleep(0.05)
    raise CheckFailed(f"no {text!r} in {path} after {timeout:.0f} s")


def connect_unix(path, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(path)
            return s
        except OSError:
            s.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class SerialShell:
    """The guest's root shell on ttyS0, through qemu's serial socket.

    The tty echoes what we type and ash adds ESC[6n after each prompt, so
    replies are found by searching for marker text that the typed command does
    not contain (e.g. type `echo X-$((1+2))`, wait for `X-3`).
    """

    def __init__(self, path):
        self.sock = connect_unix(path)
        self.buf = b""

    def read_until(self, needle, timeout=CMD_TIMEOUT):
        deadline = time.monotonic() + timeout
        data = needle.encode()
        while data not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise CheckFailed(
                    f"serial: no {needle!r} after {timeout:.0f} s; got {self.buf[-400:]!r}"
                )
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(4096)
            except TimeoutError:
                continue
            if not chunk:
                raise CheckFailed(f"serial: EOF while waiting for {needle!r}")
            self.buf += chunk
        i = self.buf.index(data) + len(data)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out.decode(errors="replace")

    def run(self, command, done_marker, timeout=CMD_TIMEOUT):
        """Type COMMAND; return the output up to DONE_MARKER (not in the command text)."""
        self.sock.sendall(command.encode() + b"\n")
        return self.read_until(done_marker, timeout)

    def poll(self, command, done_marker, ok, timeout=CMD_TIMEOUT, interval=0.5):
        """Run COMMAND until ok(output) is true; return that output."""
        deadline = time.monotonic() + timeout
        while True:
            out = self.run(command, done_marker)
            if ok(out):
                return out
            if time.monotonic() > deadline:
                raise CheckFailed(f"after {timeout:.0f} s, `{command}` still gives:\n{out}")
            time.sleep(interval)

    def close(self):
        self.sock.close()


class QMP:
    def __init__(self, path):
        self.sock = connect_unix(path)
        self.sock.settimeout(10)
        self.file = self.sock.makefile("rb")
        greeting = json.loads(self.file.readline())
        if "QMP" not in greeting:
            raise CheckFailed(f"QMP: unexpected greeting {greeting}")
        self.execute("qmp_capabilities")

    def execute(self, command, **arguments):
        msg = {"execute": command}
        if arguments:
            msg["arguments"] = arguments
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        while True:
            line = self.file.readline()
            if not line:
                raise CheckFailed(f"QMP: EOF waiting for the reply to {command}")
            reply = json.loads(line)
            if "event" in reply:  # events may come before the command's return
                continue
            if "error" in reply:
                raise CheckFailed(f"QMP {command}: {reply['error']}")
            return reply.get("return")

    def close(self):
        try:
            self.file.close()
        finally:
            self.sock.close()


def qemu_command(overlay, tmp):
    return [
        *("qemu-system-x86_64", "-accel", "tcg", "-machine", "q35", "-m", "128"),
        *("-nodefaults", "-display", "none"),
        *("-drive", f"file={overlay},if=virtio"),
        *("-serial", "chardev:s0"),
        "-chardev",
        f"socket,id=s0,path={tmp}/serial.sock,server=on,wait=off,logfile={tmp}/serial.log",
        *("-qmp", f"unix:{tmp}/qmp.sock,server=on,wait=off"),
        # isolated user-mode network: only here so the guest has a NIC; no traffic is sent
        *("-netdev", "user,id=n0,restrict=on", "-device", "virtio-net-pci,netdev=n0"),
    ]


def check_shell(tmp):
    sh = SerialShell(os.path.join(tmp, "serial.sock"))
    try:
        sh.sock.sendall(b"\n")
        sh.run("echo hello-$((1+2))", "hello-3")
        log("shell: echo hello-$((1+2)) -> hello-3")
        # the kernel reports carrier ~1 s after `ip link set eth0 up`
        t1 = time.monotonic()
        sh.poll(
            "ip link show eth0; echo LINK-$((40+2))",
            "LINK-42",
            lambda o: "eth0:" in o and ",UP," in o and "NO-CARRIER" not in o,
        )
        log(f"shell: ip link shows eth0 up with carrier (+{time.monotonic() - t1:.1f} s)")
        out = sh.run("ls /proc/sys/net/ipv6 && echo V6-$((1+1))", "V6-2")
        if "conf" not in out:
            raise CheckFailed(f"/proc/sys/net/ipv6 has no conf:\n{out}")
        out = sh.run(
            "cat /proc/sys/net/ipv6/conf/eth0/accept_ra"
            " /proc/sys/net/ipv6/conf/eth0/autoconf | tr '\\n' , ; echo RA-$((2+3))",
            "RA-5",
        )
        if "1,1," not in out:
            raise CheckFailed(f"eth0 accept_ra/autoconf not 1:\n{out}")
        t1 = time.monotonic()
        sh.poll(
            "ip -6 addr show dev eth0; echo ADDR-$((3+4))",
            "ADDR-7",
            lambda o: "inet6 fe80::" in o,
        )
        log(
            "shell: IPv6 present (accept_ra=1 autoconf=1), eth0 has a link-local address"
            f" (+{time.monotonic() - t1:.1f} s)"
        )
    finally:
        sh.close()


def check_powerdown(tmp, proc):
    qmp = QMP(os.path.join(tmp, "qmp.sock"))
    try:
        t1 = time.monotonic()
        qmp.execute("system_powerdown")
        try:
            proc.wait(timeout=POWEROFF_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise CheckFailed(
                f"qemu still running {POWEROFF_TIMEOUT:.0f} s after system_powerdown"
            ) from None
        took = time.monotonic() - t1
        log(f"system_powerdown -> qemu exit: {took:.3f} s (exit status {proc.returncode})")
    finally:
        qmp.close()


def print_logs(tmp):
    for name in ("serial.log", "qemu.log"):
        try:
            with open(os.path.join(tmp, name), "rb") as f:
                tail = f.read()[-3000:].decode(errors="replace")
        except OSError:
            continue
        print(f"----- {name} (tail) -----\n{tail}", file=sys.stderr)


def check(image, tmp):
    overlay = os.path.join(tmp, "overlay.qcow2")
    backing = os.path.abspath(image)
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", "-b", backing, "-F", "qcow2", overlay],
        check=True,
    )
    with open(os.path.join(tmp, "qemu.log"), "wb") as qemu_log:
        t0 = time.monotonic()
        proc = subprocess.Popen(
            qemu_command(overlay, tmp),
            stdin=subprocess.DEVNULL,
            stdout=qemu_log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for_file_text(os.path.join(tmp, "serial.log"), MARKER, BOOT_TIMEOUT, proc)
            log(f"boot to {MARKER}: {time.monotonic() - t0:.2f} s (TCG)")
            check_shell(tmp)
            check_powerdown(tmp, proc)
        except Exception:
            print_logs(tmp)
            raise
        finally:
            if proc.poll() is None:
                proc.kill()  # by PID: only the qemu started here
            proc.wait()


def main():
    if len(sys.argv) != 2:
        print(f"usage: {sys.argv[0]} IMAGE.qcow2", file=sys.stderr)
        return 2
    image = sys.argv[1]
    if not os.path.isfile(image):
        print(f"check-tiny-image: no such file: {image}", file=sys.stderr)
        return 2
    tmp = tempfile.mkdtemp(prefix="ucloud-guest-check.")
    try:
        check(image, tmp)
    except (CheckFailed, OSError, subprocess.CalledProcessError) as e:
        log(f"FAILED: {e}")
        return 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
