"""`ucloud-cli image`: register, list and delete the images VMs boot from."""

import click

from ucloud_cli import output
from ucloud_cli.commands import Session, add_list, pass_session_json, the_one

COLUMNS: list[output.Column] = [
    *output.fields("uuid", "name", "owner"),
    ("public", lambda i: "yes" if i["public"] else "no"),
    ("size", lambda i: output.size(i["size"])),
    ("status", lambda i: i["status"]),
]

group = click.Group("image", help="Images VMs boot from.")


@group.command("create")
@click.argument("name")
@click.option(
    "--file", "file_path", required=True, help="absolute path of a qcow2 file on the image host"
)
@pass_session_json
def image_create(session: Session, name: str, file_path: str) -> None:
    """Register a qcow2 file already on the image host (admin)."""
    click.echo(f"checking and importing {file_path} ...", err=True)
    record = session.client.post("/v1/image", {"name": name, "file": file_path})
    output.emit(session.json, record, COLUMNS)


add_list(group, "/v1/image", COLUMNS, "List the images you can use.")


@group.command("delete")
@click.argument("image_ref", metavar="IMAGE")
@pass_session_json
def image_delete(session: Session, image_ref: str) -> None:
    """Delete an image no VM uses (by uuid or name)."""
    client = session.client
    matches = [i for i in client.get("/v1/image") if image_ref in (i["uuid"], i["name"])]
    uuid = the_one(matches, "images", image_ref, f"unknown image {image_ref!r}")["uuid"]
    record = client.delete(f"/v1/image/{uuid}")
    output.emit(
        session.json, record, lambda r: click.echo(f"deleted image {r['name']} ({r['uuid']})")
    )
