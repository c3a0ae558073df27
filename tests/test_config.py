"""Config's annotations (what the type checker believes) stay in step with OPTIONS (what load()
produces)."""

import types
import typing
from pathlib import Path
from typing import Any

import pytest

from common.config import OPTIONS, Config, load


def _conforms(value: Any, hint: Any) -> bool:
    """isinstance for the hints Config uses: classes, X | None, list[X] and tuple[X, ...]."""
    origin = typing.get_origin(hint)
    if origin is None:
        return isinstance(value, hint)
    arguments = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_conforms(value, argument) for argument in arguments)
    if origin is list:
        return isinstance(value, list) and all(_conforms(item, arguments[0]) for item in value)
    if origin is tuple:
        return (
            isinstance(value, tuple)
            and len(value) == len(arguments)
            and all(_conforms(item, hint) for item, hint in zip(value, arguments, strict=True))
        )
    raise AssertionError(f"no check for {hint}")


def test_annotations_name_exactly_the_options() -> None:
    annotated = set(typing.get_type_hints(Config))
    assert annotated == set(OPTIONS), (
        f"annotated only: {sorted(annotated - set(OPTIONS))}; "
        f"options only: {sorted(set(OPTIONS) - annotated)}"
    )


@pytest.mark.parametrize("name", list(OPTIONS))
def test_parsed_default_has_the_annotated_type(name: str) -> None:
    option = OPTIONS[name]
    value = option.parse(option.default)
    hint = typing.get_type_hints(Config)[name]
    assert _conforms(value, hint), f"{name} = {value!r} is no {hint}"


def test_attributes_read_the_dict(tmp_path: Path) -> None:
    empty = tmp_path / "ucloud.conf"
    empty.write_text("")
    config = load(str(empty), environ={})
    config["network_vnis"] = (200, 300)
    assert config.network_vnis == (200, 300)
    with pytest.raises(AttributeError):
        config.no_such_option  # noqa: B018
