"""/v1/session: a TOTP code exchanged for a session token (Authorization: Bearer), and revoked
(common/sessions.py, docs/api.md)."""

from typing import Any

from flask import Blueprint, g, jsonify, request

from common.errors import Forbidden, InvalidInput
from ucloud_api.context import caller, services

blueprint = Blueprint("sessions", __name__)

FLAGS = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False, "": False}


@blueprint.post("/v1/session")
def create() -> Any:
    """201 {token, expires, ttl}; only with TOTP credentials, so a session cannot extend
    itself: it ends at its expiry, whatever it does."""
    if g.session is not None:
        raise Forbidden(
            "a session is made with TOTP credentials (X-Ucloud-Name/-Realm/-Token), not with"
            " a session token"
        )
    return jsonify(services().sessions.create(caller())), 201


@blueprint.delete("/v1/session")
def revoke() -> Any:
    """Revoke the presented session; `?all=1`: every session of the caller's identity (with a
    session token or TOTP credentials). 200 {"revoked": n}."""
    flag = request.args.get("all", "").lower()
    if flag not in FLAGS:
        raise InvalidInput("all: expected 1 or 0")
    who = caller()
    svc = services()
    if FLAGS[flag]:
        return jsonify({"revoked": svc.sessions.revoke_all(who.name, who.realm)})
    if g.session is None:
        raise InvalidInput(
            "DELETE /v1/session revokes the session token of the Authorization header, and none"
            " was sent; ?all=1 revokes every session of yours"
        )
    return jsonify({"revoked": svc.sessions.revoke(g.session)})
