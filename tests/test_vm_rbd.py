"""VMs on the Ceph RBD image store: a lab of two namespace hosts with `ceph=True` (one
single-node Ceph on the fabric), real qemu booting the tiny image from an RBD clone."""

import os
import time
from collections.abc import Iterator

import pytest
import rados
import rbd

from tests.conftest import running_cloud
from tests.lab_helpers import Client, DuplicateWatch
from ucloud_aio.ceph import pool_images
from ucloud_aio.cloud import CEPH_POOL, AllInOne
from ucloud_aio.console import SerialShell, wait_for_marker
from ucloud_aio.guest import READY_MARKER

BOOT = 90


@pytest.fixture(scope="module")
def lab() -> Iterator[AllInOne]:
    with running_cloud(hosts=2, ceph=True) as cloud:
        yield cloud
        ceph_dir = cloud.ceph_dir
    assert not ceph_dir.exists(), "the lab's Ceph was left behind"


@pytest.fixture
def client(lab: AllInOne) -> Iterator[Client]:
    api = Client(lab)
    yield api
    for host in lab.host_names:
        if (lab.host_dir(host) / "killed").exists():
            lab.restore_host(host)
    api.delete_all()


def images(lab: AllInOne) -> list[str]:
    return pool_images(lab.ceph_dir / "ceph.conf", CEPH_POOL)


def tiny(client: Client) -> dict:
    return next(i for i in client.call("GET", "/v1/image") if i["name"] == "tiny")


def serial_log(lab: AllInOne, vm: dict) -> str:
    return str(lab.run_dir(vm["host"]) / "vm" / vm["uuid"] / "serial.log")


def test_the_lab_runs_on_rbd(lab: AllInOne, client: Client) -> None:
    config = lab.config()
    assert (config.image_store, config.shared_storage) == ("rbd", True)
    image = tiny(client)
    assert image["file"] == f"rbd:{CEPH_POOL}/image-{image['uuid']}"
    assert images(lab) == [f"image-{image['uuid']}"]
    assert not list((lab.state_dir / "images").iterdir())  # no file store used


def test_vm_boots_from_a_clone_and_survives_its_host(lab: AllInOne, client: Client) -> None:
    image = tiny(client)
    vm = client.wait(client.create("on-rbd", hdd=["16MiB"])["uuid"], status="RUNNING")
    uuid = vm["uuid"]
    assert images(lab) == sorted([f"image-{image['uuid']}", f"vm-{uuid}-hdd0", f"vm-{uuid}-os"])
    with (
        rados.Rados(conffile=str(lab.ceph_dir / "ceph.conf")) as cluster,
        cluster.open_ioctx(CEPH_POOL) as ioctx,
        rbd.Image(ioctx, f"vm-{uuid}-os", read_only=True) as disk,
    ):
        assert disk.parent_info() == (CEPH_POOL, f"image-{image['uuid']}", "base")
    wait_for_marker(serial_log(lab, vm), READY_MARKER, BOOT)
    with SerialShell(vm["console"]["serial"]) as shell:
        status, _ = shell.run(
            "echo kept-across-hosts | dd of=/dev/vdb bs=512 count=1 conv=sync,fsync 2>/dev/null"
        )
        assert status == 0
    # an image with a VM disk based on it is not deleted
    answer = client.call("DELETE", f"/v1/image/{image['uuid']}", expect=409)
    assert uuid in answer["error"]
    old_host = vm["host"]
    with DuplicateWatch() as watch:
        killed = time.monotonic()
        lab.kill_host(old_host)
        moved = client.wait_elsewhere(uuid, old_host, timeout=30)
        elapsed = time.monotonic() - killed
        wait_for_marker(serial_log(lab, moved), READY_MARKER, BOOT)
        with SerialShell(moved["console"]["serial"]) as shell:
            _, output = shell.run("dd if=/dev/vdb bs=512 count=1 2>/dev/null | head -c 17")
        assert "kept-across-hosts" in output
    watch.assert_never_twice()
    assert elapsed < 10, f"rescheduling took {elapsed:.1f} s: {moved['log']}"
    lab.restore_host(old_host)
    client.delete_all()  # on the new host, though the dead qemu's watch may linger a while
    assert images(lab) == [f"image-{image['uuid']}"]  # no orphan disks


def test_image_with_a_clone_outliving_its_vm_is_not_deleted(lab: AllInOne, client: Client) -> None:
    image = tiny(client)
    orphan = "33333333-3333-4333-8333-333333333333"
    with (
        rados.Rados(conffile=str(lab.ceph_dir / "ceph.conf")) as cluster,
        cluster.open_ioctx(CEPH_POOL) as ioctx,
    ):
        rbd.RBD().clone(ioctx, f"image-{image['uuid']}", "base", ioctx, f"vm-{orphan}-os")
        try:
            answer = client.call("DELETE", f"/v1/image/{image['uuid']}", expect=409)
            assert orphan in answer["error"]
            assert tiny(client)["status"] == "AVAILABLE"
        finally:
            rbd.RBD().remove(ioctx, f"vm-{orphan}-os")
    assert images(lab) == [f"image-{image['uuid']}"]
    assert os.path.exists(lab.ceph_dir / "ceph.conf")
