"""/v1/image: register, list and delete images.

An admin registers a qcow2 file already on the image host: the image store copies it in and checks
the copy with qemu-img (no backing file, no external data file, not truncated), so later changes
to the source can neither touch VMs nor slip past the check. Names are unique per scope (public,
or one user's), claimed with a create-if-absent key. Images registered by the admin realm are
public.
"""

import os
from typing import Any

from flask import Blueprint, jsonify

from common import model
from common.auth import Caller
from common.errors import Conflict, Forbidden, InvalidInput, NotFound
from common.records import Image
from common.store import Delete, Put, Reader, absent, keys
from common.store.client import Entry
from common.validation import NAME_SCHEMA, Field, Schema, absolute_path, name
from ucloud_api import paging
from ucloud_api.context import body, caller, services
from ucloud_api.deletion import delete_unless_used

blueprint = Blueprint("images", __name__)

AVAILABLE = "AVAILABLE"  # DELETING while ucloud_api/deletion.py looks for users

REGISTER = Schema(
    "ImageRegistration",
    [
        Field("name", name, NAME_SCHEMA, help="image name, unique among public images or yours"),
        Field(
            "file",
            absolute_path,
            {"type": "string"},
            help="absolute path of a qcow2 file on the image host",
        ),
    ],
)


def scope(image: Image) -> str:
    return "public" if image["public"] else f"user/{image['owner']}"


def visible(image: Image, who: Caller) -> bool:
    return image["public"] or who.may_access(image["owner"])


def resolve(store: Reader, who: Caller, reference: str) -> Entry:
    """The image a VM request names, by uuid or name (the caller's own first, then public)."""
    entry = store.get(keys.image(reference)) if len(reference) == 36 else None
    if entry is None:
        for candidate in (f"user/{who.name}", "public"):
            pointer = store.get(keys.image_name(candidate, reference))
            if pointer is not None:
                entry = store.get(keys.image(pointer.value["uuid"]))
                break
    if entry is None or not visible(entry.value, who) or entry.value["status"] != AVAILABLE:
        raise NotFound(f"unknown image {reference!r}")
    return entry


@blueprint.post("/v1/image")
def register() -> Any:
    who = caller()
    if not who.admin:
        raise Forbidden("only the admin realm registers image files; users upload through files")
    spec = REGISTER.parse(body({"image_name": "name"}))
    svc = services()
    if not os.path.isfile(spec["file"]):
        raise InvalidInput(f"file: {spec['file']!r} does not exist or is not a regular file")
    image_uuid = model.new_uuid()
    info = svc.images.import_image(image_uuid, spec["file"])
    image: Image = {
        "uuid": image_uuid,
        "name": spec["name"],
        "owner": who.name,
        "public": True,
        "source": spec["file"],
        "format": info.format,
        "size": info.virtual_size,
        "status": AVAILABLE,
        "created": model.now(),
        "file": info.location,
    }
    name_key = keys.image_name(scope(image), image["name"])
    try:
        created = svc.store.txn(
            [absent(name_key)],
            [Put(name_key, {"uuid": image_uuid}), Put(keys.image(image_uuid), image)],
        )
        if not created.succeeded:
            raise Conflict(f"an image named {image['name']!r} already exists")
    except BaseException:
        svc.images.remove_image(image_uuid)
        raise
    return jsonify(image), 201


@blueprint.get("/v1/image")
def list_images() -> Any:
    who = caller()
    images: list[Image] = [e.value for e in services().store.list(keys.IMAGE).entries]
    shown, token = paging.memory_page([i for i in images if visible(i, who)], _uuid)
    return paging.respond(shown, token)


def _uuid(image: Image) -> str:
    return image["uuid"]


@blueprint.delete("/v1/image/<uuid>")
def delete(uuid: str) -> Any:
    who = caller()
    svc = services()
    store = svc.store
    entry = store.get(keys.image(uuid))
    if entry is None or not visible(entry.value, who):
        raise NotFound(f"unknown image {uuid!r}")
    if not who.may_access(entry.value["owner"]):
        raise Forbidden("only the image's owner or the admin realm may delete it")
    image: Image = entry.value

    def users() -> list[str]:
        vms = [e.value["uuid"] for e in store.list(keys.VM).entries if e.value.get("image") == uuid]
        # disks the store knows of (an RBD clone outliving its VM's record) count as well
        return vms or svc.images.disk_users(uuid)

    release = [Delete(keys.image(uuid)), Delete(keys.image_name(scope(image), image["name"]))]
    delete_unless_used(store, entry, users, release, "image")
    svc.images.remove_image(uuid)
    return jsonify({**image, "status": "DELETED"}), 200
