"""ucloud-meta's documents (pure): hostile paths get a 404, never an exception."""

import pytest

from ucloud_meta.documents import answer

VM = {"uuid": "00000000-0000-4000-8000-000000000001", "name": "vm1"}
DATA = {"ssh_keys": [{"name": "k", "key": "ssh-ed25519 AAAA k"}], "user_data": None}


@pytest.mark.parametrize(
    "path",
    [
        "/latest/meta-data/public-keys/\xb2/openssh-key",  # byte 0xB2 read as Latin-1: "²"
        "/latest/meta-data/public-keys/\u0661",
        "/latest/meta-data/public-keys/9999999999999999999999",
        "/latest/meta-data/public-keys/0/x/y",
        "/latest/user-data",
        "/../../etc/passwd",
    ],
)
def test_hostile_paths_are_404(path: str) -> None:
    assert answer(path, VM, DATA).status == 404


def test_key_by_index() -> None:
    found = answer("/latest/meta-data/public-keys/0/openssh-key", VM, DATA)
    assert (found.status, found.body) == (200, b"ssh-ed25519 AAAA k\n")


@pytest.mark.parametrize("version", ["2009-04-04", "2016-09-02", "2018-09-24", "2021-03-23"])
def test_ec2_dated_versions_cloud_init_asks_for(version: str) -> None:
    found = answer(f"/{version}/meta-data/instance-id", VM, DATA)
    assert (found.status, found.body) == (200, VM["uuid"].encode())
    keys = answer(f"/{version}/meta-data/public-keys/0/openssh-key", VM, DATA)
    assert keys.body == b"ssh-ed25519 AAAA k\n"
    assert version in answer("/", VM, DATA).body.decode().split()


def test_openstack_versions_are_listed_and_served() -> None:
    listed = answer("/openstack", VM, DATA).body.decode().split()
    assert "2018-08-27" in listed and listed[-1] == "latest"
    dated = answer("/openstack/2018-08-27/meta_data.json", VM, DATA)
    assert dated == answer("/openstack/latest/meta_data.json", VM, DATA)
    assert answer("/1999-01-01/meta-data/instance-id", VM, DATA).status == 404
