"""Tables for people, JSON for programs: emit() is the one place that chooses between them."""

import json
import operator
from collections.abc import Callable, Sequence
from typing import Any

import click

from common.units import format_size

Column = tuple[str, Callable[[dict[str, Any]], Any]]
Readable = Sequence[Column] | Callable[[Any], None]


def emit(as_json: bool, data: Any, readable: Readable) -> None:
    """`data` as JSON with --json, else readably: a table of these columns (a single record is
    one row), or a function that prints `data` its own way."""
    if as_json:
        click.echo(json.dumps(data, indent=2, sort_keys=True))
    elif callable(readable):
        readable(data)
    else:
        table(data if isinstance(data, list) else [data], readable)


def fields(*names: str) -> list[Column]:
    """Columns that show a record's field of the same name as it is."""
    return [(name, operator.itemgetter(name)) for name in names]


def table(rows: Sequence[dict[str, Any]], columns: Sequence[Column]) -> None:
    cells = [[str(_blank(get(row))) for _, get in columns] for row in rows]
    headers = [title for title, _ in columns]
    widths = [
        max(len(h), *(len(c[i]) for c in cells)) if cells else len(h) for i, h in enumerate(headers)
    ]
    click.echo("  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    for row in cells:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def details(record: dict[str, Any], columns: Sequence[Column]) -> None:
    """One record, a `title: value` line per column (for records too wide for a table row)."""
    width = max(len(title) for title, _ in columns)
    for title, get in columns:
        click.echo(f"{title + ':':<{width + 1}} {_blank(get(record))}")


def size(value: int | None) -> str:
    return "-" if value is None else format_size(value)


def _blank(value: Any) -> Any:
    return "-" if value is None or value == "" else value
