"""Helpers for tests on a running cloud: an admin API client, and a watcher that checks
continuously that no VM ever has two qemu processes (all lab namespaces share one /proc)."""

import os
import threading
from collections import Counter
from pathlib import Path
from typing import Any

from tests.daemons import eventually
from ucloud_aio.cloud import AllInOne
from ucloud_cli.client import Client as ApiClient

# Every TOTP seed a lab test held (the admin's and every user's it created): running_cloud checks
# that no log of the lab contains one. Seeds are secrets: shown once, on creation, never logged.
SEEDS: set[str] = set()


class Client:
    """The API of a running cloud as the admin, or as `creds` ({name, realm, seed})."""

    def __init__(self, cloud: AllInOne, creds: dict[str, str] | None = None) -> None:
        self.cloud = cloud
        self.creds = creds or cloud.admin_credentials()
        SEEDS.add(self.creds["seed"])
        # a session cached like the CLI's: every Client of the admin shares one
        ca = cloud.ca_file
        self.api = ApiClient.of(
            cloud.api_url,
            self.creds["name"],
            self.creds["realm"],
            self.creds["seed"],
            str(ca) if ca else None,
        )

    def new_user(self, name: str) -> "Client":
        """Create a local user (as the admin) and return a client acting as it."""
        account = self.call("POST", "/v1/user", {"name": name, "realm": "users"}, 201)
        return Client(self.cloud, account)

    def call(self, method: str, path: str, body: Any = None, expect: int = 200) -> Any:
        answer = self.api.response(method, path, body)
        assert answer.status_code == expect, answer.text
        return answer.json()

    def create(self, name: str, **extra: Any) -> dict[str, Any]:
        body = {
            "name": name,
            "cpu": 1,
            "ram": "128MiB",
            "os_ssd": "64MiB",
            "image": "tiny",
            **extra,
        }
        return self.call("POST", "/v1/vm", body, 201)

    def vm(self, uuid: str) -> dict[str, Any] | None:
        answer = self.api.response("GET", f"/v1/vm/{uuid}")
        return None if answer.status_code == 404 else answer.json()

    def wait(self, uuid: str, timeout: float = 30, **fields: Any) -> dict[str, Any]:
        """Until the VM's fields have these values."""

        def matches() -> dict[str, Any] | None:
            vm = self.vm(uuid)
            return vm if vm and all(vm.get(k) == v for k, v in fields.items()) else None

        return eventually(matches, timeout=timeout)

    def wait_elsewhere(self, uuid: str, old_host: str, timeout: float = 30) -> dict[str, Any]:
        """Until the VM runs on a host other than old_host."""

        def moved() -> dict[str, Any] | None:
            vm = self.vm(uuid)
            return (
                vm
                if vm and vm["host"] not in (None, old_host) and vm["status"] == "RUNNING"
                else None
            )

        return eventually(moved, timeout=timeout)

    def host(self, name: str) -> dict[str, Any]:
        return next(h for h in self.call("GET", "/v1/host") if h["hostname"] == name)

    def delete_all(self) -> None:
        for vm in self.call("GET", "/v1/vm"):
            self.api.response("DELETE", f"/v1/vm/{vm['uuid']}")
        eventually(lambda: self.call("GET", "/v1/vm") == [], timeout=60)


def qemu_processes() -> dict[int, str]:
    """pid -> -uuid of every live qemu on the machine (zombies have an empty command line)."""
    found = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            args = Path(entry.path, "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if args and args[0].startswith(b"qemu-system") and b"-uuid" in args:
            found[int(entry.name)] = args[args.index(b"-uuid") + 1].decode()
    return found


def qemu_uuids() -> list[str]:
    return list(qemu_processes().values())


class DuplicateWatch:
    """Scans every 20 ms; `worst` is the highest number of qemus ever seen for one VM."""

    def __init__(self) -> None:
        self.worst: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "DuplicateWatch":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            for uuid, count in Counter(qemu_uuids()).items():
                self.worst[uuid] = max(self.worst[uuid], count)

    def assert_never_twice(self) -> None:
        twice = {uuid: n for uuid, n in self.worst.items() if n > 1}
        assert not twice, f"VMs that ran twice at some moment: {twice}"
