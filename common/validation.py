"""Request validation: a schema is a table of fields; each field parses one JSON value into its
stored form and knows its OpenAPI description. Validation happens once, at the edge (the API);
everything after it handles only well-formed records.
"""

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from common.errors import InvalidInput
from common.units import parse_size

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"
_NAME = re.compile(NAME_PATTERN)

Parser = Callable[[Any, str], Any]


@dataclass(frozen=True)
class Field:
    name: str
    parse: Parser
    openapi: dict[str, Any]
    required: bool = True
    help: str = ""


def _type_name(value: Any) -> str:
    return {
        dict: "object",
        list: "array",
        str: "string",
        bool: "boolean",
        int: "integer",
        float: "number",
        type(None): "null",
    }.get(type(value), type(value).__name__)


def name(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"{what}: expected a string, got {_type_name(value)}")
    if not _NAME.fullmatch(value):
        raise InvalidInput(
            f"{what}: {value!r} is not a valid name (1-63 letters, digits, '.', '_', '-',"
            " starting with a letter or digit)"
        )
    return value


def integer(minimum: int, maximum: int) -> Parser:
    def parse(value: Any, what: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidInput(f"{what}: expected an integer, got {_type_name(value)}")
        if not minimum <= value <= maximum:
            raise InvalidInput(f"{what}: must be between {minimum} and {maximum}, got {value}")
        return value

    return parse


def size(minimum: int, maximum: int) -> Parser:
    def parse(value: Any, what: str) -> int:
        try:
            result = parse_size(value, what)
        except ValueError as error:
            raise InvalidInput(str(error)) from None
        if not minimum <= result <= maximum:
            raise InvalidInput(
                f"{what}: must be between {minimum} and {maximum} bytes, got {result}"
            )
        return result

    return parse


def list_of(item: Parser, maximum: int, single_allowed: bool = False) -> Parser:
    """A JSON array of items (or, if `single_allowed`, one bare item meaning a list of one)."""

    def parse(value: Any, what: str) -> list[Any]:
        if single_allowed and not isinstance(value, list):
            value = [value]
        if not isinstance(value, list):
            raise InvalidInput(f"{what}: expected an array, got {_type_name(value)}")
        if len(value) > maximum:
            raise InvalidInput(f"{what}: at most {maximum} entries, got {len(value)}")
        return [item(entry, f"{what}[{index}]") for index, entry in enumerate(value)]

    return parse


def text(maximum: int) -> Parser:
    def parse(value: Any, what: str) -> str:
        if not isinstance(value, str):
            raise InvalidInput(f"{what}: expected a string, got {_type_name(value)}")
        if len(value.encode()) > maximum:
            raise InvalidInput(f"{what}: at most {maximum} bytes, got {len(value.encode())}")
        return value

    return parse


def choice(*choices: str) -> Parser:
    def parse(value: Any, what: str) -> str:
        if value not in choices:
            raise InvalidInput(f"{what}: expected one of {', '.join(choices)}, got {value!r}")
        return value

    return parse


PORT_RANGE_PATTERN = r"^[0-9]{1,5}(-[0-9]{1,5})?$"
_PORT_RANGE = re.compile(PORT_RANGE_PATTERN)


def port_range(value: Any, what: str) -> list[int]:
    """A port (22, "22") or a range ("8000-8080") of 1-65535, stored as [first, last]."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not _PORT_RANGE.fullmatch(value):
        raise InvalidInput(f"{what}: expected a port or a range like 8000-8080, got {value!r}")
    first, _, last = value.partition("-")
    ports = [int(first), int(last or first)]
    if not 1 <= ports[0] <= ports[1] <= 65535:
        raise InvalidInput(f"{what}: ports must be 1-65535, the first not above the last")
    return ports


def ipv6_prefix(value: Any, what: str) -> str:
    """An IPv6 prefix (a bare address is a /128), normalised; never a name to resolve."""
    if not isinstance(value, str) or not value.isascii():
        raise InvalidInput(f"{what}: expected an IPv6 prefix like 2001:db8::/32, got {value!r}")
    try:
        return str(ipaddress.IPv6Network(value, strict=False))
    except ValueError:
        raise InvalidInput(
            f"{what}: expected an IPv6 prefix like 2001:db8::/32, got {value!r}"
        ) from None


def absolute_path(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"{what}: expected a string, got {_type_name(value)}")
    if not value.startswith("/") or "\0" in value or "/../" in value + "/":
        raise InvalidInput(f"{what}: expected an absolute path without '..', got {value!r}")
    return value


@dataclass(frozen=True)
class Schema:
    title: str
    fields: list[Field] = field(default_factory=list)

    def parse(self, body: Any) -> dict[str, Any]:
        """Return the parsed fields (absent optional ones left out) or raise InvalidInput naming
        every unknown and missing field."""
        if not isinstance(body, dict):
            raise InvalidInput(f"request body must be a JSON object, got {_type_name(body)}")
        known = {f.name for f in self.fields}
        unknown = sorted(set(body) - known)
        if unknown:
            raise InvalidInput(f"unknown field(s): {', '.join(unknown)}")
        missing = [f.name for f in self.fields if f.required and body.get(f.name) is None]
        if missing:
            raise InvalidInput(f"missing field(s): {', '.join(missing)}")
        return {
            f.name: f.parse(body[f.name], f.name)
            for f in self.fields
            if body.get(f.name) is not None
        }

    def openapi(self) -> dict[str, Any]:
        return {
            "type": "object",
            "title": self.title,
            "additionalProperties": False,
            "required": [f.name for f in self.fields if f.required],
            "properties": {f.name: {**f.openapi, "description": f.help} for f in self.fields},
        }


NAME_SCHEMA = {"type": "string", "pattern": NAME_PATTERN}
SIZE_SCHEMA = {
    "oneOf": [
        {"type": "integer", "minimum": 1},
        {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*([kKmMgGtT]i?[bB]?|[bB])?\s*$"},
    ],
    "examples": ["2GB", "512MiB", "10 GiB", 1073741824],
}
