"""The config drive (pure build, read back with pycdlib and blkid): the OpenStack layout
cloud-init's ConfigDrive datasource reads, the same documents ucloud-meta serves."""

import io
import subprocess
from pathlib import Path

import orjson
import pycdlib

from common import metadata
from ucloud_meta.documents import answer
from ucloud_vm import configdrive

VM = {
    "uuid": "00000000-0000-4000-8000-000000000001",
    "name": "web1",
    "networks": [
        {"mac": "02:00:00:00:00:01", "mtu": 1430},
        {"mac": "02:00:00:00:00:02", "mtu": 1500},
    ],
}
DATA = {
    "ssh_keys": [{"name": "k", "key": "ssh-ed25519 AAAA k"}],
    "user_data": "#cloud-config\nruncmd: [id]\n",
}


def read(path: Path, folder: str = "openstack/latest") -> dict[str, bytes]:
    """The drive's files in `folder` (by their Rock Ridge names, as Linux shows them)."""
    iso = pycdlib.PyCdlib()
    iso.open(str(path))
    files = {}
    for child in iso.list_children(rr_path=f"/{folder}"):
        name = child.rock_ridge.name().decode()
        if child.is_file():
            out = io.BytesIO()
            iso.get_file_from_iso_fp(out, rr_path=f"/{folder}/{name}")
            files[name] = out.getvalue()
    iso.close()
    return files


def test_layout_label_and_documents(tmp_path: Path) -> None:
    drive = configdrive.build(tmp_path, VM, DATA)
    label = subprocess.run(["blkid", "-o", "value", "-s", "LABEL", str(drive)], capture_output=True)
    assert label.stdout.strip() == b"config-2"
    files = read(drive)
    served = answer("/openstack/latest/meta_data.json", VM, DATA).body
    assert orjson.loads(files["meta_data.json"]) == orjson.loads(served)
    assert orjson.loads(files["meta_data.json"])["public_keys"] == {"k": "ssh-ed25519 AAAA k"}
    assert files["user_data"] == DATA["user_data"].encode()
    network = orjson.loads(files["network_data.json"])
    assert network == metadata.network_data(VM)
    assert [link["ethernet_mac_address"] for link in network["links"]] == [
        "02:00:00:00:00:01",
        "02:00:00:00:00:02",
    ]
    assert {n["type"] for n in network["networks"]} == {"ipv6_slaac"}
    assert not list(tmp_path.glob("*.part"))


def test_no_user_data_no_file_and_rebuilt_in_place(tmp_path: Path) -> None:
    configdrive.build(tmp_path, VM, DATA)
    drive = configdrive.build(tmp_path, VM, {"ssh_keys": [], "user_data": None})
    assert "user_data" not in read(drive)
    assert orjson.loads(read(drive)["meta_data.json"])["public_keys"] == {}


def test_ec2_tree_is_what_ucloud_meta_serves(tmp_path: Path) -> None:
    drive = configdrive.build(tmp_path, VM, DATA)
    for version in ("latest", "2009-04-04"):
        files = read(drive, f"ec2/{version}")
        assert set(files) == {"meta-data.json", "user-data"}
        meta = orjson.loads(files["meta-data.json"])
        assert meta == metadata.ec2_meta_data(VM, DATA)
        for name in ("instance-id", "hostname", "local-hostname"):
            assert meta[name].encode() == answer(f"/{version}/meta-data/{name}", VM, DATA).body
        served_key = answer(f"/{version}/meta-data/public-keys/0/openssh-key", VM, DATA).body
        assert meta["public-keys"]["0"]["openssh-key"].encode() == served_key
        listing = answer(f"/{version}/meta-data/public-keys", VM, DATA).body.decode()
        assert listing == meta["public-keys"]["0"]["_name"] + "\n" == "0=k\n"
        assert files["user-data"] == DATA["user_data"].encode()
    bare = configdrive.build(tmp_path, VM, {"ssh_keys": [], "user_data": None})
    assert set(read(bare, "ec2/latest")) == {"meta-data.json"}
    assert orjson.loads(read(bare, "ec2/latest")["meta-data.json"])["public-keys"] == {}
