"""/v1/user (admin): create local OTP users (the seed is returned once) and list them."""

from typing import Any

from flask import Blueprint, jsonify

from common.auth import create_local_user, public_account
from common.errors import InvalidInput
from common.store import keys
from common.validation import NAME_SCHEMA, Field, Schema, name
from ucloud_api.context import body, require_admin, services

blueprint = Blueprint("users", __name__)

CREATE = Schema(
    "UserCreate",
    [
        Field("name", name, NAME_SCHEMA, help="user name (with body credentials: user_name)"),
        Field(
            "realm",
            name,
            NAME_SCHEMA,
            help="realm (with body credentials: user_realm); the admin realm makes an admin",
        ),
    ],
)


@blueprint.post("/v1/user")
def create() -> Any:
    require_admin()
    spec = CREATE.parse(body({"user_name": "name", "user_realm": "realm"}))
    svc = services()
    if svc.config.auth_backend != "local":
        raise InvalidInput("this cloud authenticates with ungleich-otp: create users there")
    account = create_local_user(svc.store, spec["name"], spec["realm"])
    return jsonify(account), 201


@blueprint.get("/v1/user")
def list_users() -> Any:
    require_admin()
    entries = services().store.list(keys.USER).entries
    return jsonify([public_account(e.value) for e in entries if e.key.endswith("/account")])
