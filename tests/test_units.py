"""The service definitions in contrib/: a systemd unit and a FreeBSD rc.d script for every
daemon, each valid (`systemd-analyze verify`, `sh -n`) and as unprivileged as the daemon allows."""

import configparser
import subprocess
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
UNITS = ROOT / "contrib" / "systemd"
RC_D = ROOT / "contrib" / "rc.d"
VENV_BIN = ROOT / ".venv" / "bin"
NOT_DAEMONS = {"ucloud-cli", "ucloud-aio"}  # commands people run, not services
# Daemons that touch nothing of the host's but their own files: no root, no capability.
UNPRIVILEGED = {"ucloud-api", "ucloud-scheduler", "ucloud-host"}


def daemons() -> list[str]:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    return sorted(set(scripts) - NOT_DAEMONS)


def service(name: str) -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(UNITS / f"{name}.service")
    return parser["Service"]


def test_every_daemon_has_a_unit_and_an_rc_script() -> None:
    assert sorted(p.stem for p in UNITS.glob("*.service")) == daemons()
    assert sorted(p.name.replace("_", "-") for p in RC_D.iterdir()) == daemons()


@pytest.mark.parametrize("name", daemons())
def test_unit_verifies(name: str, tmp_path: Path) -> None:
    """systemd-analyze verify, with ExecStart pointing at this checkout's script (it checks
    the command exists); any warning fails too."""
    text = (UNITS / f"{name}.service").read_text()
    assert f"ExecStart=/opt/ucloud/bin/{name} " in text
    unit = tmp_path / f"{name}.service"
    unit.write_text(text.replace("/opt/ucloud/bin/", f"{VENV_BIN}/"))
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


@pytest.mark.parametrize("name", daemons())
def test_unit_restarts_and_is_confined(name: str) -> None:
    unit = service(name)
    assert unit["Restart"] == "always" and float(unit["RestartSec"]) <= 1
    for option in ("NoNewPrivileges", "ProtectHome", "PrivateTmp"):
        assert unit[option] == "yes", option
    assert unit["ProtectSystem"] in ("strict", "full")
    assert "CapabilityBoundingSet" in unit
    if name in UNPRIVILEGED:
        assert unit["User"] == "ucloud" and unit["CapabilityBoundingSet"] == ""
    if name == "ucloud-vm":
        assert unit["KillMode"] == "process"  # VMs outlive a restart of their agent


@pytest.mark.parametrize("script", sorted(RC_D.iterdir()), ids=lambda p: p.name)
def test_rc_script_parses(script: Path) -> None:
    assert subprocess.run(["sh", "-n", str(script)], capture_output=True).returncode == 0
    text = script.read_text()
    assert f'name="{script.name}"' in text
    assert f"/usr/local/bin/{script.name.replace('_', '-')} " in text
