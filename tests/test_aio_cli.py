"""The CLI against a live all-in-one cloud (real processes), and kill -9 of every daemon."""

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import make_qcow2, running_cloud
from tests.daemons import eventually, vm_records
from tests.test_ssh_keys import make_key
from ucloud_aio.cloud import AllInOne, venv_script
from ucloud_aio.procs import pid_alive, pids_mentioning


@pytest.fixture(scope="module")
def cloud() -> Iterator[AllInOne]:
    # Plenty of CPUs: many small VMs come and go here. A production-like 10 s host lease: an
    # etcd restart that takes longer than TTL - fence margin makes hosts fence their VMs (by
    # design; tests/test_failover.py covers that), and on a busy CI machine the 3 s default
    # leaves only 2 s for the restart.
    with running_cloud(settings={"host_cpu": "256"}, host_lease_ttl=10) as aio:
        yield aio


def cli(
    cloud: AllInOne, *args: str, env: dict[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("UCLOUD_")}
    environ.update({"UCLOUD_CONFIG": str(cloud.admin_conf), **(env or {})})
    result = subprocess.run(
        [venv_script("ucloud-cli"), *args], capture_output=True, text=True, env=environ, timeout=60
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


@pytest.fixture(scope="module")
def user_env(cloud: AllInOne) -> dict[str, str]:
    """A user 'alice' with a config file (the cloud registered the image 'tiny' itself)."""
    created = cli(cloud, "user", "create", "alice", "--realm", "users")
    conf = cloud.state_dir / "alice.conf"
    conf.write_text(
        "\n".join(line for line in created.stdout.splitlines() if not line.startswith("#")) + "\n"
    )
    return {"UCLOUD_CONFIG": str(conf)}


def test_image_commands(cloud: AllInOne, tmp_path: Path) -> None:
    source = make_qcow2(tmp_path / "extra.qcow2", "16M")
    cli(cloud, "image", "create", "extra", "--file", str(source))
    listed = json.loads(cli(cloud, "image", "list", "--json").stdout)
    assert {"tiny", "extra"} <= {image["name"] for image in listed}
    assert "extra" in cli(cloud, "image", "list").stdout
    assert "deleted image extra" in cli(cloud, "image", "delete", "extra").stdout
    again = cli(cloud, "image", "delete", "extra", check=False)
    assert again.returncode != 0 and "unknown image" in again.stderr


def test_host_list(cloud: AllInOne) -> None:
    table = cli(cloud, "host", "list").stdout
    assert cloud.host_names[0] in table and "ALIVE" in table
    hosts = json.loads(cli(cloud, "host", "list", "--json").stdout)
    assert hosts[0]["status"] == "ALIVE"


def test_vm_lifecycle_through_the_cli(cloud: AllInOne, user_env: dict[str, str]) -> None:
    argv = [
        "vm",
        "create",
        "web1",
        "--image",
        "tiny",
        "--cpu",
        "1",
        "--ram",
        "128MiB",
        "--os-ssd",
        "64MiB",
        "--hdd",
        "1GB",
        "--wait",
        "--json",
    ]
    created = json.loads(cli(cloud, *argv, env=user_env).stdout)
    assert created["specs"]["ram"] == 128 * 1024**2 and created["specs"]["hdd"] == [10**9]
    assert created["status"] == "RUNNING" and created["host"] == cloud.host_names[0]
    table = cli(cloud, "vm", "list", env=user_env).stdout
    assert "web1" in table and created["uuid"] in table and "RUNNING" in table
    text = cli(cloud, "vm", "show", created["uuid"], env=user_env).stdout
    assert "scheduled on" in text and "vnc.sock" in text and "serial.sock" in text
    stopped = json.loads(cli(cloud, "--json", "vm", "stop", "web1", "--wait", env=user_env).stdout)
    assert stopped["desired"] == "stopped" and stopped["status"] == "STOPPED"
    started = json.loads(cli(cloud, "vm", "start", "web1", "--wait", "--json", env=user_env).stdout)
    assert started["status"] == "RUNNING"
    assert "web1" in cli(cloud, "vm", "list").stdout  # the admin sees it too
    deleted = cli(cloud, "vm", "delete", "web1", "--wait", env=user_env)
    assert "DELETED" in deleted.stderr
    assert "web1" not in cli(cloud, "vm", "list", env=user_env).stdout


def test_errors_exit_nonzero_with_the_api_message(cloud: AllInOne, user_env) -> None:
    result = cli(cloud, "vm", "create", "x", "--image", "nope", env=user_env, check=False)
    assert result.returncode != 0 and "unknown image 'nope'" in result.stderr
    result = cli(
        cloud,
        "vm",
        "create",
        "x",
        "--image",
        "tiny",
        "--ram",
        "2 parsecs",
        env=user_env,
        check=False,
    )
    assert result.returncode != 0 and "unknown unit" in result.stderr
    result = cli(cloud, "host", "list", env=user_env, check=False)
    assert result.returncode != 0 and "admin realm" in result.stderr
    result = cli(cloud, "vm", "show", "no-such-vm", env=user_env, check=False)
    assert result.returncode != 0 and "no VM named" in result.stderr


def test_environment_credentials_win(cloud: AllInOne, user_env) -> None:
    conf = dict(
        line.split(" = ", 1) for line in Path(user_env["UCLOUD_CONFIG"]).read_text().splitlines()
    )
    env = {
        "UCLOUD_CONFIG": "/nonexistent",
        "UCLOUD_API": conf["api"],
        "UCLOUD_NAME": conf["name"],
        "UCLOUD_REALM": conf["realm"],
        "UCLOUD_SEED": conf["seed"],
        "UCLOUD_CA_FILE": conf["ca_file"],
    }
    assert cli(cloud, "vm", "list", "--json", env=env).returncode == 0
    wrong_seed = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
    wrong = cli(cloud, "vm", "list", env={**env, "UCLOUD_SEED": wrong_seed}, check=False)
    assert wrong.returncode != 0 and "invalid credentials" in wrong.stderr
    bad = cli(cloud, "vm", "list", env={**env, "UCLOUD_SEED": "short!"}, check=False)
    assert bad.returncode != 0 and "not a valid TOTP seed" in bad.stderr
    missing = cli(cloud, "vm", "list", env={"UCLOUD_CONFIG": "/nonexistent"}, check=False)
    assert missing.returncode != 0 and "missing" in missing.stderr


@pytest.mark.parametrize(
    "daemon",
    [
        "ucloud-api",
        "ucloud-scheduler",
        "host1.ucloud-host",
        "host1.ucloud-vm",
        "host1.ucloud-meta",
        "host1.ucloud-firewall",
        "etcd",
    ],
)
def test_kill9_of_any_daemon_loses_nothing(cloud: AllInOne, user_env, daemon: str) -> None:
    """Running VMs, kill -9 one daemon, bring the cloud up again: the same VMs on the same
    hosts, still running in the same qemu processes (none twice), and the cloud keeps working."""
    small = ["--image", "tiny", "--ram", "128MiB", "--os-ssd", "64MiB"]
    for i in range(2):
        cli(cloud, "vm", "create", f"k{i}", *small, "--wait", env=user_env)
    store = cloud.store()
    before = {v["uuid"]: (v["host"], v["status"]) for v in vm_records(store)}
    pids = {uuid: pids_mentioning(f"-uuid\0{uuid}") for uuid in before}
    pid = int((cloud.state_dir / "pids" / f"{daemon}.pid").read_text())
    os.kill(pid, 9)
    eventually(lambda: not cloud.status()[daemon])
    cloud.up()
    eventually(
        lambda: {v["uuid"]: (v["host"], v["status"]) for v in vm_records(store)} == before,
        timeout=20,
    )
    assert {uuid: pids_mentioning(f"-uuid\0{uuid}") for uuid in before} == pids
    # still works end to end
    cli(cloud, "vm", "create", f"after-{daemon}", *small, "--wait", env=user_env)
    for vm in vm_records(store):
        cli(cloud, "vm", "delete", vm["uuid"], env=user_env)
    eventually(lambda: not vm_records(store), timeout=30)
    store.close()


def test_admin_conf_and_down_leave_nothing() -> None:
    with running_cloud() as aio:
        conf = aio.admin_credentials()
        assert set(conf) == {"api", "name", "realm", "seed", "ca_file"}
        assert (aio.admin_conf.stat().st_mode & 0o777) == 0o600
        pids = [int(p.read_text()) for p in (aio.state_dir / "pids").iterdir()]
        aio.down()
        assert not any(pid_alive(pid) for pid in pids)
        assert not list((aio.state_dir / "pids").iterdir())


def test_network_commands(cloud: AllInOne, user_env) -> None:
    created = json.loads(cli(cloud, "network", "create", "lan", "--json", env=user_env).stdout)
    assert created["prefix"].endswith("::/64")
    assert "lan" in cli(cloud, "network", "list", env=user_env).stdout
    vm = json.loads(
        cli(
            cloud,
            "vm",
            "create",
            "netted",
            "--image",
            "tiny",
            "--ram",
            "128MiB",
            "--os-ssd",
            "64MiB",
            "--network",
            "lan",
            "--json",
            env=user_env,
        ).stdout
    )
    ipv6 = vm["networks"][0]["ipv6"]
    assert ipv6 in cli(cloud, "network", "show", "lan", env=user_env).stdout
    assert ipv6 in cli(cloud, "vm", "list", env=user_env).stdout
    refused = cli(cloud, "network", "delete", "lan", env=user_env, check=False)
    assert refused.returncode != 0 and "attached" in refused.stderr
    detached = json.loads(
        cli(cloud, "network", "detach", "netted", "lan", "--json", env=user_env).stdout
    )
    assert detached["networks"] == []
    cli(cloud, "vm", "delete", "netted", "--wait", env=user_env)
    assert "deleted network lan" in cli(cloud, "network", "delete", "lan", env=user_env).stdout


def test_ssh_key_commands(cloud: AllInOne, user_env, tmp_path: Path) -> None:
    key_file = tmp_path / "id.pub"
    key_file.write_text(make_key(40, comment="alice@cli") + "\n")
    added = json.loads(
        cli(cloud, "ssh-key", "add", "cli", str(key_file), "--json", env=user_env).stdout
    )
    assert added["fingerprint"].startswith("SHA256:") and added["source"] == "api"
    listed = cli(cloud, "ssh-key", "list", env=user_env).stdout
    assert "cli" in listed and added["fingerprint"] in listed and "alice@cli" in listed
    again = cli(cloud, "ssh-key", "add", "other", str(key_file), env=user_env, check=False)
    assert again.returncode != 0 and "stored already, as 'cli'" in again.stderr
    private = tmp_path / "id"
    private.write_text(
        "-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----\n"
    )
    refused = cli(cloud, "ssh-key", "add", "p", str(private), env=user_env, check=False)
    assert refused.returncode != 0 and "private key" in refused.stderr
    binary = tmp_path / "data.bin"
    binary.write_bytes(b"\xff\xfe\x00")
    bad = cli(
        cloud,
        "vm",
        "create",
        "x",
        "--image",
        "tiny",
        "--user-data",
        str(binary),
        env=user_env,
        check=False,
    )
    assert bad.returncode != 0 and "UTF-8" in bad.stderr
    vm = json.loads(
        cli(
            cloud,
            "vm",
            "create",
            "keyed",
            "--image",
            "tiny",
            "--ram",
            "128MiB",
            "--os-ssd",
            "64MiB",
            "--ssh-key",
            "cli",
            "--json",
            env=user_env,
        ).stdout
    )
    assert vm["ssh_keys"] == ["cli"]
    cli(cloud, "vm", "delete", vm["uuid"], env=user_env)
    assert "deleted ssh key cli" in cli(cloud, "ssh-key", "delete", "cli", env=user_env).stdout
    assert "cli" not in cli(cloud, "ssh-key", "list", env=user_env).stdout
