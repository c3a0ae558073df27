"""TLS material from the configuration (docs/tls.md): read and checked once at start-up, so a
missing, unreadable or mismatched file ends a daemon with a ConfigError naming the option (exit
status 2) instead of a traceback, or a failure on the first connection minutes later.

- `etcd_client_tls`: etcd_ca, etcd_cert, etcd_key -> what the store's gRPC channels need;
- `api_server_tls`: api_tls_cert, api_tls_key -> the pair gunicorn serves HTTPS with.
"""

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from common.errors import ConfigError

if TYPE_CHECKING:
    import grpc

    from common.config import Config


def read_pem(option: str, path: str, kind: str) -> bytes:
    """The file named by `option`, which must hold PEM text of `kind` (CERTIFICATE, PRIVATE
    KEY: any "BEGIN ... PRIVATE KEY" counts)."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{option}: {path}: no such file") from None
    except PermissionError:
        raise ConfigError(f"{option}: {path}: not readable (permission denied)") from None
    except IsADirectoryError:
        raise ConfigError(f"{option}: {path}: is a directory, not a PEM file") from None
    except OSError as error:
        raise ConfigError(f"{option}: {path}: {error.strerror}") from None
    marker = b"PRIVATE KEY-----" if kind == "PRIVATE KEY" else f"BEGIN {kind}-----".encode()
    if marker not in data:
        raise ConfigError(f"{option}: {path}: no PEM {kind.lower()} in it")
    return data


def _check_pair(cert_option: str, cert: str, key_option: str, key: str) -> None:
    """The key must be the certificate's (loading them into an SSL context checks that)."""
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_cert_chain(cert, key)
    except ssl.SSLError as error:
        raise ConfigError(
            f"{cert_option} {cert} and {key_option} {key} do not go together"
            f" ({error.reason or error})"
        ) from None


def _check_ca(option: str, path: str) -> None:
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=path)
    except ssl.SSLError as error:
        raise ConfigError(
            f"{option}: {path}: not a valid CA certificate ({error.reason or error})"
        ) from None


@dataclass(frozen=True)
class EtcdClientTls:
    """The contents of etcd_ca (None: the system's CAs) and of the client certificate and key
    (None: no client certificate; an etcd with --client-cert-auth refuses such a client)."""

    ca: bytes | None
    cert: bytes | None
    key: bytes | None
    ca_path: str = ""

    def credentials(self) -> "grpc.ChannelCredentials":
        import grpc

        return grpc.ssl_channel_credentials(self.ca, self.key, self.cert)


def etcd_client_tls(config: "Config") -> EtcdClientTls | None:
    """None when none of etcd_ca, etcd_cert, etcd_key is set (plain gRPC); else the files, read
    and checked."""
    ca, cert, key = config.etcd_ca, config.etcd_cert, config.etcd_key
    if not (ca or cert or key):
        return None
    if bool(cert) != bool(key):
        raise ConfigError("etcd_cert and etcd_key go together: set both or neither")
    ca_data = read_pem("etcd_ca", ca, "CERTIFICATE") if ca else None
    if ca:
        _check_ca("etcd_ca", ca)
    cert_data = read_pem("etcd_cert", cert, "CERTIFICATE") if cert else None
    key_data = read_pem("etcd_key", key, "PRIVATE KEY") if key else None
    if cert and key:
        _check_pair("etcd_cert", cert, "etcd_key", key)
    return EtcdClientTls(ca_data, cert_data, key_data, ca)


def api_server_tls(config: "Config") -> tuple[str, str] | None:
    """(certificate, key) paths for gunicorn, checked; None when the API serves plain HTTP."""
    cert, key = config.api_tls_cert, config.api_tls_key
    if not (cert or key):
        return None
    if not (cert and key):
        raise ConfigError("api_tls_cert and api_tls_key go together: set both or neither")
    read_pem("api_tls_cert", cert, "CERTIFICATE")
    read_pem("api_tls_key", key, "PRIVATE KEY")
    _check_pair("api_tls_cert", cert, "api_tls_key", key)
    return cert, key


def etcd_failure_hint(details: str, tls: EtcdClientTls | None) -> str:
    """What an operator should check, for gRPC failure details that come from TLS (empty when
    they do not look like TLS)."""
    if "CERTIFICATE_VERIFY_FAILED" in details:
        return (
            " (TLS: etcd's certificate is not signed by etcd_ca"
            f" {tls.ca_path if tls and tls.ca_path else '(the system CAs)'}, or does not name"
            " the address in etcd_endpoints)"
        )
    if tls is not None and any(
        marker in details
        for marker in ("TSI_DATA_CORRUPTED", "BAD_CERTIFICATE", "CERTIFICATE_REQUIRED", "ALERT")
    ):
        return (
            " (TLS: etcd refused this client's certificate: etcd_cert and etcd_key must be"
            " set, and signed by a CA etcd trusts (its --trusted-ca-file))"
        )
    if tls is not None and ("WRONG_VERSION_NUMBER" in details or "handshake" in details.lower()):
        return " (TLS handshake failed: does etcd serve TLS on this port?)"
    if tls is None and "Socket closed" in details:
        return " (if etcd serves TLS, set etcd_ca, etcd_cert and etcd_key)"
    return ""
