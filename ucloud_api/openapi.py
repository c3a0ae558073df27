"""GET /openapi.json: the whole API, request schemas taken from the validators themselves."""

from typing import Any

from ucloud_api import firewall, images, networks, sshkeys, users, vms

_ERROR = {
    "description": "error",
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["error"],
                "properties": {"error": {"type": "string"}},
            }
        }
    },
}
_ANY_OBJECT: dict[str, Any] = {"type": "object"}
_ANY_LIST: dict[str, Any] = {"type": "array", "items": {"type": "object"}}


def _op(
    summary: str,
    ok: int,
    result: dict[str, Any],
    request: dict[str, Any] | None = None,
    public: bool = False,
    media: str = "application/json",
) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": summary,
        "responses": {
            str(ok): {
                "description": "success",
                "content": {media: {"schema": result}},
            },
            "400": _ERROR,
            "401": _ERROR,
            "403": _ERROR,
            "404": _ERROR,
            "409": _ERROR,
        },
    }
    if request is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": request}},
        }
    if public:
        operation["security"] = []
        operation["responses"] = {str(ok): operation["responses"][str(ok)]}
    return operation


_UUID = [{"name": "uuid", "in": "path", "required": True, "schema": {"type": "string"}}]
_NAME = [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}]


_PAGING = [
    {
        "name": "limit",
        "in": "query",
        "required": False,
        "description": "at most this many items (1-1000; default: all)",
        "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
    },
    {
        "name": "continue",
        "in": "query",
        "required": False,
        "description": "the X-Continue token of the previous page",
        "schema": {"type": "string"},
    },
]


def _listing(summary: str, parameters: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A list endpoint: limit and continue, and the next page's token in X-Continue."""
    operation = _op(summary, 200, _ANY_LIST)
    operation["responses"]["200"]["headers"] = {
        "X-Continue": {
            "description": "token of the next page; absent on the last one",
            "schema": {"type": "string"},
        }
    }
    operation["parameters"] = [*(parameters or []), *_PAGING]
    return operation


def _with_uuid(operation: dict[str, Any]) -> dict[str, Any]:
    return {**operation, "parameters": _UUID}


_TOTP: dict[str, list[str]] = {"name": [], "realm": [], "token": []}
_SESSION = {
    "type": "object",
    "required": ["token", "expires", "ttl"],
    "properties": {
        "token": {"type": "string", "description": "send as Authorization: Bearer <token>"},
        "expires": {"type": "string", "format": "date-time"},
        "ttl": {"type": "integer", "description": "seconds the token is valid"},
    },
}


def _session_paths() -> dict[str, Any]:
    create = _op("exchange a TOTP code for a session token (TOTP credentials only)", 201, _SESSION)
    create["security"] = [_TOTP]
    revoke = _op(
        "revoke the presented session; ?all=1: every session of your identity",
        200,
        {"type": "object", "properties": {"revoked": {"type": "integer"}}},
    )
    revoke["parameters"] = [
        {
            "name": "all",
            "in": "query",
            "required": False,
            "description": "1: revoke every session of the caller's identity",
            "schema": {"type": "string", "enum": ["0", "1"]},
        }
    ]
    return {"/v1/session": {"post": create, "delete": revoke}}


def document() -> dict[str, Any]:
    header = {"type": "apiKey", "in": "header"}
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "ucloud API",
            "version": "1",
            "description": "Every /v1 request carries a session token (Authorization: Bearer,"
            " from POST /v1/session) or name, realm and a current TOTP token (headers"
            " X-Ucloud-Name/-Realm/-Token or JSON body fields); a TOTP code is accepted once.",
        },
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "a session token of POST /v1/session",
                },
                "name": {**header, "name": "X-Ucloud-Name"},
                "realm": {**header, "name": "X-Ucloud-Realm"},
                "token": {**header, "name": "X-Ucloud-Token"},
            }
        },
        "security": [{"bearer": []}, _TOTP],
        "paths": {
            "/healthz": {
                "get": _op("liveness and etcd reachability", 200, _ANY_OBJECT, public=True)
            },
            "/metrics": {
                "get": _op(
                    "Prometheus metrics",
                    200,
                    {"type": "string"},
                    public=True,
                    media="text/plain",
                )
            },
            "/openapi.json": {"get": _op("this document", 200, _ANY_OBJECT, public=True)},
            "/v1/vm": {
                "post": _op("create a VM", 201, _ANY_OBJECT, vms.CREATE.openapi()),
                "get": _listing(
                    "list your VMs (the admin realm: all; ?owner= filters)",
                    [
                        {
                            "name": "owner",
                            "in": "query",
                            "required": False,
                            "description": "only this user's VMs (admin)",
                            "schema": {"type": "string"},
                        }
                    ],
                ),
            },
            "/v1/vm/{uuid}": {
                "get": _with_uuid(_op("show a VM", 200, _ANY_OBJECT)),
                "delete": _with_uuid(
                    _op("delete a VM (it disappears once released)", 202, _ANY_OBJECT)
                ),
            },
            **{
                f"/v1/vm/{{uuid}}/{action}": {
                    "post": _with_uuid(_op(f"{action} a VM", 202, _ANY_OBJECT))
                }
                for action in ("start", "stop", "reboot")
            },
            "/v1/vm/{uuid}/migrate": {
                "post": _with_uuid(
                    _op(
                        "cold-migrate a VM to another host (shared storage)",
                        202,
                        _ANY_OBJECT,
                        vms.MIGRATE.openapi(),
                    )
                )
            },
            "/v1/host/{name}/drain": {
                "post": {
                    **_op(
                        "maintenance: stop placing VMs here and migrate its VMs away (admin)",
                        202,
                        _ANY_OBJECT,
                    ),
                    "parameters": _NAME,
                }
            },
            "/v1/host/{name}/enable": {
                "post": {**_op("end maintenance (admin)", 202, _ANY_OBJECT), "parameters": _NAME}
            },
            "/v1/network": {
                "post": _op(
                    "create a network (a VXLAN id and a /64 are claimed)",
                    201,
                    _ANY_OBJECT,
                    networks.CREATE.openapi(),
                ),
                "get": _listing("list your networks"),
            },
            "/v1/network/{name}": {
                "get": {**_op("show a network", 200, _ANY_OBJECT), "parameters": _NAME},
                "delete": {
                    **_op("delete a network (409 while attached)", 200, _ANY_OBJECT),
                    "parameters": _NAME,
                },
            },
            "/v1/vm/{uuid}/networks": {
                "post": _with_uuid(
                    _op(
                        "attach a network (hot on a running VM)",
                        202,
                        _ANY_OBJECT,
                        networks.ATTACH.openapi(),
                    )
                )
            },
            "/v1/vm/{uuid}/networks/{network}": {
                "delete": {
                    **_op("detach a network (hot)", 202, _ANY_OBJECT),
                    "parameters": [
                        *_UUID,
                        {
                            "name": "network",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        },
                    ],
                }
            },
            "/v1/vm/{uuid}/firewall": {
                "get": _listing("a VM's ingress rules", _UUID),
                "post": _with_uuid(
                    _op("allow traffic in to a VM", 201, _ANY_OBJECT, firewall.RULE.openapi())
                ),
            },
            "/v1/vm/{uuid}/firewall/{rule}": {
                "delete": {
                    **_op("remove an ingress rule", 200, _ANY_OBJECT),
                    "parameters": [
                        *_UUID,
                        {
                            "name": "rule",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        },
                    ],
                }
            },
            "/v1/image": {
                "get": _listing("list images you can use"),
                "post": _op(
                    "register a qcow2 file on the image host (admin)",
                    201,
                    _ANY_OBJECT,
                    images.REGISTER.openapi(),
                ),
            },
            "/v1/image/{uuid}": {
                "delete": _with_uuid(_op("delete an unused image", 200, _ANY_OBJECT))
            },
            "/v1/host": {"get": _listing("hosts, capacity, allocation, status (admin)")},
            "/v1/user": {
                "post": _op(
                    "create a local OTP user; the seed is returned once (admin)",
                    201,
                    _ANY_OBJECT,
                    users.CREATE.openapi(),
                ),
                "get": _listing("list users, without seeds (admin)"),
            },
            "/v1/user/{name}/quota": {
                "get": {
                    **_op("a user's quota limits and usage (admin, or the user)", 200, _ANY_OBJECT),
                    "parameters": _NAME,
                },
                "put": {
                    **_op(
                        "override a user's limits; null: back to the default (admin)",
                        200,
                        _ANY_OBJECT,
                        users.QUOTA.openapi(),
                    ),
                    "parameters": _NAME,
                },
            },
            "/v1/user/ssh-key": {
                "get": _listing("your ssh keys: stored ones and your LDAP entry's"),
                "post": _op("store an ssh public key", 201, _ANY_OBJECT, sshkeys.CREATE.openapi()),
            },
            "/v1/user/ssh-key/{name}": {
                "delete": {**_op("delete a stored ssh key", 200, _ANY_OBJECT), "parameters": _NAME}
            },
            **_session_paths(),
        },
    }
