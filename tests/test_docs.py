"""Generated docs stay in step with the code."""

from pathlib import Path

from common.config import reference_markdown


def test_config_reference_is_current() -> None:
    path = Path(__file__).parent.parent / "docs" / "config.md"
    assert path.read_text() == reference_markdown(), "run: python -m common.config > docs/config.md"
