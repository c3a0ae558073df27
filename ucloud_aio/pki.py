"""A throwaway certificate authority for an all-in-one cloud (docs/tls.md), made with the
`openssl` command: EC P-256 keys, one CA, and three certificates signed by it:

- `api.crt`: ucloud-api's server certificate (SAN: the addresses the API listens on, localhost);
- `etcd.crt`: etcd's server and peer certificate (SAN: the addresses etcd serves on, localhost);
- `client.crt`: the client certificate every daemon (and ucloud-aio itself) shows etcd.

All of it lives in one directory (mode 0700; keys 0600). A later `make` keeps what is there and
remakes only what is missing or was made for other addresses, so a cloud's CA outlives its
restarts and CLI configs that name it stay valid.
"""

import ipaddress
import json
import os
import secrets
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ucloud_aio.etcd import EtcdTls

CURVE = "prime256v1"  # NIST P-256
NEW_EC_KEY = ("-newkey", "ec", "-pkeyopt", f"ec_paramgen_curve:{CURVE}", "-nodes")
CA_DAYS = 3650
LEAF_DAYS = 825


class PkiError(RuntimeError):
    """openssl failed; the message carries its error output."""


@dataclass(frozen=True)
class Pair:
    """A certificate and its private key."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class Pki:
    directory: Path

    @property
    def ca(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.directory / "ca.key"

    def pair(self, name: str) -> Pair:
        return Pair(self.directory / f"{name}.crt", self.directory / f"{name}.key")

    @property
    def api(self) -> Pair:
        return self.pair("api")

    @property
    def etcd(self) -> Pair:
        return self.pair("etcd")

    @property
    def client(self) -> Pair:
        return self.pair("client")


def _openssl(*args: str) -> None:
    # umask 077: keys are never readable by others, not even between creation and a chmod
    result = subprocess.run(
        ["openssl", *args], capture_output=True, text=True, umask=0o077, check=False
    )
    if result.returncode != 0:
        raise PkiError(f"openssl {args[0]} failed: {result.stderr.strip()}")


def _san(names: list[str]) -> str:
    entries = []
    for name in names:
        try:
            entries.append(f"IP:{ipaddress.ip_address(name)}")
        except ValueError:
            entries.append(f"DNS:{name}")
    return ", ".join(entries)


def _make_ca(pki: Pki, label: str) -> None:
    _openssl(
        "req",
        "-x509",
        "-new",
        *NEW_EC_KEY,
        "-keyout",
        str(pki.ca_key),
        "-out",
        str(pki.ca),
        "-days",
        str(CA_DAYS),
        "-sha256",
        "-subj",
        f"/O=ucloud-aio/CN={label}",
        "-addext",
        "basicConstraints=critical,CA:TRUE,pathlen:0",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    )


def _make_leaf(pki: Pki, name: str, names: list[str], usage: str) -> None:
    """A certificate for `names` (SAN; none for a client-only one), signed by the CA."""
    pair = pki.pair(name)
    extensions = [
        "basicConstraints = critical, CA:FALSE",
        "keyUsage = critical, digitalSignature",
        f"extendedKeyUsage = {usage}",
        "subjectKeyIdentifier = hash",
        "authorityKeyIdentifier = keyid",
    ]
    if names:
        extensions.append(f"subjectAltName = {_san(names)}")
    with tempfile.TemporaryDirectory(dir=pki.directory) as work:
        csr, ext = Path(work) / "request.csr", Path(work) / "extensions.cnf"
        ext.write_text("\n".join(extensions) + "\n")
        _openssl(
            "req",
            "-new",
            *NEW_EC_KEY,
            "-keyout",
            str(pair.key),
            "-out",
            str(csr),
            "-subj",
            f"/O=ucloud-aio/CN=ucloud-{name}",
        )
        _openssl(
            "x509",
            "-req",
            "-in",
            str(csr),
            "-CA",
            str(pki.ca),
            "-CAkey",
            str(pki.ca_key),
            "-set_serial",
            f"0x{secrets.token_hex(16)}",
            "-days",
            str(LEAF_DAYS),
            "-sha256",
            "-extfile",
            str(ext),
            "-out",
            str(pair.cert),
        )


def make(directory: str | Path, api_names: list[str], etcd_names: list[str]) -> Pki:
    """The CA and the api, etcd and client certificates in `directory`, made where missing or
    made for other names than these."""
    pki = Pki(Path(directory).absolute())
    pki.directory.mkdir(parents=True, exist_ok=True)
    os.chmod(pki.directory, 0o700)
    manifest = pki.directory / "names.json"
    wanted = {"api": api_names, "etcd": etcd_names, "client": []}
    made = json.loads(manifest.read_text()) if manifest.exists() else {}
    if not (pki.ca.exists() and pki.ca_key.exists()):
        _make_ca(pki, f"ucloud-aio CA {secrets.token_hex(4)}")
        made = {}  # everything signed by an old CA is worthless now
    usages = {"api": "serverAuth", "etcd": "serverAuth, clientAuth", "client": "clientAuth"}
    for name, names in wanted.items():
        pair = pki.pair(name)
        if made.get(name) != names or not (pair.cert.exists() and pair.key.exists()):
            _make_leaf(pki, name, names, usages[name])
            made[name] = names
            manifest.write_text(json.dumps(made))
    for path in pki.directory.iterdir():
        os.chmod(path, 0o600 if path.suffix == ".key" else 0o644)
    return pki


def conf_settings(pki: Pki, api: bool) -> dict[str, str]:
    """ucloud.conf keys: etcd's CA and the daemons' client certificate; for `api`, also the
    API's server certificate."""
    values = {
        "etcd_ca": str(pki.ca),
        "etcd_cert": str(pki.client.cert),
        "etcd_key": str(pki.client.key),
    }
    if api:
        values.update(api_tls_cert=str(pki.api.cert), api_tls_key=str(pki.api.key))
    return values


def etcd_server_tls(pki: Pki) -> EtcdTls:
    return EtcdTls(pki.ca, pki.etcd.cert, pki.etcd.key, pki.client.cert, pki.client.key)
