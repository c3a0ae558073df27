"""The filesystem image store against real qemu-img, and its disks opened by a real qemu."""

import itertools
import json
import subprocess
from pathlib import Path

import pytest

from common import config as configuration
from common.errors import ConfigError, InvalidInput, NotFound
from common.imagestore import IMAGE_STORES, Disk, FileSource
from common.imagestore.fs import FilesystemStore
from tests.conftest import make_qcow2, truncated_qcow2
from ucloud_vm.driver import VMSpec
from ucloud_vm.drivers.qemu.argv import QEMU, build

IMAGE, VM = "11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222"
MiB = 1024**2


@pytest.fixture
def store(tmp_path: Path) -> FilesystemStore:
    # a comma in the path: -blockdev must carry it through untouched
    return FilesystemStore(str(tmp_path / "image,store"))


def stored_files(store: FilesystemStore) -> list[str]:
    return sorted(str(p.relative_to(store.root)) for p in store.root.rglob("*") if p.is_file())


def test_import_copies_checks_and_removes(store: FilesystemStore, tmp_path: Path) -> None:
    source = make_qcow2(tmp_path / "source.qcow2", "32M")
    info = store.import_image(IMAGE, str(source))
    assert (info.format, info.virtual_size) == ("qcow2", 32 * MiB)
    assert info.location == str(store.root / "images" / f"{IMAGE}.qcow2")
    source.unlink()  # the store holds its own copy
    assert stored_files(store) == [f"images/{IMAGE}.qcow2"]
    store.remove_image(IMAGE)
    store.remove_image(IMAGE)
    assert stored_files(store) == []


def test_import_refuses_hostile_files_and_keeps_nothing(
    store: FilesystemStore, tmp_path: Path
) -> None:
    backed = tmp_path / "backed.qcow2"
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", "-b", "/etc/passwd", "-F", "raw", str(backed)],
        check=True,
    )
    raw = tmp_path / "raw.img"
    raw.write_bytes(b"\0" * 65536)
    refusals = {
        backed: "backing file",
        truncated_qcow2(tmp_path / "truncated.qcow2"): "truncated",
        raw: "qcow2",
        tmp_path / "missing.qcow2": "not a regular file",
        tmp_path: "not a regular file",
    }
    for source, reason in refusals.items():
        with pytest.raises(InvalidInput, match=reason) as refused:
            store.import_image(IMAGE, str(source))
        if source.is_file():  # messages name the file the caller gave, not the store's copy
            assert refused.value.message.startswith(f"{source}:")
        assert stored_files(store) == []


def test_prepare_and_remove_vm_disks_are_idempotent(store: FilesystemStore, tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        store.prepare_vm_disks(VM, IMAGE, 64 * MiB, [])
    store.import_image(IMAGE, str(make_qcow2(tmp_path / "source.qcow2", "32M")))
    disks = store.prepare_vm_disks(VM, IMAGE, 64 * MiB, [16 * MiB])
    vm_dir = store.root / "disks" / VM
    image = Disk(
        "disk0-base", FileSource(str(store.root / "images" / f"{IMAGE}.qcow2")), read_only=True
    )
    assert disks == [
        Disk("disk0", FileSource(str(vm_dir / "os.qcow2")), backing=image),
        Disk("disk1", FileSource(str(vm_dir / "hdd0.qcow2"))),
    ]
    sizes = [virtual_size(vm_dir / name) for name in ("os.qcow2", "hdd0.qcow2")]
    assert sizes == [64 * MiB, 16 * MiB]
    written = {p: p.stat().st_mtime_ns for p in vm_dir.iterdir()}
    assert store.prepare_vm_disks(VM, IMAGE, 64 * MiB, [16 * MiB]) == disks
    assert {p: p.stat().st_mtime_ns for p in vm_dir.iterdir()} == written  # kept, not remade
    store.remove_vm_disks(VM)
    store.remove_vm_disks(VM)
    assert stored_files(store) == [f"images/{IMAGE}.qcow2"]


def virtual_size(path: Path) -> int:
    info = subprocess.run(
        ["qemu-img", "info", "--output=json", str(path)], capture_output=True, check=True
    )
    return json.loads(info.stdout)["virtual-size"]


def test_qemu_opens_the_spelled_out_chain_not_the_header(
    store: FilesystemStore, tmp_path: Path
) -> None:
    store.import_image(IMAGE, str(make_qcow2(tmp_path / "source.qcow2", "32M")))
    disks = store.prepare_vm_disks(VM, IMAGE, 64 * MiB, [16 * MiB])
    # the overlay's header now names another file: qemu must not open it
    decoy = make_qcow2(tmp_path / "decoy.qcow2", "32M")
    overlay = disks[0].source.path
    subprocess.run(
        ["qemu-img", "rebase", "-q", "-u", "-f", "qcow2", "-b", str(decoy), "-F", "qcow2", overlay],
        check=True,
    )
    argv = build(VMSpec(VM, 1, 64 * MiB, disks, str(tmp_path / "run")), "tcg", {})
    blockdevs = [arg for flag, arg in itertools.pairwise(argv) if flag == "-blockdev"]
    nodes = named_block_nodes(blockdevs)
    base, hdd = disks[0].backing.source.path, disks[1].source.path
    opened = sorted(node["file"] for node in nodes if node["drv"] == "file")
    assert opened == sorted([base, overlay, hdd])  # these files and no other: not the decoy
    by_name = {node["node-name"]: node for node in nodes}
    assert by_name["disk0"]["backing_file"] == base and by_name["disk0-base"]["ro"]
    # the control: an overlay opened without `backing` gets the file its header names
    header_led = {
        "driver": "qcow2",
        "node-name": "o",
        "file": {"driver": "file", "filename": overlay},
    }
    nodes = named_block_nodes([json.dumps(header_led)])
    assert str(decoy) in [node["file"] for node in nodes if node["drv"] == "file"]


def named_block_nodes(blockdevs: list[str]) -> list[dict]:
    """qemu's block nodes after opening these -blockdev arguments (no guest, no devices)."""
    qmp = [
        {"execute": "qmp_capabilities"},
        {"execute": "query-named-block-nodes", "arguments": {"flat": True}},
        {"execute": "quit"},
    ]
    argv = [QEMU, "-machine", "none", "-nodefaults", "-display", "none", "-qmp", "stdio"]
    for blockdev in blockdevs:
        argv += ["-blockdev", blockdev]
    result = subprocess.run(
        argv,
        input="".join(json.dumps(command) + "\n" for command in qmp),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    answers = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    return next(a["return"] for a in answers if isinstance(a.get("return"), list))


def test_image_store_by_name(tmp_path: Path) -> None:
    config = configuration.load("/dev/null", environ={}, overrides={"image_dir": str(tmp_path)})
    assert config.image_store == "fs"
    store = IMAGE_STORES.load(config.image_store, config)
    assert isinstance(store, FilesystemStore) and store.root == tmp_path
    with pytest.raises(
        ConfigError, match=r"image_store: unknown image store driver 'ceph' \(choices: fs, rbd\)"
    ):
        IMAGE_STORES.load("ceph", config)
