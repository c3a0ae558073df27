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
BOOT_TIMEOUT = 120.0   # TCG; a normal boot takes ~5 s
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
                raise CheckFailed(f"serial: no {needle!r} after {timeout:.0f} s; got {self.buf[-400:]!r}")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(4096)
            except socket.timeout:
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
            if "event" in reply:   # events may come before the command's return
                continue
            if "error" in reply:
                raise CheckFailed(f"QMP {command}: {reply['error']}")
            return reply.get("return")

    def close(self):
        try:
            self.file.close()
        finally:
            self.sock.close()


def check(image, tmp):
    overlay = os.path.join(tmp, "overlay.qcow2")
    serial_sock = os.path.join(tmp, "serial.sock")
    serial_log = os.path.join(tmp, "serial.log")
    qmp_sock = os.path.join(tmp, "qmp.sock")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", os.path.abspath(image),
                    "-F", "qcow2", overlay], check=True)
    cmd = ["qemu-system-x86_64", "-accel", "tcg", "-machine", "q35", "-m", "128",
           "-nodefaults", "-display", "none",
           "-drive", f"file={overlay},if=virtio",
           "-serial", "chardev:s0",
           "-chardev", f"socket,id=s0,path={serial_sock},server=on,wait=off,logfile={serial_log}",
           "-qmp", f"unix:{qmp_sock},server=on,wait=off",
           "-netdev", "user,id=n0,restrict=on", "-device", "virtio-net-pci,netdev=n0"]
    qemu_log = open(os.path.join(tmp, "qemu.log"), "wb")
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=qemu_log, stderr=subprocess.STDOUT)
    try:
        try:
            wait_for_file_text(serial_log, MARKER, BOOT_TIMEOUT, proc)
            boot = time.monotonic() - t0
            log(f"boot to {MARKER}: {boot:.2f} s (TCG)")

            sh = SerialShell(serial_sock)
            try:
                sh.sock.sendall(b"\n")
                out = sh.run("echo hello-$((1+2))", "hello-3")
                log("shell: echo hello-$((1+2)) -> hello-3")
                out = sh.run("ip link; echo LINKS-$((40+2))", "LINKS-42")
                if "eth0:" not in out:
                    raise CheckFailed(f"no eth0 in `ip link`:\n{out}")
                if "state UP" not in out.split("eth0:", 1)[1].split("\n", 1)[0]:
                    log("warning: eth0 is not 'state UP' (no carrier yet?)")
                log("shell: ip link shows eth0")
                out = sh.run("ls /proc/sys/net/ipv6 && echo V6-$((1+1))", "V6-2")
                if "conf" not in out:
                    raise CheckFailed(f"/proc/sys/net/ipv6 has no conf:\n{out}")
                out = sh.run("cat /proc/sys/net/ipv6/conf/eth0/accept_ra"
                             " /proc/sys/net/ipv6/conf/eth0/autoconf | tr '\\n' , ; echo RA-$((2+3))",
                             "RA-5")
                if "1,1," not in out:
                    raise CheckFailed(f"eth0 accept_ra/autoconf not 1:\n{out}")
                out = sh.run("ip -6 addr show dev eth0; echo ADDR-$((3+4))", "ADDR-7")
                if "fe80::" not in out:
                    raise CheckFailed(f"eth0 has no IPv6 link-local address:\n{out}")
                log("shell: IPv6 present (/proc/sys/net/ipv6, accept_ra=1 autoconf=1, fe80:: on eth0)")
            finally:
                sh.close()

            qmp = QMP(qmp_sock)
            try:
                t1 = time.monotonic()
                qmp.execute("system_powerdown")
                try:
                    proc.wait(timeout=POWEROFF_TIMEOUT)
                except subprocess.TimeoutExpired:
                    raise CheckFailed(f"qemu still running {POWEROFF_TIMEOUT:.0f} s after system_powerdown")
                log(f"system_powerdown -> qemu exit: {time.monotonic() - t1:.3f} s (status {proc.returncode})")
            finally:
                qmp.close()
        except Exception:
            for name in ("serial.log", "qemu.log"):
                try:
                    with open(os.path.join(tmp, name), "rb") as f:
                        tail = f.read()[-3000:].decode(errors="replace")
                    print(f"----- {name} (tail) -----\n{tail}", file=sys.stderr)
                except OSError:
                    pass
            raise
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        qemu_log.close()


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
    except CheckFailed as e:
        log(f"FAILED: {e}")
        return 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
