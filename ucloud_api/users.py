"""/v1/user (admin): create local OTP users (the seed is returned once); list them with the
LDAP directory's users."""

from typing import Any

from flask import Blueprint, jsonify

from common.auth import create_local_user, public_account
from common.errors import InvalidInput, Unavailable
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
    """Local accounts (`source: local`) and the LDAP directory's users without one
    (`source: ldap`). An unreachable directory leaves its users out, said in a Warning header."""
    require_admin()
    svc = services()
    entries = svc.store.list(keys.USER).entries
    users = [
        {**public_account(e.value), "source": "local"}
        for e in entries
        if e.key.endswith("/account")
    ]
    warning = None
    if svc.directory is not None:
        local = {u["name"] for u in users}
        try:
            found = svc.directory.users()
        except Unavailable as error:
            warning = f'199 ucloud "{error.message}; its users are left out"'
        else:
            users += [
                {"name": u.name, "source": "ldap"}
                for u in sorted(found, key=lambda u: u.name)
                if u.name not in local
            ]
    response = jsonify(users)
    if warning:
        response.headers["Warning"] = warning
    return response
