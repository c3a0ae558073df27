"""The CLI against a live all-in-one cloud (real processes), and kill -9 of every daemon."""

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from common.store import keys
from tests.conftest import make_qcow2
from tests.daemons import eventually, vm_records
from ucloud_aio.cloud import AllInOne, venv_script
from ucloud_aio.procs import free_port


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AllInOne]:
    # Plenty of CPUs: VMs deleted here keep their reservation until a VM agent releases them.
    aio = AllInOne(
        tmp_path_factory.mktemp("aio"), api_port=free_port(), settings={"host_cpu": "256"}
    )
    try:
        aio.up()
        yield aio
    finally:
        aio.down()


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
def user_env(cloud: AllInOne, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A user 'alice' with a config file, and the image 'tiny' registered."""
    image = make_qcow2(tmp_path_factory.mktemp("img") / "tiny.qcow2", "32M")
    cli(cloud, "image", "create", "tiny", "--file", str(image))
    created = cli(cloud, "user", "create", "alice", "--realm", "users")
    conf = cloud.state_dir / "alice.conf"
    conf.write_text(
        "\n".join(line for line in created.stdout.splitlines() if not line.startswith("#")) + "\n"
    )
    return {"UCLOUD_CONFIG": str(conf)}


def test_host_list(cloud: AllInOne) -> None:
    table = cli(cloud, "host", "list").stdout
    assert cloud.hostname in table and "ALIVE" in table
    hosts = json.loads(cli(cloud, "host", "list", "--json").stdout)
    assert hosts[0]["status"] == "ALIVE"


def test_vm_lifecycle_through_the_cli(cloud: AllInOne, user_env: dict[str, str]) -> None:
    created = json.loads(
        cli(
            cloud,
            "vm",
            "create",
            "web1",
            "--image",
            "tiny",
            "--cpu",
            "1",
            "--ram",
            "256MiB",
            "--os-ssd",
            "1GiB",
            "--hdd",
            "1GB",
            "--json",
            env=user_env,
        ).stdout
    )
    assert created["specs"]["ram"] == 256 * 1024**2 and created["specs"]["hdd"] == [10**9]
    # placed on the live host by the scheduler
    shown = eventually(
        lambda: (lambda v: v if v["host"] else None)(
            json.loads(cli(cloud, "vm", "show", "web1", "--json", env=user_env).stdout)
        )
    )
    assert shown["host"] == cloud.hostname and shown["status"] == "SCHEDULED"
    table = cli(cloud, "vm", "list", env=user_env).stdout
    assert "web1" in table and created["uuid"] in table
    text = cli(cloud, "vm", "show", created["uuid"], env=user_env).stdout
    assert "scheduled on" in text
    assert (
        json.loads(cli(cloud, "--json", "vm", "stop", "web1", env=user_env).stdout)["desired"]
        == "stopped"
    )
    assert (
        json.loads(cli(cloud, "vm", "start", "web1", "--json", env=user_env).stdout)["desired"]
        == "running"
    )
    assert (
        json.loads(cli(cloud, "vm", "delete", "web1", "--json", env=user_env).stdout)["desired"]
        == "deleted"
    )
    # the admin sees it too
    assert "web1" in cli(cloud, "vm", "list").stdout


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
    }
    assert cli(cloud, "vm", "list", "--json", env=env).returncode == 0
    wrong_seed = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
    wrong = cli(cloud, "vm", "list", env={**env, "UCLOUD_SEED": wrong_seed}, check=False)
    assert wrong.returncode != 0 and "invalid credentials" in wrong.stderr
    bad = cli(cloud, "vm", "list", env={**env, "UCLOUD_SEED": "short!"}, check=False)
    assert bad.returncode != 0 and "not a valid TOTP seed" in bad.stderr
    missing = cli(cloud, "vm", "list", env={"UCLOUD_CONFIG": "/nonexistent"}, check=False)
    assert missing.returncode != 0 and "missing" in missing.stderr


@pytest.mark.parametrize("daemon", ["ucloud-api", "ucloud-scheduler", "ucloud-host", "etcd"])
def test_kill9_of_any_daemon_loses_nothing(cloud: AllInOne, user_env, daemon: str) -> None:
    """Create VMs, kill -9 one daemon, bring the cloud up again: the same VMs, none twice,
    and the cloud keeps working."""
    for i in range(3):
        cli(cloud, "vm", "create", f"k{i}", "--image", "tiny", env=user_env)
    store = cloud.store()
    before = eventually(
        lambda: (lambda vs: vs if all(v["host"] for v in vs) else None)(vm_records(store))
    )
    pid = int((cloud.state_dir / "pids" / f"{daemon}.pid").read_text())
    os.kill(pid, 9)
    eventually(lambda: not cloud.status()[daemon])
    cloud.up()
    after = eventually(
        lambda: (lambda vs: vs if all(v["host"] for v in vs) else None)(vm_records(store)),
        timeout=20,
    )
    assert sorted(v["uuid"] for v in after) == sorted(v["uuid"] for v in before)
    assert {v["uuid"]: v["host"] for v in after} == {v["uuid"]: v["host"] for v in before}
    # still works end to end
    cli(cloud, "vm", "create", f"after-{daemon}", "--image", "tiny", env=user_env)
    for vm in vm_records(store):
        cli(cloud, "vm", "delete", vm["uuid"], env=user_env, check=False)
    store.close()


def test_admin_conf_and_down_leave_nothing(tmp_path: Path) -> None:
    aio = AllInOne(tmp_path / "aio", api_port=free_port())
    aio.up()
    conf = dict(line.split(" = ", 1) for line in aio.admin_conf.read_text().splitlines())
    assert set(conf) == {"api", "name", "realm", "seed"}
    assert (aio.admin_conf.stat().st_mode & 0o777) == 0o600
    pids = [int(p.read_text()) for p in (aio.state_dir / "pids").iterdir()]
    aio.down()
    from ucloud_aio.procs import pid_alive

    assert not any(pid_alive(pid) for pid in pids)
    assert not list((aio.state_dir / "pids").iterdir())
    _ = keys
