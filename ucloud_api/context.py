"""Per-request helpers: the authenticated caller, the parsed body, the shared services.

Credentials are either a session token (`Authorization: Bearer <token>`, common/sessions.py) or
TOTP credentials: the X-Ucloud-Name/-Realm/-Token headers or, ungleich-otp style, the JSON body
fields name/realm/token. With body credentials, `name` is the caller's, so a resource's own name
goes in `vm_name` / `network_name` instead (as in the original ucloud API). An Authorization
header together with X-Ucloud-* headers is refused (400): which one to believe is not guessed.
With a bearer token the body is never looked at for credentials.
"""

from dataclasses import dataclass
from typing import Any

import orjson
from flask import current_app, g, request

from common.auth import Caller, OtpBackend, ReplayGuard, authenticate, parse_credentials
from common.config import Config
from common.directory import LdapDirectory
from common.errors import Forbidden, InvalidInput, TokenReused, Unauthenticated
from common.imagestore import ImageStore
from common.lockout import Lockout
from common.sessions import Sessions
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
    replay: ReplayGuard  # TOTP codes used once already
    sessions: Sessions  # bearer tokens of POST /v1/session
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
    """before_request for /v1: sets g.caller (and g.session, the digest of the bearer token, or
    None for TOTP credentials) or raises Unauthenticated."""
    headers = request.headers
    svc = services()
    address = request.remote_addr or "unknown"
    g.session = None
    totp_headers = any(f"X-Ucloud-{f.title()}" in headers for f in AUTH_FIELDS)
    authorization = headers.get("Authorization")
    if authorization is not None:
        if totp_headers:
            raise InvalidInput(
                "send either Authorization: Bearer <session token> or the X-Ucloud-Name/-Realm/"
                "-Token headers, not both"
            )
        _bearer(svc, authorization, address)
        return
    if totp_headers:
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
    identity = f"{credentials.realm}/{credentials.name}" if credentials else None
    svc.lockout.check(identity, address)
    try:
        g.caller = authenticate(svc.otp, credentials, svc.config.admin_realm, svc.replay)
    except TokenReused:
        svc.lockout.failed(identity, address, "replayed TOTP code", count_identity=False)
        raise
    except Unauthenticated:
        if credentials is not None:  # a missing credential guesses nothing
            svc.lockout.failed(identity, address)
        raise


def _bearer(svc: Services, authorization: str, address: str) -> None:
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        raise Unauthenticated(
            "unsupported Authorization scheme: send Authorization: Bearer <session token>"
            " (POST /v1/session makes one)"
        )
    token = token.strip()
    if not token:
        raise Unauthenticated("empty session token in Authorization: Bearer")
    svc.lockout.check(None, address)
    try:
        g.caller, g.session = svc.sessions.authenticate(token)
    except Unauthenticated as error:
        svc.lockout.failed(None, address, f"session token: {error.message}")
        raise
    g.body_credentials = False


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
