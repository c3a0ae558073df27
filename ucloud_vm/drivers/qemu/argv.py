"""qemu's command line for a VM: a pure function of the spec (tested as text, no qemu needed).

Every path the VM uses is inside its run dir <run_dir>/vm/<uuid>/ (docs/aio.md): qmp.sock,
vnc.sock, serial.sock, serial.log, qemu.pid and qemu.log (qemu's own messages). `-uuid <uuid>`
and that pidfile path are how the driver recognises its own processes after a restart.
"""

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.imagestore import Disk, RbdSource, Source
from ucloud_vm.driver import VMSpec

QEMU = "qemu-system-x86_64"
HOTPLUG_SLOTS = 8  # common.ipam.MAX_NICS
MiB = 1024 * 1024


@dataclass(frozen=True)
class Paths:
    run: Path

    @classmethod
    def of(cls, spec: VMSpec) -> "Paths":
        return cls(Path(spec.run_dir))

    @property
    def qmp(self) -> Path:
        return self.run / "qmp.sock"

    @property
    def vnc(self) -> Path:
        return self.run / "vnc.sock"

    @property
    def serial(self) -> Path:
        return self.run / "serial.sock"

    @property
    def serial_log(self) -> Path:
        return self.run / "serial.log"

    @property
    def pidfile(self) -> Path:
        return self.run / "qemu.pid"

    @property
    def log(self) -> Path:
        return self.run / "qemu.log"


def accel_args(accel: str, ram: int = 0) -> list[str]:
    if accel == "kvm":
        return ["-accel", "kvm", "-cpu", "host"]
    return ["-accel", f"tcg,tb-size={translation_cache_mib(ram)}"]


def translation_cache_mib(ram: int) -> int:
    """TCG's translation cache, host memory on top of the guest's: qemu's default of 1 GiB
    would triple a small guest's footprint, while a cache too small for the guest's working set
    of code retranslates it over and over (a systemd + cloud-init boot thrashes 32 MiB). A
    quarter of the guest's RAM, from 32 MiB (a tiny guest at ~175 MB RSS) to 256 MiB."""
    return min(max(ram // MiB // 4, 32), 256)


SMBIOS_PRODUCT = "OpenStack Nova"


def build(spec: VMSpec, accel: str, tap_fds: Mapping[str, int]) -> list[str]:
    """The command line; `tap_fds` holds the descriptor qemu inherits for each NIC's tap."""
    paths = Paths.of(spec)
    argv = [
        QEMU,
        "-name",
        f"ucloud-{spec.uuid},debug-threads=on",
        "-uuid",
        spec.uuid,
        # cloud-init's ds-identify picks its OpenStack datasource by this DMI product name;
        # ucloud-meta serves the OpenStack metadata paths at fe80::a9fe:a9fe
        "-smbios",
        f"type=1,manufacturer=ucloud,product={SMBIOS_PRODUCT},serial={spec.uuid}",
        "-machine",
        "q35",
        *accel_args(accel, spec.ram),
        "-smp",
        str(spec.cpu),
        "-m",
        f"{max(spec.ram // MiB, 1)}M",
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-vga",
        "std",
        "-vnc",
        f"unix:{paths.vnc}",
        "-chardev",
        f"socket,id=serial0,path={paths.serial},server=on,wait=off,"
        f"logfile={paths.serial_log},logappend=on",
        "-serial",
        "chardev:serial0",
        "-qmp",
        f"unix:{paths.qmp},server=on,wait=off",
        "-rtc",
        "base=utc",
        # The guest powering itself off leaves qemu waiting: the agent sees "shutdown" and
        # records that the user (inside the guest) wanted it stopped, instead of a crash.
        "-no-shutdown",
        # Nothing in a VM may make qemu spawn processes or gain privileges.
        # (This is why qemu is not started with -daemonize: its fork is refused by spawn=deny.)
        "-sandbox",
        "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
        "-pidfile",
        str(paths.pidfile),
    ]
    for index, disk in enumerate(spec.disks):
        for node in _chain(disk):
            argv += ["-blockdev", json.dumps(blockdev(node), separators=(",", ":"))]
        argv += [
            "-device",
            f"virtio-blk-pci,drive={disk.node},id=virtio-{disk.node}"
            + (",bootindex=0" if index == 0 else ""),
        ]
    # PCIe root ports, one per NIC slot: q35 hot-plugs devices only into such ports.
    for slot in range(HOTPLUG_SLOTS):
        argv += ["-device", f"pcie-root-port,id=rp{slot},chassis={slot + 1},slot={slot + 1}"]
    for nic in spec.nics:
        netdev, device = nic_options(nic, str(tap_fds[nic["tap"]]))
        argv += ["-netdev", _options(netdev), "-device", _options(device)]
    return argv


BACKED_FORMATS = ("qcow2",)  # formats with a backing chain (raw has none: no `backing` key)


def blockdev(disk: Disk) -> dict[str, Any]:
    """The -blockdev options of one block node (also QMP blockdev-add's arguments). `backing`
    is always set, to the backing node's name or null: qemu never opens a file because an
    image header names it. JSON, because key=value syntax has no null."""
    options: dict[str, Any] = {
        "driver": disk.format,
        "node-name": disk.node,
        "read-only": disk.read_only,
        "discard": "unmap",
        "file": _source(disk.source),
    }
    if disk.format in BACKED_FORMATS:
        options["backing"] = disk.backing.node if disk.backing else None
    return options


def _source(source: Source) -> dict[str, Any]:
    """The protocol node: where the bytes are, a file or an RBD image (qemu's rbd driver; the
    Ceph config file must be readable by qemu)."""
    if isinstance(source, RbdSource):
        return {
            "driver": "rbd",
            "pool": source.pool,
            "image": source.image,
            "conf": source.conf,
            "user": source.user,
        }
    return {"driver": "file", "filename": source.path, "aio": "threads"}


def _chain(disk: Disk) -> list[Disk]:
    """The disk and everything under it, bottom first: a node must exist before it is named."""
    return [*_chain(disk.backing), disk] if disk.backing else [disk]


def nic_options(nic: dict[str, str], fd: str) -> tuple[dict[str, str], dict[str, str]]:
    """The -netdev and -device options of a NIC (also the QMP netdev_add / device_add
    arguments for hot-plug): the tap ucloud-net made, handed over open as `fd` (a descriptor
    number on the command line, a name given with QMP getfd on hot-plug; tap.py says why),
    virtio-net with the VM's MAC."""
    key = nic["mac"].replace(":", "")
    netdev = {"type": "tap", "id": f"net-{key}", "fd": fd}
    device = {
        "driver": "virtio-net-pci",
        "netdev": f"net-{key}",
        "mac": nic["mac"],
        "id": f"nic-{key}",
        "bus": f"rp{nic['slot']}",
    }
    return netdev, device


def _options(values: dict[str, str]) -> str:
    first = values.get("type") or values["driver"]
    rest = [f"{k}={_escape(str(v))}" for k, v in values.items() if k not in ("type", "driver")]
    return ",".join([first, *rest])


def _escape(value: str) -> str:
    """qemu option values use ',' as separator; a literal comma is written twice."""
    return value.replace(",", ",,")
