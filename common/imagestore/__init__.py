"""The image store interface: the one owner of image files and VM disks, from registering an
image to deleting a VM's disks. Stores: the filesystem (`fs`, the default) and Ceph RBD (`rbd`,
common/imagestore/drivers/rbd.py) behind the same methods (docs/images.md).

A disk leaves the store as a block-device spec (`Disk`), never as a path: the hypervisor driver
maps the spec to its own syntax, so a store whose disks are not files (RBD) needs no change
above it, and every backing chain is spelled out by the store instead of read from an image
header (a header is data a guest or an uploader controls).
"""

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Self

from common.config import Config
from common.errors import UcloudError
from common.images import ImageInfo
from common.registry import Registry


class DiskError(UcloudError):
    """A disk could not be made; the message says why (shown in the VM's log)."""


@dataclass(frozen=True)
class FileSource:
    """A disk held in a file on this host (or on storage all hosts mount at the same path)."""

    path: str


@dataclass(frozen=True)
class RbdSource:
    """A disk held in Ceph RBD image `image` of `pool`, reached through the cluster that the
    config file `conf` (readable by the hypervisor) names, as client `user`."""

    pool: str
    image: str
    conf: str
    user: str = "admin"


Source = FileSource | RbdSource


@dataclass(frozen=True)
class Disk:
    """One block device of a VM, with the whole chain under it.

    `backing` is the disk this one is an overlay on, opened explicitly (None: no backing at
    all, whatever the image header says). `node` names the block node; it is unique within a
    VM and stable across starts, so a later live migration can address the same node."""

    node: str
    source: Source
    format: str = "qcow2"
    backing: "Disk | None" = None
    read_only: bool = False


class ImageStore(ABC):
    @classmethod
    @abstractmethod
    def from_config(cls, config: Config) -> Self:
        """The store the config describes (how IMAGE_STORES builds it)."""

    @abstractmethod
    def import_image(self, image_uuid: str, source_path: str) -> ImageInfo:
        """Copy the qcow2 file at `source_path` into the store as image `image_uuid` and check
        the copy (never the source, which may change meanwhile) with inspect_qcow2. Raises
        InvalidInput when the source is not a regular file or the copy is refused. On any
        failure nothing of the image is left in the store. ImageInfo.location says where the
        image now is (shown in the image record as `file`)."""

    @abstractmethod
    def remove_image(self, image_uuid: str) -> None:
        """Delete the image (idempotent). The caller makes sure no VM disk is based on it; a
        store that knows of one anyway refuses (Conflict) and keeps the image."""

    def disk_users(self, image_uuid: str) -> list[str]:
        """VMs (uuids) whose disks the store itself knows to be based on the image, e.g. RBD
        clones that outlived their VM's record; checked with the records before a delete."""
        return []

    @abstractmethod
    def prepare_vm_disks(
        self, vm_uuid: str, image_uuid: str, os_size: int, hdd_sizes: list[int]
    ) -> list[Disk]:
        """The VM's disks, OS disk first (an overlay on the image, `os_size` bytes big) then one
        empty disk per `hdd_sizes` entry. Creates any that are missing; existing ones are kept
        (they hold the VM's data). Raises NotFound when the image is gone, DiskError when a disk
        cannot be made; a failure never leaves a half-made disk that a later call would trust."""

    @abstractmethod
    def remove_vm_disks(self, vm_uuid: str) -> None:
        """Delete every disk of the VM (idempotent)."""


IMAGE_STORES: Registry[ImageStore] = Registry(
    "image store",
    "image_store",
    {
        "fs": "common.imagestore.fs:FilesystemStore",
        "rbd": "common.imagestore.drivers.rbd:RbdStore",
    },
)
