"""What the metadata service answers for a path, given the calling VM (pure).

Three forms of the same data, so both ucloud's own guests and unmodified cloud images work:
- `/ssh-keys`: the keys as plain text, one per line (the ucloud way);
- EC2 style, as cloud-init's Ec2 datasource reads it: `/latest/meta-data/...`, `/latest/user-data`;
- OpenStack style, as cloud-init's OpenStack datasource reads it over IPv6:
  `/openstack/latest/meta_data.json`, `/openstack/latest/user_data`.
User data that was not given is a 404, as on EC2 and OpenStack.
"""

from dataclasses import dataclass
from typing import Any

import orjson

from common import metadata
from common.records import VM, VMData

TEXT, JSON, BINARY = "text/plain; charset=utf-8", "application/json", "application/octet-stream"

# cloud-init asks for dated API versions before (or instead of) "latest": its EC2 datasource
# probes `<version>/meta-data/instance-id` for 2021-03-23, 2018-09-24, 2016-09-02 and 2009-04-04
# (22.x and later), its OpenStack reader picks the newest version `/openstack` lists that it
# knows. Every version is served the same documents.
EC2_VERSIONS = ("1.0", "2009-04-04", "2016-09-02", "2018-09-24", "2021-03-23")
OPENSTACK_VERSIONS = (
    "2012-08-10",
    "2013-04-04",
    "2013-10-17",
    "2015-10-15",
    "2016-06-30",
    "2016-10-06",
    "2017-02-22",
    "2018-08-27",
)


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str
    body: bytes


def _text(lines: list[str]) -> Answer:
    return Answer(200, TEXT, "".join(f"{line}\n" for line in lines).encode())


NOT_FOUND = Answer(404, TEXT, b"not found\n")


def answer(path: str, vm: VM, data: VMData) -> Answer:
    """The answer for `path` (query string removed) to the VM `vm` with its VM data `data`."""
    keys = data.get("ssh_keys", [])
    user_data = data.get("user_data")
    path = _latest("/" + path.strip("/"))
    if path == "/ssh-keys":
        return _text([key["key"] for key in keys])
    if path == "/":
        return _text([*EC2_VERSIONS, "latest", "openstack", "ssh-keys"])
    if path == "/latest":
        return _text(["meta-data/", "user-data"] if user_data is not None else ["meta-data/"])
    if path == "/latest/meta-data" or path.startswith("/latest/meta-data/"):
        return _ec2_meta(path.removeprefix("/latest/meta-data").strip("/"), vm, data)
    if path in ("/latest/user-data", "/openstack/latest/user_data"):
        return NOT_FOUND if user_data is None else Answer(200, BINARY, user_data.encode())
    if path == "/openstack":
        return _text([*OPENSTACK_VERSIONS, "latest"])
    if path == "/openstack/latest":
        return _text(["meta_data.json", *(["user_data"] if user_data is not None else [])])
    if path == "/openstack/latest/meta_data.json":
        return Answer(200, JSON, orjson.dumps(metadata.openstack_meta_data(vm, data)))
    return NOT_FOUND


def _latest(path: str) -> str:
    """A dated version's path as the same path under "latest"."""
    parts = path.split("/", 3)  # "", version or "openstack", rest...
    if len(parts) > 1 and parts[1] in EC2_VERSIONS:
        return "/".join(["", "latest", *parts[2:]])
    if len(parts) > 2 and parts[1] == "openstack" and parts[2] in OPENSTACK_VERSIONS:
        return "/".join(["", "openstack", "latest", *parts[3:]])
    return path


def _ec2_meta(rest: str, vm: VM, data: VMData) -> Answer:
    """A document of the EC2 tree, or a folder's listing (`_name` or `name/` per entry)."""
    node: Any = metadata.ec2_meta_data(vm, data)
    for part in rest.split("/") if rest else []:
        if not isinstance(node, dict) or part.startswith("_") or part not in node:
            return NOT_FOUND
        node = node[part]
    if isinstance(node, str):
        return Answer(200, TEXT, node.encode())
    return _text(
        [
            child.get("_name", f"{name}/") if isinstance(child, dict) else name
            for name, child in node.items()
            if not name.startswith("_")
        ]
    )
