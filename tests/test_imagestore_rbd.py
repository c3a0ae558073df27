"""The Ceph RBD image store against a real single-node Ceph (ucloud_aio/ceph.py), real qemu-img,
and its disks opened by a real qemu."""

import itertools
import json
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import rbd

from common import config as configuration
from common.errors import Conflict, InvalidInput, NotFound
from common.imagestore import IMAGE_STORES, Disk, RbdSource
from common.imagestore.drivers.rbd import RbdStore
from tests.conftest import make_qcow2, running_ceph, truncated_qcow2
from tests.test_imagestore import named_block_nodes
from ucloud_aio.ceph import CephCluster
from ucloud_vm.driver import VMSpec
from ucloud_vm.drivers.qemu.argv import build

IMAGE, VM = "11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222"
MiB = 1024**2


@pytest.fixture(scope="module")
def ceph() -> Iterator[CephCluster]:
    with running_ceph() as cluster:
        yield cluster


@pytest.fixture
def store(ceph: CephCluster, tmp_path: Path) -> Iterator[RbdStore]:
    store = RbdStore(ceph.pool, str(ceph.conf), "admin", str(tmp_path / "scratch"))
    yield store
    store.close()
    assert ceph.images() == [], "RBD images left behind"


def pattern_qcow2(path: Path, size: str = "32M") -> Path:
    """A qcow2 with 0x5a in its first MiB (to see it through clones)."""
    make_qcow2(path, size)
    subprocess.run(
        ["qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 0 1M", str(path)],
        check=True,
        capture_output=True,
    )
    return path


@contextmanager
def opened(ceph: CephCluster, name: str, read_only: bool = True) -> Iterator["rbd.Image"]:
    with (
        ceph.client() as cluster,
        cluster.open_ioctx(ceph.pool) as ioctx,
        rbd.Image(ioctx, name, read_only=read_only) as image,
    ):
        yield image


def read(ceph: CephCluster, name: str, offset: int, length: int) -> bytes:
    with opened(ceph, name) as image:
        return image.read(offset, length)


def size_of(ceph: CephCluster, name: str) -> int:
    with opened(ceph, name) as image:
        return image.size()


def test_import_converts_snapshots_and_removes(
    ceph: CephCluster, store: RbdStore, tmp_path: Path
) -> None:
    source = pattern_qcow2(tmp_path / "source.qcow2")
    info = store.import_image(IMAGE, str(source))
    assert (info.format, info.virtual_size) == ("qcow2", 32 * MiB)
    assert info.location == f"rbd:{ceph.pool}/image-{IMAGE}"
    source.unlink()  # the store holds its own copy
    assert ceph.images() == [f"image-{IMAGE}"]
    assert read(ceph, f"image-{IMAGE}", 0, 4) == b"\x5a" * 4
    assert read(ceph, f"image-{IMAGE}", MiB, 4) == b"\0" * 4
    with opened(ceph, f"image-{IMAGE}") as image:
        assert [s["name"] for s in image.list_snaps()] == ["base"]
        assert image.is_protected_snap("base")
    assert os.listdir(tmp_path / "scratch") == []  # the checked copy is gone
    store.remove_image(IMAGE)
    store.remove_image(IMAGE)
    assert ceph.images() == []


def test_import_refuses_hostile_files_and_keeps_nothing(
    ceph: CephCluster, store: RbdStore, tmp_path: Path
) -> None:
    backed = tmp_path / "backed.qcow2"
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", "-b", "/etc/passwd", "-F", "raw", str(backed)],
        check=True,
    )
    data_file = tmp_path / "data-file.qcow2"
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", "-o", f"data_file={tmp_path / 'data.raw'}",
         str(data_file), "1M"],
        check=True,
    )  # fmt: skip
    raw = tmp_path / "raw.img"
    raw.write_bytes(b"\0" * 65536)
    link = tmp_path / "link.qcow2"
    link.symlink_to(make_qcow2(tmp_path / "fine.qcow2", "1M"))
    json_name = tmp_path / "json:{}"
    json_name.write_bytes(b"\0" * 65536)
    refusals = {
        backed: "backing file",
        data_file: "external data file",
        truncated_qcow2(tmp_path / "truncated.qcow2"): "truncated",
        raw: "qcow2",
        json_name: "qcow2",
        link: "not a regular file",  # never followed
        tmp_path / "missing.qcow2": "not a regular file",
        tmp_path: "not a regular file",
    }
    for source, reason in refusals.items():
        with pytest.raises(InvalidInput, match=reason) as refused:
            store.import_image(IMAGE, str(source))
        if source.is_file() and not source.is_symlink():
            assert refused.value.message.startswith(f"{source}:")
        assert ceph.images() == []
        assert os.listdir(tmp_path / "scratch") == []


def test_clones_resize_refused_delete_and_cleanup(
    ceph: CephCluster, store: RbdStore, tmp_path: Path
) -> None:
    with pytest.raises(NotFound):
        store.prepare_vm_disks(VM, IMAGE, 64 * MiB, [])
    assert ceph.images() == []  # no half-made clone
    store.import_image(IMAGE, str(pattern_qcow2(tmp_path / "source.qcow2")))
    disks = store.prepare_vm_disks(VM, IMAGE, 64 * MiB, [16 * MiB])
    source = RbdSource(ceph.pool, f"vm-{VM}-os", str(ceph.conf), "admin")
    assert disks == [
        Disk("disk0", source, format="raw"),
        Disk("disk1", RbdSource(ceph.pool, f"vm-{VM}-hdd0", str(ceph.conf)), format="raw"),
    ]
    assert ceph.images() == [f"image-{IMAGE}", f"vm-{VM}-hdd0", f"vm-{VM}-os"]
    assert [size_of(ceph, f"vm-{VM}-{d}") for d in ("os", "hdd0")] == [64 * MiB, 16 * MiB]
    with opened(ceph, f"vm-{VM}-os", read_only=False) as clone:
        assert clone.parent_info() == (ceph.pool, f"image-{IMAGE}", "base")
        assert clone.read(0, 4) == b"\x5a" * 4  # the image's data, through the clone
        clone.write(b"kept", 0)
    # prepared again: the disks are kept, not remade
    assert store.prepare_vm_disks(VM, IMAGE, 64 * MiB, [16 * MiB]) == disks
    assert read(ceph, f"vm-{VM}-os", 0, 4) == b"kept"
    assert read(ceph, f"image-{IMAGE}", 0, 4) == b"\x5a" * 4  # the image never changes
    # the image is the clone's parent: its deletion is refused, naming the clone
    assert store.disk_users(IMAGE) == [VM]
    with pytest.raises(Conflict, match=f"rbd:{ceph.pool}/vm-{VM}-os"):
        store.remove_image(IMAGE)
    assert f"image-{IMAGE}" in ceph.images()
    store.remove_vm_disks(VM)
    store.remove_vm_disks(VM)
    assert ceph.images() == [f"image-{IMAGE}"]
    assert store.disk_users(IMAGE) == []
    store.remove_image(IMAGE)


def test_a_leftover_partial_clone_is_made_again(
    ceph: CephCluster, store: RbdStore, tmp_path: Path
) -> None:
    store.import_image(IMAGE, str(pattern_qcow2(tmp_path / "source.qcow2")))
    with ceph.client() as cluster, cluster.open_ioctx(ceph.pool) as ioctx:
        rbd.RBD().create(ioctx, f"vm-{VM}-os.part", MiB)  # a crash between clone and rename
    store.prepare_vm_disks(VM, IMAGE, 64 * MiB, [])
    assert ceph.images() == [f"image-{IMAGE}", f"vm-{VM}-os"]
    assert size_of(ceph, f"vm-{VM}-os") == 64 * MiB
    store.remove_vm_disks(VM)
    store.remove_image(IMAGE)


def test_qemu_opens_the_rbd_disks(ceph: CephCluster, store: RbdStore, tmp_path: Path) -> None:
    store.import_image(IMAGE, str(pattern_qcow2(tmp_path / "source.qcow2")))
    disks = store.prepare_vm_disks(VM, IMAGE, 64 * MiB, [16 * MiB])
    argv = build(VMSpec(VM, 1, 64 * MiB, disks, str(tmp_path / "run")), "tcg", {})
    blockdevs = [arg for flag, arg in itertools.pairwise(argv) if flag == "-blockdev"]
    nodes = named_block_nodes(blockdevs)
    by_name = {node["node-name"]: node for node in nodes}
    assert by_name["disk0"]["drv"] == "raw" and by_name["disk1"]["drv"] == "raw"
    assert by_name["disk0"]["image"]["virtual-size"] == 64 * MiB
    opened = [
        json.loads(node["file"].removeprefix("json:")) for node in nodes if node["drv"] == "rbd"
    ]
    assert sorted(opened, key=lambda o: o["image"]) == [
        {"driver": "rbd", "pool": ceph.pool, "image": name, "conf": str(ceph.conf), "user": "admin"}
        for name in (f"vm-{VM}-hdd0", f"vm-{VM}-os")
    ]
    assert not [node for node in nodes if node["drv"] == "file"]  # no file at all
    store.remove_vm_disks(VM)
    store.remove_image(IMAGE)


def test_rbd_store_by_name(ceph: CephCluster, tmp_path: Path) -> None:
    config = configuration.load(
        "/dev/null",
        environ={},
        overrides={"image_store": "rbd", "ceph_conf": str(ceph.conf), "rbd_pool": ceph.pool},
    )
    assert config.shared_storage  # every host reaches every disk
    store = IMAGE_STORES.load(config.image_store, config)
    assert isinstance(store, RbdStore)
    assert (store.pool, store.conf, store.client_id) == (ceph.pool, str(ceph.conf), "admin")
    assert not configuration.load("/dev/null", environ={}).shared_storage
