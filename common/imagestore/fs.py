"""The filesystem image store (`image_store = fs`): images and disks are qcow2 files.

Layout under `image_dir`:
    images/<image uuid>.qcow2    registered images (read-only bases)
    disks/<vm uuid>/os.qcow2     the VM's OS disk: a qcow2 overlay on its image, resized
    disks/<vm uuid>/hddN.qcow2   extra disks, created empty
Every file is written under a temporary name and renamed into place, so a crash never leaves a
half-made image or disk that a later call would trust.
"""

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Self

from common.config import Config
from common.errors import InvalidInput, NotFound
from common.images import ImageInfo, inspect_qcow2
from common.imagestore import Disk, DiskError, FileSource, ImageStore


def _qemu_img(*args: str) -> None:
    result = subprocess.run(
        ["qemu-img", *args], capture_output=True, text=True, timeout=120, check=False
    )
    if result.returncode != 0:
        raise DiskError(f"qemu-img {args[0]} failed: {result.stderr.strip()[-300:]}")


@contextmanager
def _written(final: Path) -> Iterator[Path]:
    """A temporary name beside `final` to write to: renamed to `final` if the block succeeds,
    removed if it fails."""
    partial = final.with_name(final.name + ".part")
    try:
        yield partial
        partial.rename(final)
    finally:
        partial.unlink(missing_ok=True)


def _create_disk(disk: Path, size: int, *options: str) -> None:
    """A qcow2 disk of `size` bytes at `disk` unless one is there (it holds the VM's data)."""
    if not disk.exists():
        with _written(disk) as partial:
            _qemu_img("create", "-q", "-f", "qcow2", *options, str(partial), str(size))


class FilesystemStore(ImageStore):
    def __init__(self, image_dir: str) -> None:
        self.root = Path(image_dir)

    @classmethod
    def from_config(cls, config: Config) -> Self:
        return cls(config.image_dir)

    def _image(self, image_uuid: str) -> Path:
        return self.root / "images" / f"{image_uuid}.qcow2"

    def _vm_dir(self, vm_uuid: str) -> Path:
        return self.root / "disks" / vm_uuid

    def import_image(self, image_uuid: str, source_path: str) -> ImageInfo:
        if not os.path.isfile(source_path):
            raise InvalidInput(f"{source_path!r} does not exist or is not a regular file")
        image = self._image(image_uuid)
        image.parent.mkdir(parents=True, exist_ok=True)
        with _written(image) as partial:
            shutil.copyfile(source_path, partial)
            info = inspect_qcow2(str(partial), name=source_path)
        return replace(info, location=str(image))

    def remove_image(self, image_uuid: str) -> None:
        self._image(image_uuid).unlink(missing_ok=True)

    def prepare_vm_disks(
        self, vm_uuid: str, image_uuid: str, os_size: int, hdd_sizes: list[int]
    ) -> list[Disk]:
        directory = self._vm_dir(vm_uuid)
        directory.mkdir(parents=True, exist_ok=True)
        base, os_disk = self._image(image_uuid), directory / "os.qcow2"
        if not os_disk.exists() and not base.is_file():
            raise NotFound(f"image file {base} is missing")
        # The header's backing name is for qemu-img tools; qemu gets the base as `backing`.
        _create_disk(os_disk, os_size, "-b", str(base), "-F", "qcow2")
        image = Disk("disk0-base", FileSource(str(base)), read_only=True)
        disks = [Disk("disk0", FileSource(str(os_disk)), backing=image)]
        for index, size in enumerate(hdd_sizes):
            hdd = directory / f"hdd{index}.qcow2"
            _create_disk(hdd, size)
            disks.append(Disk(f"disk{index + 1}", FileSource(str(hdd))))
        return disks

    def remove_vm_disks(self, vm_uuid: str) -> None:
        shutil.rmtree(self._vm_dir(vm_uuid), ignore_errors=True)
