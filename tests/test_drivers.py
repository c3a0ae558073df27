"""Driver registries as the daemons use them: a registered fake driver runs a real daemon, and
an unknown driver name stops a daemon at start-up with the choices."""

import subprocess
import sys

import pytest

from common.drivers import TENANT_LINKS
from common.store import keys
from tests.daemons import eventually, write_conf
from tests.fake_drivers import FakeHostFacts
from ucloud_aio.cloud import venv_script
from ucloud_net.drivers import NETWORKS


def test_ucloud_host_reports_what_a_fake_host_facts_driver_measures(
    store, etcd_server, tmp_path, daemons
) -> None:
    conf = write_conf(
        tmp_path / "host.conf",
        etcd_endpoints=etcd_server.endpoint,
        hostname="fake",
        host_facts="fake",
        run_dir=tmp_path / "run",
        image_dir=tmp_path / "images",
        metrics_port=0,
        host_report_interval=0.5,
    )
    daemons.run(
        [sys.executable, "-m", "tests.fake_drivers", "ucloud_host", "--config", str(conf)], "host"
    )
    record = eventually(lambda: (r := store.get(keys.host("fake"))) and "usage" in r.value and r)
    assert record.value["capacity"] == FakeHostFacts.CAPACITY
    assert record.value["usage"] == FakeHostFacts.USAGE


@pytest.mark.parametrize(
    ("daemon", "option", "message"),
    [
        ("ucloud-host", "host_facts", "unknown host facts driver 'nonesuch' (choices: linux)"),
        ("ucloud-net", "network_driver", "unknown network driver 'nonesuch' (choices: linux)"),
        ("ucloud-ipam", "network_driver", "unknown network driver 'nonesuch' (choices: linux)"),
        ("ucloud-meta", "network_driver", "unknown network driver 'nonesuch' (choices: linux)"),
        ("ucloud-vm", "hypervisor", "unknown hypervisor driver 'nonesuch' (choices: qemu)"),
        ("ucloud-firewall", "firewall", "unknown firewall driver 'nonesuch' (choices: nft, pf)"),
    ],
)
def test_unknown_driver_stops_the_daemon_with_the_choices(
    tmp_path, daemon, option, message
) -> None:
    conf = write_conf(
        tmp_path / "d.conf",
        etcd_endpoints="127.0.0.1:1",  # never reached: the driver is chosen first
        underlay_address="fd00::1",
        run_dir=tmp_path / "run",
        metrics_port=0,
        **{option: "nonesuch"},
    )
    done = subprocess.run(
        [venv_script(daemon), "--config", str(conf)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2, done.stderr
    assert f"Error: {option}: {message}" in done.stderr


def test_one_network_driver_name_chooses_both_network_interfaces() -> None:
    assert NETWORKS.names() == TENANT_LINKS.names() == ["linux"]
