"""qemu's command line, checked as text (no qemu needed)."""

import json

from common.imagestore import Disk, FileSource, RbdSource
from ucloud_vm.driver import VMSpec
from ucloud_vm.drivers.qemu.argv import blockdev, build, nic_options, translation_cache_mib

UUID = "0b0e6a2c-5c4e-4a0e-9a57-1d2a3b4c5d6e"
IMAGE = Disk("disk0-base", FileSource("/i/image.qcow2"), read_only=True)
DISKS = [
    Disk("disk0", FileSource("/d/os.qcow2"), backing=IMAGE),
    Disk("disk1", FileSource("/d/hdd0.qcow2")),
]


TAP_FDS = {"ut020000000001": 7}  # the descriptor qemu inherits for the NIC's tap


def spec(**changes: object) -> VMSpec:
    values = {
        "uuid": UUID,
        "cpu": 2,
        "ram": 512 * 1024**2,
        "disks": DISKS,
        "run_dir": f"/run/ucloud/vm/{UUID}",
        "nics": [{"mac": "02:00:00:00:00:01", "tap": "ut020000000001", "slot": 3}],
    }
    return VMSpec(**{**values, **changes})


def test_tcg_command_line() -> None:
    run = f"/run/ucloud/vm/{UUID}"
    assert build(spec(), "tcg", TAP_FDS) == [
        "qemu-system-x86_64",
        "-name",
        f"ucloud-{UUID},debug-threads=on",
        "-uuid",
        UUID,
        "-smbios",
        f"type=1,manufacturer=ucloud,product=OpenStack Nova,serial={UUID}",
        "-machine",
        "q35",
        "-accel",
        "tcg,tb-size=128",
        "-smp",
        "2",
        "-m",
        "512M",
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-vga",
        "std",
        "-vnc",
        f"unix:{run}/vnc.sock",
        "-chardev",
        f"socket,id=serial0,path={run}/serial.sock,server=on,wait=off,"
        f"logfile={run}/serial.log,logappend=on",
        "-serial",
        "chardev:serial0",
        "-qmp",
        f"unix:{run}/qmp.sock,server=on,wait=off",
        "-rtc",
        "base=utc",
        "-no-shutdown",
        "-sandbox",
        "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
        "-pidfile",
        f"{run}/qemu.pid",
        # the image, read-only and without a backing of its own, then the overlay naming it
        "-blockdev",
        '{"driver":"qcow2","node-name":"disk0-base","read-only":true,"discard":"unmap",'
        '"file":{"driver":"file","filename":"/i/image.qcow2","aio":"threads"},"backing":null}',
        "-blockdev",
        '{"driver":"qcow2","node-name":"disk0","read-only":false,"discard":"unmap",'
        '"file":{"driver":"file","filename":"/d/os.qcow2","aio":"threads"},"backing":"disk0-base"}',
        "-device",
        "virtio-blk-pci,drive=disk0,id=virtio-disk0,bootindex=0",
        "-blockdev",
        '{"driver":"qcow2","node-name":"disk1","read-only":false,"discard":"unmap",'
        '"file":{"driver":"file","filename":"/d/hdd0.qcow2","aio":"threads"},"backing":null}',
        "-device",
        "virtio-blk-pci,drive=disk1,id=virtio-disk1",
        *[
            arg
            for slot in range(8)
            for arg in ("-device", f"pcie-root-port,id=rp{slot},chassis={slot + 1},slot={slot + 1}")
        ],
        "-netdev",
        "tap,id=net-020000000001,fd=7",
        "-device",
        "virtio-net-pci,netdev=net-020000000001,mac=02:00:00:00:00:01,id=nic-020000000001,bus=rp3",
    ]


def test_kvm_uses_host_cpu() -> None:
    argv = build(spec(), "kvm", TAP_FDS)
    assert argv[argv.index("-accel") + 1] == "kvm"
    assert argv[argv.index("-cpu") + 1] == "host"


def test_paths_are_json_strings() -> None:
    argv = build(spec(disks=[Disk("disk0", FileSource('/d/a,b"c.qcow2'))]), "tcg", TAP_FDS)
    assert '"filename":"/d/a,b\\"c.qcow2"' in argv[argv.index("-blockdev") + 1]


def test_memory_in_mebibytes() -> None:
    argv = build(spec(ram=2_000_000_000), "tcg", TAP_FDS)
    assert argv[argv.index("-m") + 1] == "1907M"


def test_a_raw_read_only_drive_has_no_backing_option() -> None:
    """raw has no backing chain: qemu refuses a `backing` key on it (the config drive)."""
    drive = Disk("config", FileSource("/run/ucloud/vm/x/config-drive.iso"), "raw", read_only=True)
    options = blockdev(drive)
    assert "backing" not in options and options["read-only"] is True
    assert options["driver"] == "raw"


def test_an_rbd_disk_is_raw_over_an_rbd_node() -> None:
    """An RBD clone has its parent inside Ceph: one raw node over qemu's rbd driver, no chain."""
    disk = Disk("disk0", RbdSource("ucloud", f"vm-{UUID}-os", "/etc/ceph/ceph.conf"), "raw")
    argv = build(spec(disks=[disk]), "tcg", TAP_FDS)
    assert argv.count("-blockdev") == 1
    assert json.loads(argv[argv.index("-blockdev") + 1]) == {
        "driver": "raw",
        "node-name": "disk0",
        "read-only": False,
        "discard": "unmap",
        "file": {
            "driver": "rbd",
            "pool": "ucloud",
            "image": f"vm-{UUID}-os",
            "conf": "/etc/ceph/ceph.conf",
            "user": "admin",
        },
    }


def test_a_hot_plugged_nic_names_the_descriptor_given_over_qmp() -> None:
    nic = {"mac": "02:00:00:00:00:02", "tap": "ut020000000002", "slot": "4"}
    netdev, device = nic_options(nic, "ut020000000002")
    assert netdev == {"type": "tap", "id": "net-020000000002", "fd": "ut020000000002"}
    assert device["netdev"] == netdev["id"] and device["bus"] == "rp4"


def test_the_translation_cache_grows_with_the_guest() -> None:
    """A quarter of the guest's RAM, within 32..256 MiB (TCG only)."""
    assert [translation_cache_mib(mib * 1024**2) for mib in (64, 128, 512, 2048, 8192)] == [
        32,
        32,
        128,
        256,
        256,
    ]
