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
