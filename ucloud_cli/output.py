"""Tables for people, JSON for programs."""

import json
from collections.abc import Callable, Sequence
from typing import Any

import click

from common.units import format_size

Column = tuple[str, Callable[[dict[str, Any]], Any]]


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True))


def table(rows: Sequence[dict[str, Any]], columns: Sequence[Column]) -> None:
    cells = [[str(_blank(get(row))) for _, get in columns] for row in rows]
    headers = [title for title, _ in columns]
    widths = [
        max(len(h), *(len(c[i]) for c in cells)) if cells else len(h) for i, h in enumerate(headers)
    ]
    click.echo("  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    for row in cells:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def details(record: dict[str, Any], fields: Sequence[Column]) -> None:
    width = max(len(title) for title, _ in fields)
    for title, get in fields:
        click.echo(f"{title + ':':<{width + 1}} {_blank(get(record))}")


def size(value: int | None) -> str:
    return "-" if value is None else format_size(value)


def _blank(value: Any) -> Any:
    return "-" if value is None or value == "" else value
