"""Pagination of list endpoints, as Kubernetes lists do: `?limit=N` (1-1000) returns at most N
items and, when more follow, an opaque token in the `X-Continue` response header; the same request
with `?continue=<token>` returns the next page. Without `limit` a list is whole, as before.

A token is the URL-safe base64 of the last key returned (an etcd key, or the sort key of a list
assembled in memory); it is checked to belong to the list asked for.
"""

import base64
import binascii
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import Response, jsonify, request

from common.errors import InvalidInput
from common.store import Entry, Store

MAX_LIMIT = 1000
HEADER = "X-Continue"

T = TypeVar("T")


@dataclass(frozen=True)
class Page:
    limit: int | None  # None: everything
    after: str | None  # the last key of the previous page


def encode(key: str) -> str:
    return base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")


def params(scope: str) -> Page:
    """The request's limit and continue token; InvalidInput (400) when malformed or when the
    token does not start with `scope` (a token of another list, or forged)."""
    limit: int | None = None
    raw = request.args.get("limit")
    if raw is not None:
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
            raise InvalidInput(f"limit: expected an integer from 1 to {MAX_LIMIT}, got {raw!r}")
        limit = int(raw)
    token = request.args.get("continue")
    after = None
    if token is not None:
        try:
            padded = token + "=" * (-len(token) % 4)
            after = base64.b64decode(padded, altchars=b"-_", validate=True).decode()
        except (binascii.Error, ValueError):
            raise InvalidInput("continue: not a token this API returned") from None
        if not after.startswith(scope) or len(token) > 2048:
            raise InvalidInput("continue: not a token of this list")
    return Page(limit, after)


def store_page(store: Store, prefix: str) -> tuple[list[Entry], str | None]:
    """A page of the keys under prefix and the token of the next page (None: last page)."""
    page = params(prefix)
    entries, more = store.page(prefix, page.after, page.limit)
    return entries, encode(entries[-1].key) if more and entries else None


def memory_page(items: Sequence[T], key: Callable[[T], str]) -> tuple[list[T], str | None]:
    """A page of a list assembled in memory, ordered by key(item) (sorted here; keys unique).
    Its tokens are the request path, a NUL and the last key (so they belong to this list)."""
    scope = request.path + "\0"
    page = params(scope)
    if page.limit is None and page.after is None:
        return list(items), None  # the whole list, in its usual order
    ordered = sorted(items, key=key)
    if page.after is not None:
        after = page.after[len(scope) :]
        ordered = [item for item in ordered if key(item) > after]
    if page.limit is None or len(ordered) <= page.limit:
        return ordered, None
    chosen = ordered[: page.limit]
    return chosen, encode(scope + key(chosen[-1]))


def respond(body: Any, token: str | None) -> Response:
    """The JSON list (or a prepared Response), with the next page's token in X-Continue."""
    response = body if isinstance(body, Response) else jsonify(body)
    if token is not None:
        response.headers[HEADER] = token
    return response
