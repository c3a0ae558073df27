"""TLS end to end (docs/tls.md): ucloud-aio's throwaway CA, etcd with client certificates, the API
over HTTPS, the CLI verifying it; and every way of getting it wrong ends with a clear error."""

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from common import config as configuration
from common.errors import ConfigError, Unavailable
from common.store import Store
from common.store.client import canonical_address
from common.tls import EtcdClientTls, api_server_tls, etcd_client_tls
from tests.conftest import running_cloud
from tests.daemons import write_conf
from ucloud_aio import pki
from ucloud_aio.cloud import AllInOne, venv_script
from ucloud_aio.etcd import EtcdServer, EtcdTls

LOCAL = ["127.0.0.1", "::1", "localhost"]


def tls_config(**values: str) -> configuration.Config:
    return configuration.load("/dev/null", environ={}, overrides=values)


# -- the CA ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lab_pki(tmp_path_factory: pytest.TempPathFactory) -> pki.Pki:
    return pki.make(tmp_path_factory.mktemp("pki") / "tls", LOCAL, LOCAL)


@pytest.fixture(scope="module")
def other_pki(tmp_path_factory: pytest.TempPathFactory) -> pki.Pki:
    """Another CA with the same names: right addresses, wrong signer."""
    return pki.make(tmp_path_factory.mktemp("other") / "tls", LOCAL, LOCAL)


def test_pki_files_keys_private_and_chain_to_the_ca(lab_pki: pki.Pki) -> None:
    assert (lab_pki.directory.stat().st_mode & 0o777) == 0o700
    for pair in (lab_pki.api, lab_pki.etcd, lab_pki.client):
        assert (pair.key.stat().st_mode & 0o777) == 0o600
        assert (
            "EC PRIVATE KEY" in pair.key.read_text() or "BEGIN PRIVATE KEY" in pair.key.read_text()
        )
        check = subprocess.run(
            ["openssl", "verify", "-CAfile", str(lab_pki.ca), str(pair.cert)],
            capture_output=True,
            text=True,
        )
        assert check.returncode == 0, check.stdout + check.stderr
    assert (lab_pki.ca_key.stat().st_mode & 0o777) == 0o600
    text = subprocess.run(
        ["openssl", "x509", "-noout", "-text", "-in", str(lab_pki.api.cert)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "prime256v1" in text or "P-256" in text
    assert "IP Address:127.0.0.1" in text and "IP Address:0:0:0:0:0:0:0:1" in text
    assert "DNS:localhost" in text


def test_pki_make_again_keeps_what_fits(tmp_path: Path) -> None:
    first = pki.make(tmp_path / "tls", LOCAL, LOCAL)
    before = {p.name: p.read_bytes() for p in first.directory.iterdir()}
    pki.make(tmp_path / "tls", LOCAL, LOCAL)
    assert {p.name: p.read_bytes() for p in first.directory.iterdir()} == before
    pki.make(tmp_path / "tls", LOCAL, [*LOCAL, "fd42::fe"])  # etcd gets another address
    after = {p.name: p.read_bytes() for p in first.directory.iterdir()}
    changed = {name for name in before if before[name] != after[name]}
    assert changed == {"etcd.crt", "etcd.key", "names.json"}


# -- bad configuration: ConfigError naming the option, exit status 2 --------------------------


def test_config_errors_name_the_option(lab_pki: pki.Pki, tmp_path: Path) -> None:
    assert etcd_client_tls(tls_config()) is None
    assert api_server_tls(tls_config()) is None
    with pytest.raises(ConfigError, match=r"etcd_cert: /nonexistent/client.crt: no such file"):
        etcd_client_tls(tls_config(etcd_cert="/nonexistent/client.crt", etcd_key="/x"))
    with pytest.raises(ConfigError, match="etcd_cert and etcd_key go together"):
        etcd_client_tls(tls_config(etcd_cert=str(lab_pki.client.cert)))
    with pytest.raises(ConfigError, match=r"etcd_ca: .*no PEM certificate"):
        etcd_client_tls(tls_config(etcd_ca=str(lab_pki.client.key)))
    with pytest.raises(ConfigError, match=r"etcd_ca: .*is a directory"):
        etcd_client_tls(tls_config(etcd_ca=str(tmp_path)))
    with pytest.raises(ConfigError, match=r"api_tls_cert .* and api_tls_key .* do not go together"):
        api_server_tls(
            tls_config(api_tls_cert=str(lab_pki.api.cert), api_tls_key=str(lab_pki.client.key))
        )
    with pytest.raises(ConfigError, match="api_tls_cert and api_tls_key go together"):
        api_server_tls(tls_config(api_tls_key=str(lab_pki.api.key)))
    unreadable = tmp_path / "unreadable.key"
    unreadable.write_text("-----BEGIN PRIVATE KEY-----\n")
    unreadable.chmod(0)
    if os.geteuid() != 0:  # root reads anything
        with pytest.raises(ConfigError, match=r"api_tls_key: .*permission denied"):
            api_server_tls(
                tls_config(api_tls_cert=str(lab_pki.api.cert), api_tls_key=str(unreadable))
            )
    good = etcd_client_tls(
        tls_config(
            etcd_ca=str(lab_pki.ca),
            etcd_cert=str(lab_pki.client.cert),
            etcd_key=str(lab_pki.client.key),
        )
    )
    assert good is not None and good.ca == lab_pki.ca.read_bytes()


@pytest.mark.parametrize(
    ("daemon", "values", "option"),
    [
        (
            "ucloud-api",
            {"api_tls_cert": "/nonexistent/api.crt", "api_tls_key": "/x"},
            "api_tls_cert",
        ),
        ("ucloud-api", {"etcd_ca": "/nonexistent/ca.crt"}, "etcd_ca"),
        ("ucloud-scheduler", {"etcd_ca": "/nonexistent/ca.crt"}, "etcd_ca"),
        ("ucloud-host", {"etcd_cert": "/nonexistent/c.crt", "etcd_key": "/k"}, "etcd_cert"),
    ],
)
def test_daemon_refuses_missing_cert_at_start(
    tmp_path: Path, daemon: str, values: dict[str, str], option: str
) -> None:
    conf = write_conf(tmp_path / "ucloud.conf", etcd_endpoints="127.0.0.1:1", **values)
    result = subprocess.run(
        [venv_script(daemon), "--config", str(conf)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2, result.stderr
    assert f"{option}: /nonexistent/" in result.stderr
    assert "Traceback" not in result.stderr


# -- etcd over TLS with client certificates --------------------------------------------------


def test_canonical_address() -> None:
    assert canonical_address("[fd42:04dd::fe]:2379") == "[fd42:4dd::fe]:2379"
    assert canonical_address("[fd42:0:0::1]:1") == "[fd42::1]:1"
    for unchanged in ("127.0.0.1:2379", "[::1]:2379", "etcd1:2379", "[not-an-ip]:1"):
        assert canonical_address(unchanged) == unchanged


@pytest.fixture(scope="module")
def tls_etcd(lab_pki: pki.Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdServer]:
    base = tmp_path_factory.mktemp("tls-etcd")
    tls = EtcdTls(
        lab_pki.ca, lab_pki.etcd.cert, lab_pki.etcd.key, lab_pki.client.cert, lab_pki.client.key
    )
    server = EtcdServer(
        base / "data", log_path=str(base / "etcd.log"), extra_hosts=["::1"], tls=tls
    ).start()
    yield server
    server.stop()


def client_tls(ca: Path, pair: pki.Pair | None) -> EtcdClientTls:
    return EtcdClientTls(
        ca.read_bytes(),
        pair.cert.read_bytes() if pair else None,
        pair.key.read_bytes() if pair else None,
        str(ca),
    )


def test_etcd_tls_with_client_certificate(lab_pki: pki.Pki, tls_etcd: EtcdServer) -> None:
    config = tls_config(
        etcd_endpoints=f"127.0.0.1:{tls_etcd.client_port},[::1]:{tls_etcd.client_port}",
        etcd_ca=str(lab_pki.ca),
        etcd_cert=str(lab_pki.client.cert),
        etcd_key=str(lab_pki.client.key),
    )
    store = Store.from_config(config)
    try:
        store.put("/tls-test/one", {"over": "tls"})
        assert store.get("/tls-test/one").value == {"over": "tls"}
        # the IPv6 endpoint too (its certificate names ::1), however the address is spelled
        # (gRPC compares the certificate's IP SANs as text: the store writes them canonically)
        for spelling in ("::1", "0000:0::0001"):
            v6 = Store([f"[{spelling}]:{tls_etcd.client_port}"], tls=store.tls)
            assert v6.get("/tls-test/one").value == {"over": "tls"}
            v6.close()
    finally:
        store.close()


def test_etcd_refuses_client_without_certificate(lab_pki: pki.Pki, tls_etcd: EtcdServer) -> None:
    store = Store(
        [tls_etcd.endpoint], timeout=0.5, retry_deadline=1.0, tls=client_tls(lab_pki.ca, None)
    )
    with pytest.raises(Unavailable, match="etcd refused this client's certificate"):
        store.get("/tls-test/one")
    store.close()


def test_etcd_refuses_client_certificate_of_another_ca(
    lab_pki: pki.Pki, other_pki: pki.Pki, tls_etcd: EtcdServer
) -> None:
    tls = client_tls(lab_pki.ca, other_pki.client)
    store = Store([tls_etcd.endpoint], timeout=0.5, retry_deadline=1.0, tls=tls)
    with pytest.raises(Unavailable, match="etcd refused this client's certificate"):
        store.get("/tls-test/one")
    store.close()


def test_etcd_wrong_ca_is_a_clear_error(other_pki: pki.Pki, tls_etcd: EtcdServer) -> None:
    store = Store(
        [tls_etcd.endpoint],
        timeout=0.5,
        retry_deadline=1.0,
        tls=client_tls(other_pki.ca, other_pki.client),
    )
    with pytest.raises(Unavailable) as caught:
        store.get("/tls-test/one")
    store.close()
    assert "CERTIFICATE_VERIFY_FAILED" in caught.value.message
    assert f"not signed by etcd_ca {other_pki.ca}" in caught.value.message


def test_plain_client_to_tls_etcd_gets_a_hint(tls_etcd: EtcdServer) -> None:
    store = Store([tls_etcd.endpoint], timeout=0.5, retry_deadline=1.0)
    with pytest.raises(Unavailable, match="set etcd_ca, etcd_cert and etcd_key"):
        store.get("/tls-test/one")
    store.close()


# -- ucloud-aio: TLS everywhere, end to end --------------------------------------------------


@pytest.fixture(scope="module")
def cloud() -> Iterator[AllInOne]:
    with running_cloud() as aio:
        yield aio


def cli(
    cloud: AllInOne, *args: str, conf: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("UCLOUD_")}
    environ.update({"UCLOUD_CONFIG": str(conf or cloud.admin_conf), **(env or {})})
    return subprocess.run(
        [venv_script("ucloud-cli"), *args], capture_output=True, text=True, env=environ, timeout=60
    )


def test_aio_is_tls_by_default(cloud: AllInOne) -> None:
    assert cloud.tls and cloud.api_url.startswith("https://[::1]:")
    creds = cloud.admin_credentials()
    assert creds["api"] == cloud.api_url and creds["ca_file"] == str(cloud.pki.ca)
    for conf in [cloud.conf_path, *(cloud.host_dir(h) / "ucloud.conf" for h in cloud.host_names)]:
        values = configuration.read_file(conf)
        assert values["etcd_cert"] == str(cloud.pki.client.cert), conf
        assert values["etcd_ca"] == str(cloud.pki.ca), conf
    assert configuration.read_file(cloud.conf_path)["api_tls_cert"] == str(cloud.pki.api.cert)
    for key in cloud.pki.directory.glob("*.key"):
        assert (key.stat().st_mode & 0o777) == 0o600, key
    # the API's certificate names both loopback addresses
    for host in ("[::1]", "127.0.0.1", "localhost"):
        url = f"https://{host}:{cloud.api_port}/healthz"
        assert requests.get(url, verify=str(cloud.pki.ca), timeout=10).ok
    # nothing answers plain HTTP on the API's port
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://[::1]:{cloud.api_port}/healthz", timeout=10)


def test_etcd_of_the_cloud_wants_a_client_certificate(cloud: AllInOne) -> None:
    config = cloud.config()
    no_cert = Store(
        config.etcd_endpoints,
        timeout=0.5,
        retry_deadline=1.0,
        tls=client_tls(cloud.pki.ca, None),
    )
    with pytest.raises(Unavailable, match="etcd refused this client's certificate"):
        no_cert.get("/v1/")
    no_cert.close()
    store = cloud.store()
    assert store.count("/v1/host/") >= 1 or store.count("/v1/") > 0
    store.close()


def test_cli_verifies_the_api(cloud: AllInOne, other_pki: pki.Pki, tmp_path: Path) -> None:
    listed = cli(cloud, "host", "list")
    assert listed.returncode == 0 and "host1" in listed.stdout, listed.stderr
    # the same credentials without the CA: refused, and the error says why and what to do
    creds = cloud.admin_credentials()
    without_ca = tmp_path / "without-ca.conf"
    without_ca.write_text("".join(f"{k} = {v}\n" for k, v in creds.items() if k != "ca_file"))
    refused = cli(cloud, "host", "list", conf=without_ca)
    assert refused.returncode == 1
    assert "certificate verify failed" in refused.stderr
    assert "no ca_file given" in refused.stderr and "--ca-file" in refused.stderr
    # the CA given by flag or environment works
    assert (
        cli(cloud, "--ca-file", str(cloud.pki.ca), "host", "list", conf=without_ca).returncode == 0
    )
    env = {"UCLOUD_CA_FILE": str(cloud.pki.ca)}
    assert cli(cloud, "host", "list", conf=without_ca, env=env).returncode == 0
    # a wrong CA: the error names it
    wrong = cli(cloud, "--ca-file", str(other_pki.ca), "host", "list")
    assert wrong.returncode == 1
    assert f"not signed by the CA in {other_pki.ca}" in wrong.stderr
    # a CA file that does not exist: a usage error naming the option
    missing = cli(cloud, "--ca-file", "/nonexistent/ca.crt", "host", "list")
    assert missing.returncode == 2 and "ca_file: /nonexistent/ca.crt" in missing.stderr
    # plain requests without the CA: refused too
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{cloud.api_url}/healthz", timeout=10)


def test_user_create_prints_api_and_ca(cloud: AllInOne, tmp_path: Path) -> None:
    created = cli(cloud, "user", "create", "tlsuser", "--realm", "users")
    assert created.returncode == 0, created.stderr
    assert f"api = {cloud.api_url}" in created.stdout
    assert f"ca_file = {cloud.pki.ca}" in created.stdout
    conf = tmp_path / "tlsuser.conf"
    conf.write_text(created.stdout)
    assert cli(cloud, "vm", "list", conf=conf).returncode == 0


def test_aio_switches_tls_only_after_down() -> None:
    with running_cloud(register_tiny=False) as aio:
        plain = AllInOne(aio.state_dir, api_port=aio.api_port, tls=False, register_tiny=False)
        with pytest.raises(RuntimeError, match=r"runs with TLS on: `ucloud-aio down` first"):
            plain.up()
        aio.down()
        plain.up()
        creds = aio.admin_credentials()
        assert creds["api"].startswith("http://") and "ca_file" not in creds
        assert "etcd_ca" not in configuration.read_file(aio.conf_path)
        assert AllInOne(aio.state_dir).tls is False  # remembered
        assert requests.get(f"{plain.api_url}/healthz", timeout=10).ok
        plain.down()
        again = AllInOne(aio.state_dir, api_port=aio.api_port, tls=True, register_tiny=False)
        again.up()  # the same CA again: the admin's config works as before
        assert aio.admin_credentials()["ca_file"] == str(aio.pki.ca)
        assert cli(again, "host", "list").returncode == 0
