"""Real guests fetch their ssh keys from ucloud-meta at boot: keys added through the API and
keys from LDAP, two users' VMs on one host, each seeing only its own."""

from collections.abc import Iterator

import pytest

from tests.conftest import running_cloud
from tests.lab_helpers import Client
from tests.slapd import Slapd
from tests.test_ssh_keys import make_key
from ucloud_aio.cloud import AllInOne
from ucloud_aio.console import SerialShell, wait_for_marker
from ucloud_aio.guest import READY_MARKER

BOOT = 120
ALICE_KEY = make_key(21, comment="alice@api")
CAROL_KEY = make_key(22, comment="carol@ldap")


@pytest.fixture
def lab(slapd: Slapd) -> Iterator[AllInOne]:
    slapd.add_user("carol", [CAROL_KEY])
    with running_cloud(hosts=1, settings=slapd.settings()) as cloud:
        yield cloud


def keys_printed(lab: AllInOne, vm: dict) -> str:
    """What the guest printed between its ssh-key markers (it boots, then fetches)."""
    log = lab.run_dir(vm["host"]) / "vm" / vm["uuid"] / "serial.log"
    wait_for_marker(str(log), READY_MARKER, BOOT)
    text = log.read_text(errors="replace")
    assert "UCLOUD-SSH-KEYS-BEGIN" in text, text[-2000:]
    return text.split("UCLOUD-SSH-KEYS-BEGIN", 1)[1].split("UCLOUD-SSH-KEYS-END", 1)[0]


def test_guests_get_their_own_keys_from_api_and_ldap(lab: AllInOne) -> None:
    admin = Client(lab)
    alice, carol = admin.new_user("alice"), admin.new_user("carol")
    alice.call("POST", "/v1/user/ssh-key", {"name": "laptop", "key": ALICE_KEY}, 201)
    listed = carol.call("GET", "/v1/user/ssh-key")
    assert [(k["key"], k["source"]) for k in listed] == [(CAROL_KEY, "ldap")]
    vms = []
    for client, name in ((alice, "a"), (carol, "c")):
        client.call("POST", "/v1/network", {"name": "net"}, 201)
        vms.append(client.create(name, networks=["net"]))
    running = [
        client.wait(vm["uuid"], status="RUNNING", timeout=60)
        for client, vm in zip((alice, carol), vms, strict=True)
    ]
    assert running[0]["host"] == running[1]["host"]  # two users' VMs on one host
    alice_seen, carol_seen = (keys_printed(lab, vm) for vm in running)
    assert ALICE_KEY in alice_seen and CAROL_KEY not in alice_seen
    assert CAROL_KEY in carol_seen and ALICE_KEY not in carol_seen
    # what makes cloud-init in an unmodified image choose its OpenStack datasource
    with SerialShell(running[0]["console"]["serial"]) as shell:
        status, product = shell.run("cat /sys/class/dmi/id/product_name")
    assert status == 0 and "OpenStack Nova" in product
