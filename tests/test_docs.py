"""Docs that are generated from the code stay equal to it (like datasette's test_docs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kehu.cli.docs import render_cli, render_settings
from kehu.model.docs import render_markdown

DOCS = Path(__file__).resolve().parents[1] / "docs"


@pytest.mark.parametrize("name,render", [("data-model.md", render_markdown),
                                         ("cli.md", render_cli),
                                         ("settings.md", render_settings)])
def test_generated_doc_is_current(name: str, render) -> None:  # type: ignore[no-untyped-def]
    text = (DOCS / name).read_text(encoding="utf-8")
    assert text.strip() == render().strip(), (
        f"docs/{name} is out of date: run python -m kehu.cli.docs and "
        "python -m kehu.model.docs > docs/data-model.md")


def test_every_entity_and_column_is_documented() -> None:
    from kehu.model import ENTITIES

    text = (DOCS / "data-model.md").read_text(encoding="utf-8")
    for e in ENTITIES.values():
        assert f"(`{e.name}`)" in text
        for c in e.columns:
            assert f"| `{c.name}` |" in text


def test_changelog_exists_and_names_this_version() -> None:
    import kehu

    text = (DOCS.parent / "CHANGELOG.md").read_text(encoding="utf-8")
    assert f"## {kehu.__version__}" in text
