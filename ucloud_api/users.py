"""/v1/user (admin): create local OTP users (the seed is returned once); list them with the
LDAP directory's users."""

from typing import Any

from flask import Blueprint, jsonify

from common import quota
from common.auth import create_local_user, public_account
from common.errors import Forbidden, InvalidInput, Unavailable
from common.store import Transaction, keys
from common.validation import NAME_SCHEMA, SIZE_SCHEMA, Field, Schema, integer, name, size
from ucloud_api import paging
from ucloud_api.context import body, caller, require_admin, services

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
    shown, token = paging.memory_page(users, lambda user: str(user["name"]))
    response = paging.respond(shown, token)
    if warning:
        response.headers["Warning"] = warning
    return response


COUNT_SCHEMA = {"type": ["integer", "null"], "minimum": 0}
QUOTA = Schema(
    "QuotaSet",
    [
        Field("vms", integer(0, 1_000_000), COUNT_SCHEMA, required=False, help="VMs"),
        Field("cpu", integer(0, 100_000_000), COUNT_SCHEMA, required=False, help="vCPUs in total"),
        Field("ram", size(0, 2**62), SIZE_SCHEMA, required=False, help="RAM in total"),
        Field("disk", size(0, 2**62), SIZE_SCHEMA, required=False, help="disk in total"),
        Field("networks", integer(0, 1_000_000), COUNT_SCHEMA, required=False, help="networks"),
        Field("ssh_keys", integer(0, 1_000_000), COUNT_SCHEMA, required=False, help="ssh keys"),
        Field("user_data", size(0, 2**62), SIZE_SCHEMA, required=False, help="user data in total"),
    ],
)


@blueprint.get("/v1/user/<user>/quota")
def show_quota(user: str) -> Any:
    """The user's limits (defaults with the admin's overrides) and usage; the admin's or the
    user's own."""
    who = caller()
    if not who.admin and who.name != user:
        raise Forbidden("only the admin realm may see another user's quota")
    name(user, "user")
    svc = services()
    return jsonify(quota.show(svc.store, svc.config, user))


@blueprint.put("/v1/user/<user>/quota")
def set_quota(user: str) -> Any:
    """Override the user's limits (admin): the fields given replace the defaults, a field given
    as null goes back to the default. A limit below the current usage refuses new things but
    takes nothing away."""
    require_admin()
    name(user, "user")
    given = body()
    spec = QUOTA.parse(given)
    reset = {k for k, v in given.items() if v is None} if isinstance(given, dict) else set()
    svc = services()

    def change(txn: Transaction) -> None:
        entry = txn.get(keys.quota(user))
        override = {**(entry.value if entry else {}), **spec}
        for field in reset:
            override.pop(field, None)
        txn.put(keys.quota(user), override)

    svc.store.transact(change)
    return jsonify(quota.show(svc.store, svc.config, user))
