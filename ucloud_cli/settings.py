"""CLI credentials: a config file (UCLOUD_CONFIG, default ~/.config/ucloud/ucloud.conf, keys
api, name, realm, seed and optionally ca_file) under UCLOUD_API / UCLOUD_NAME / UCLOUD_REALM /
UCLOUD_SEED / UCLOUD_CA_FILE, which win; flags (--api, --ca-file) win over both.

ca_file: the PEM CA an https API's certificate is verified against (the system's CAs when unset).
"""

import binascii
import os
from dataclasses import dataclass
from pathlib import Path

import click
import pyotp

from common.config import read_file

KEYS = ("api", "name", "realm", "seed")
OPTIONAL_KEYS = ("ca_file",)


@dataclass(frozen=True)
class Settings:
    api: str
    name: str
    realm: str
    seed: str
    ca_file: str | None = None


def default_path() -> Path:
    return Path(os.environ.get("UCLOUD_CONFIG") or Path.home() / ".config/ucloud/ucloud.conf")


def load(api_flag: str | None = None, ca_file_flag: str | None = None) -> Settings:
    path = default_path()
    values = read_file(path) if path.exists() else {}
    unknown = set(values) - set(KEYS) - set(OPTIONAL_KEYS)
    if unknown:
        raise click.UsageError(f"{path}: unknown key(s) {', '.join(sorted(unknown))}")
    for key in (*KEYS, *OPTIONAL_KEYS):
        env = os.environ.get(f"UCLOUD_{key.upper()}")
        if env:
            values[key] = env
    if api_flag:
        values["api"] = api_flag
    if ca_file_flag:
        values["ca_file"] = ca_file_flag
    missing = [key for key in KEYS if not values.get(key)]
    if missing:
        raise click.UsageError(
            f"missing {', '.join(missing)}: set them in {path} or as UCLOUD_"
            f"{missing[0].upper()} (and friends) in the environment"
        )
    try:
        pyotp.TOTP(values["seed"]).now()
    except (ValueError, TypeError, binascii.Error):
        raise click.UsageError(
            "seed: not a valid TOTP seed (base32, as `user create` printed it)"
        ) from None
    ca_file = values.get("ca_file") or None
    if ca_file is not None:
        ca_file = str(Path(ca_file).expanduser())
        if not os.access(ca_file, os.R_OK) or not Path(ca_file).is_file():
            raise click.UsageError(f"ca_file: {ca_file}: no such readable file")
    return Settings(
        values["api"].rstrip("/"), values["name"], values["realm"], values["seed"], ca_file
    )
