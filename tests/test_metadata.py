"""ucloud-meta against guest-equivalents (namespaces on a real bridge): each VM gets its own data
in every documented form, unknown and spoofing callers get nothing."""

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from common import ipam
from tests.test_ssh_keys import make_key
from ucloud_aio.guestnet import AgentRig, guest_vm, metadata_rig, run
from ucloud_meta.server import MAX_HEADERS, MAX_PER_CALLER, MAX_PER_VM, MAX_REQUEST_LINE

PORT = 8775
USER_DATA = "#cloud-config\nhostname: a\n"
MACS = {"a": "02:00:00:00:00:0a", "b": "02:00:00:00:00:0b"}
KEYS = {"a": [make_key(10, comment="alice")], "b": [make_key(11, comment="bob")]}


def vm_record(name: str, owner: str) -> dict:
    return guest_vm(f"00000000-0000-4000-8000-00000000000{name}", f"vm-{name}", owner, MACS[name])


@pytest.fixture
def meta(tmp_path: Path) -> Iterator[AgentRig]:
    vms = [
        (
            vm_record("a", "alice"),
            {"ssh_keys": [{"name": "k-alice", "key": KEYS["a"][0]}], "user_data": USER_DATA},
        ),
        (vm_record("b", "bob"), {"ssh_keys": [{"name": "k-bob", "key": KEYS["b"][0]}]}),
    ]
    with metadata_rig(tmp_path, f"umt{os.getpid() % 10000}", vms, PORT) as rig:
        yield rig


def test_each_vm_gets_its_own_keys_and_documents(meta: AgentRig) -> None:
    a, b = meta.net.guests
    assert meta.net.fetch(a, "/ssh-keys", PORT) == (200, KEYS["a"][0] + "\n")
    assert meta.net.fetch(b, "/ssh-keys", PORT) == (200, KEYS["b"][0] + "\n")
    uuid_a = vm_record("a", "alice")["uuid"]
    assert meta.net.fetch(a, "/latest/meta-data/instance-id", PORT) == (200, uuid_a)
    assert meta.net.fetch(a, "/latest/meta-data/hostname", PORT) == (200, "vm-a")
    listing = meta.net.fetch(a, "/latest/meta-data/", PORT)[1].split()
    assert {"instance-id", "hostname", "local-hostname", "public-keys/"} <= set(listing)
    assert meta.net.fetch(a, "/latest/meta-data/public-keys", PORT) == (200, "0=k-alice\n")
    assert meta.net.fetch(a, "/latest/meta-data/public-keys/0/openssh-key", PORT) == (
        200,
        KEYS["a"][0] + "\n",
    )
    assert meta.net.fetch(a, "/latest/meta-data/public-keys/1/openssh-key", PORT)[0] == 404
    assert meta.net.fetch(a, "/latest/user-data", PORT) == (200, USER_DATA)
    assert meta.net.fetch(b, "/latest/user-data", PORT)[0] == 404  # b has none
    status, body = meta.net.fetch(b, "/openstack/latest/meta_data.json", PORT)
    document = json.loads(body)
    assert status == 200 and document["uuid"] == vm_record("b", "bob")["uuid"]
    assert document["public_keys"] == {"k-bob": KEYS["b"][0]}
    assert meta.net.fetch(a, "/nope", PORT)[0] == 404


def test_unknown_caller_gets_404(meta: AgentRig) -> None:
    stranger = meta.net.add_guest("02:00:00:00:00:99")
    meta.net.wait_link_local(stranger)
    assert meta.net.fetch(stranger, "/ssh-keys", PORT)[0] == 404


def test_spoofed_address_is_refused_or_unanswerable(meta: AgentRig) -> None:
    a, b = meta.net.guests
    assert meta.net.fetch(a, "/ssh-keys", PORT)[0] == 200  # the host knows a's address and MAC
    victim = ipam.eui64("fe80::/64", MACS["a"])
    run("ip", "-n", b, "addr", "add", f"{victim}/64", "dev", "eth0", "nodad")
    status, body = meta.net.fetch(b, "/ssh-keys", PORT, source=victim)
    assert KEYS["a"][0] not in body
    assert status in (0, 404), (status, body)
    # also taking a's MAC: the bridge then learns it on b's tap, which is not a's tap
    run("ip", "-n", b, "addr", "del", f"{victim}/64", "dev", "eth0")
    run("ip", "-n", a, "link", "set", "eth0", "down")
    run("ip", "-n", b, "link", "set", "eth0", "address", MACS["a"])
    run("ip", "-n", b, "addr", "add", f"{victim}/64", "dev", "eth0", "nodad")
    status, body = meta.net.fetch(b, "/ssh-keys", PORT, source=victim)
    assert KEYS["a"][0] not in body
    assert status in (0, 404), (status, body)


def test_kill9_and_restart_serves_again(meta: AgentRig) -> None:
    """Its sockets and addresses are found again after kill -9 (level-triggered, reuseaddr)."""
    meta.kill()
    assert meta.net.fetch(meta.net.guests[0], "/ssh-keys", PORT)[0] == 0  # nobody listening
    meta.start()
    assert meta.net.fetch(meta.net.guests[1], "/ssh-keys", PORT) == (200, KEYS["b"][0] + "\n")


HOG = """
import socket, sys, time
port, count = int(sys.argv[1]), int(sys.argv[2])
link = socket.if_nametoindex("eth0")
sources = [(address, 0, 0, link) for address in sys.argv[3:]] or [("", 0)]
held = [
    socket.create_connection(("fe80::a9fe:a9fe%eth0", port), timeout=3,
                             source_address=sources[i % len(sources)])
    for i in range(count)
]
time.sleep(0.5)
refused = 0
for sock in held:
    try:
        sock.sendall(b"GET /ssh-keys HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n")
        refused += not sock.recv(100)
    except OSError:
        refused += 1
print(refused, flush=True)
time.sleep(2)
"""


def hog(guest: str, count: int, *sources: str) -> int:
    """Connections the guest opened (round-robin over `sources`) that were refused or closed
    without an answer."""
    process = subprocess.Popen(
        ["ip", "netns", "exec", guest, sys.executable, "-c", HOG, str(PORT), str(count), *sources],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    refused = int(process.stdout.readline())
    process.wait(timeout=10)
    return refused


def test_one_vm_cannot_take_every_connection(meta: AgentRig) -> None:
    a, b = meta.net.guests
    assert hog(a, 12) == 12 - MAX_PER_CALLER  # a's connections past its share were closed
    assert meta.net.fetch(b, "/ssh-keys", PORT)[0] == 200  # b is served meanwhile


def test_more_addresses_give_a_vm_no_more_connections(meta: AgentRig) -> None:
    """Its link-local and its SLAAC address are both a's own: together they get one share.
    (The SLAAC address reaches the service only where the host routes the VM's prefix: here a
    route made for the test.)"""
    a, _ = meta.net.guests
    link_local = ipam.eui64("fe80::/64", MACS["a"])
    slaac = ipam.eui64("fd00:aa::/64", MACS["a"])
    run("ip", "-n", a, "addr", "add", f"{slaac}/64", "dev", "eth0", "nodad")
    run("ip", "-n", meta.net.host, "route", "add", "fd00:aa::/64", "dev", meta.net.bridge)
    assert hog(a, 12, link_local, slaac) == 12 - MAX_PER_VM


RAW = """
import socket, sys
port, request = int(sys.argv[1]), sys.argv[2].encode().decode("unicode_escape").encode("latin-1")
with socket.create_connection(("fe80::a9fe:a9fe%eth0", port), timeout=3) as sock:
    sock.sendall(request)
    answer = b""
    while chunk := sock.recv(65536):
        answer += chunk
print(answer.split(b"\\r\\n", 1)[0].decode(), flush=True)
"""


def raw_request(guest: str, request: str) -> str:
    """The status line of the answer to `request` (escapes like \\r\\n allowed); the
    connection must then be closed by the server (the script reads until EOF)."""
    return run("ip", "netns", "exec", guest, sys.executable, "-c", RAW, str(PORT), request).strip()


def test_oversized_requests_are_refused(meta: AgentRig) -> None:
    a, _ = meta.net.guests
    long_path = "/" + "x" * MAX_REQUEST_LINE
    assert " 414 " in raw_request(a, f"GET {long_path} HTTP/1.1\\r\\n\\r\\n")
    many = "".join(f"X-{i}: y\\r\\n" for i in range(MAX_HEADERS + 1))
    assert " 431 " in raw_request(a, f"GET /ssh-keys HTTP/1.1\\r\\n{many}\\r\\n")
    big = "X-Big: " + "y" * 10000 + "\\r\\n"
    assert " 431 " in raw_request(a, f"GET /ssh-keys HTTP/1.1\\r\\n{big}\\r\\n")
    # and the same guest is served normally afterwards
    assert meta.net.fetch(a, "/ssh-keys", PORT) == (200, KEYS["a"][0] + "\n")


def test_an_unknown_callers_connection_is_closed(meta: AgentRig) -> None:
    stranger = meta.net.add_guest("02:00:00:00:00:98")
    meta.net.wait_link_local(stranger)
    # keep-alive asked for, but the 404 ends the connection (raw_request reads until EOF)
    assert " 404 " in raw_request(stranger, "GET /ssh-keys HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n")
