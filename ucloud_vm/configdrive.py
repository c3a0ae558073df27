"""A VM's config drive: an ISO 9660 image labelled `config-2` in the OpenStack layout, which
cloud-init's ConfigDrive datasource (in every distribution's default list) reads without any
network. This is how an unmodified cloud image gets its keys on an IPv6-only network, where
cloud-init 22.x never asks fe80::a9fe:a9fe. Built at every start from the VM record and its
VM data (the same documents ucloud-meta serves, common/metadata.py), written beside the VM's
sockets and attached read-only.

    openstack/latest/meta_data.json   openstack/latest/network_data.json
    openstack/latest/user_data        (only when the VM has user data)
    ec2/<version>/meta-data.json      ec2/<version>/user-data (only with user data)

The `ec2/` tree is OpenStack's too (cloud-init reads ec2/latest/meta-data.json as the EC2
view of the instance); versions: the one OpenStack dates it with, and latest.
"""

import io
import os
from pathlib import Path

import orjson
import pycdlib

from common import metadata
from common.records import VM, VMData

LABEL = "config-2"
FILE = "config-drive.iso"
EC2_VERSIONS = ("2009-04-04", "latest")


def contents(vm: VM, data: VMData) -> dict[str, bytes]:
    """Path inside the drive -> bytes."""
    files = {
        "openstack/latest/meta_data.json": orjson.dumps(metadata.openstack_meta_data(vm, data)),
        "openstack/latest/network_data.json": orjson.dumps(metadata.network_data(vm)),
    }
    ec2 = orjson.dumps(metadata.ec2_meta_data(vm, data))
    for version in EC2_VERSIONS:
        files[f"ec2/{version}/meta-data.json"] = ec2
    if data.get("user_data") is not None:
        user_data = str(data["user_data"]).encode()
        files["openstack/latest/user_data"] = user_data
        for version in EC2_VERSIONS:
            files[f"ec2/{version}/user-data"] = user_data
    return files


def build(directory: Path, vm: VM, data: VMData) -> Path:
    """Write the drive into `directory` (under a temporary name, then renamed: a start never
    finds half a drive); returns its path. The directory is the VM's run dir, which qemu's
    user owns: the file is created anew, 0600, never through a link qemu may have left there
    (the hypervisor driver then hands it to that user)."""
    iso = pycdlib.PyCdlib()
    # Rock Ridge and Joliet carry the lower-case long names cloud-init looks for.
    iso.new(interchange_level=3, joliet=3, rock_ridge="1.09", vol_ident=LABEL)
    made: set[str] = set()
    for path, body in contents(vm, data).items():
        parts = path.split("/")
        for depth in range(1, len(parts)):
            folder = "/".join(parts[:depth])
            if folder not in made:
                iso.add_directory(
                    _iso_name(folder), rr_name=parts[depth - 1], joliet_path=f"/{folder}"
                )
                made.add(folder)
        iso.add_fp(
            io.BytesIO(body), len(body), _iso_name(path) + ";1", rr_name=parts[-1],
            joliet_path=f"/{path}",
        )  # fmt: skip
    target = directory / FILE
    partial = directory / f"{FILE}.part"
    partial.unlink(missing_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    with os.fdopen(os.open(partial, flags, 0o600), "wb") as output:
        iso.write_fp(output)
    iso.close()
    os.replace(partial, target)
    return target


def _iso_name(path: str) -> str:
    """The ISO 9660 level-3 name: upper case, letters, digits and _ only."""
    return "/" + "/".join(
        "".join(c if c.isalnum() else "_" for c in part.upper()) for part in path.split("/")
    )
