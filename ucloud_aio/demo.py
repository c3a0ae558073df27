"""`ucloud-aio demo`: a user, a VM from image tiny, booted to its ready marker."""

import time
from typing import Any

import requests

from ucloud_aio.cloud import AllInOne
from ucloud_aio.console import wait_for_marker
from ucloud_aio.guest import READY_MARKER

DEMO = "demo"


def run_demo(cloud: AllInOne, boot_timeout: float = 120.0) -> dict[str, Any]:
    """Idempotent: reuses the demo user and VM if they exist. Returns the running VM."""
    conf = cloud.state_dir / "demo.conf"
    if not conf.exists():
        answer = cloud.admin_client().response("POST", "/v1/user", {"name": DEMO, "realm": "users"})
        if answer.status_code != 201:
            raise RuntimeError(f"creating user demo failed: {answer.text}")
        account = answer.json()
        conf.write_text(
            f"api = {cloud.api_url}\nname = {DEMO}\nrealm = users\nseed = {account['seed']}\n"
            + (f"ca_file = {cloud.ca_file}\n" if cloud.ca_file else "")
        )
        conf.chmod(0o600)
    creds = dict(line.split(" = ", 1) for line in conf.read_text().splitlines())
    demo = cloud.client(DEMO, "users", creds["seed"])  # a session, cached in the state dir

    def call(method: str, path: str, body: Any = None) -> requests.Response:
        return demo.response(method, path, body)

    existing = [vm for vm in call("GET", "/v1/vm").json() if vm["name"] == DEMO]
    if existing:
        vm = existing[0]
    else:
        answer = call(
            "POST",
            "/v1/vm",
            {"name": DEMO, "cpu": 1, "ram": "256MiB", "os_ssd": "1GiB", "image": "tiny"},
        )
        if answer.status_code != 201:
            raise RuntimeError(f"creating VM demo failed: {answer.text}")
        vm = answer.json()
    deadline = time.monotonic() + boot_timeout
    while vm["status"] != "RUNNING":
        if vm["status"] == "ERROR" or time.monotonic() > deadline:
            raise RuntimeError(f"VM demo is {vm['status']}: {vm['log'][-1]}")
        time.sleep(0.2)
        vm = call("GET", f"/v1/vm/{vm['uuid']}").json()
    wait_for_marker(vm["console"]["serial_log"], READY_MARKER, max(deadline - time.monotonic(), 1))
    return vm
