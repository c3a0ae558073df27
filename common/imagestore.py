"""Image stores: where image files and VM disks live. The filesystem store is the default (Ceph
RBD comes later behind the same interface).

Layout under `image_dir`:
    images/<image uuid>.qcow2    registered images (read-only bases)
    disks/<vm uuid>/os.qcow2     the VM's OS disk: a qcow2 overlay on its image, resized
    disks/<vm uuid>/hddN.qcow2   extra disks, created empty
Every disk is created under a temporary name and renamed into place, so a crash never leaves a
half-made disk that a later start would trust.
"""

import shutil
import subprocess
from abc import ABC, abstractmethod
from pathlib import Path

from common.errors import NotFound, UcloudError


class DiskError(UcloudError):
    """A disk could not be made; the message says why (shown in the VM's log)."""


class ImageStore(ABC):
    @abstractmethod
    def image_path(self, image_uuid: str) -> str:
        """Where a registered image's file is (for a VM record's `image`)."""

    @abstractmethod
    def ensure_vm_disks(
        self, vm_uuid: str, image_uuid: str, os_size: int, hdd_sizes: list[int]
    ) -> list[str]:
        """The VM's disks, creating any that are missing (existing ones are kept: they hold the
        VM's data). Returns their paths, OS disk first. Raises NotFound when the image file is
        gone, DiskError when qemu-img fails."""

    @abstractmethod
    def remove_vm_disks(self, vm_uuid: str) -> None:
        """Delete every disk of the VM (idempotent)."""


def _qemu_img(*args: str) -> None:
    result = subprocess.run(
        ["qemu-img", *args], capture_output=True, text=True, timeout=120, check=False
    )
    if result.returncode != 0:
        raise DiskError(f"qemu-img {args[0]} failed: {result.stderr.strip()[-300:]}")


class FilesystemStore(ImageStore):
    def __init__(self, image_dir: str) -> None:
        self.root = Path(image_dir)

    def image_path(self, image_uuid: str) -> str:
        return str(self.root / "images" / f"{image_uuid}.qcow2")

    def vm_dir(self, vm_uuid: str) -> Path:
        return self.root / "disks" / vm_uuid

    def ensure_vm_disks(
        self, vm_uuid: str, image_uuid: str, os_size: int, hdd_sizes: list[int]
    ) -> list[str]:
        directory = self.vm_dir(vm_uuid)
        directory.mkdir(parents=True, exist_ok=True)
        os_disk = directory / "os.qcow2"
        if not os_disk.exists():
            base = Path(self.image_path(image_uuid))
            if not base.is_file():
                raise NotFound(f"image file {base} is missing")
            partial = directory / "os.qcow2.part"
            _qemu_img(
                "create",
                "-q",
                "-f",
                "qcow2",
                "-b",
                str(base),
                "-F",
                "qcow2",
                str(partial),
                str(os_size),
            )
            partial.rename(os_disk)
        paths = [str(os_disk)]
        for index, size in enumerate(hdd_sizes):
            disk = directory / f"hdd{index}.qcow2"
            if not disk.exists():
                partial = directory / f"hdd{index}.qcow2.part"
                _qemu_img("create", "-q", "-f", "qcow2", str(partial), str(size))
                partial.rename(disk)
            paths.append(str(disk))
        return paths

    def remove_vm_disks(self, vm_uuid: str) -> None:
        shutil.rmtree(self.vm_dir(vm_uuid), ignore_errors=True)


def from_config(config: object) -> ImageStore:
    return FilesystemStore(config.image_dir)  # type: ignore[attr-defined]
