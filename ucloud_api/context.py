"""Per-request helpers: the authenticated caller, the parsed body, the shared services.

Credentials come from the X-Ucloud-Name/-Realm/-Token headers or, ungleich-otp style, from the
JSON body fields name/realm/token. With body credentials, `name` is the caller's, so a resource's
own name goes in `vm_name` / `network_name` instead (as in the original ucloud API).
"""

from dataclasses import dataclass
from typing import Any

import orjson
from flask import current_app, g, request

from common.auth import Caller, OtpBackend, authenticate, parse_credentials
from common.config import Config
from common.directory import LdapDirectory
from common.errors import Forbidden, InvalidInput, Unauthenticated
from common.imagestore import ImageStore
from common.lockout import Lockout
from common.store import Store

AUTH_FIELDS = ("name", "realm", "token")


@dataclass
class Services:
    """What the handlers need, made once per worker by create_app."""

    config: Config
    store: Store
    otp: OtpBackend
    images: ImageStore  # in-process: the API host holds the image files it registers
    lockout: Lockout  # failed logins, shared through etcd
    directory: LdapDirectory | None = None  # users and their ssh keys from LDAP, if configured


def services() -> Services:
    return current_app.extensions["ucloud"]


def _json_body() -> Any:
    if "body" not in g:
        raw = request.get_data(cache=True)
        if not raw.strip():
            g.body = None
        else:
            try:
                g.body = orjson.loads(raw)
            except orjson.JSONDecodeError as error:
                raise InvalidInput(f"request body is not valid JSON: {error}") from None
    return g.body


def authenticate_request() -> None:
    """before_request for /v1: sets g.caller or raises Unauthenticated."""
    headers = request.headers
    if any(f"X-Ucloud-{f.title()}" in headers for f in AUTH_FIELDS):
        credentials = parse_credentials(
            headers.get("X-Ucloud-Name"),
            headers.get("X-Ucloud-Realm"),
            headers.get("X-Ucloud-Token"),
        )
        g.body_credentials = False
    else:
        body = _json_body()
        fields = body if isinstance(body, dict) else {}
        credentials = parse_credentials(*(fields.get(f) for f in AUTH_FIELDS))
        g.body_credentials = credentials is not None
    svc = services()
    identity = f"{credentials.realm}/{credentials.name}" if credentials else None
    address = request.remote_addr or "unknown"
    svc.lockout.check(identity, address)
    try:
        g.caller = authenticate(svc.otp, credentials, svc.config.admin_realm)
    except Unauthenticated:
        if credentials is not None:  # a missing credential guesses nothing
            svc.lockout.failed(identity, address)
        raise


def caller() -> Caller:
    return g.caller


def require_admin() -> Caller:
    who = caller()
    if not who.admin:
        raise Forbidden("only the admin realm may do this")
    return who


def body(renames: dict[str, str] | None = None) -> Any:
    """The JSON body without credentials. With body credentials, the resource's own fields that
    clash with them come under other names (`renames`, e.g. {"vm_name": "name"})."""
    value = _json_body()
    if value is None:
        return {}
    if isinstance(value, dict) and g.get("body_credentials"):
        value = {k: v for k, v in value.items() if k not in AUTH_FIELDS}
        for alias, field in (renames or {}).items():
            if alias in value:
                value[field] = value.pop(alias)
    return value
