"""Every user-facing string is translatable and both catalogues are complete."""

from __future__ import annotations

import re
import string

import pytest

from kehu.i18n import catalogue, gettext, set_locale
from kehu.i18n.messages import extract, po_path

FIELDS = re.compile(r"\{([a-zA-Z_]\w*)")


def _fields(s: str) -> set[str]:
    return {f for _, f, _, _ in string.Formatter().parse(s) if f}


@pytest.fixture(scope="module")
def messages() -> dict[str, list[tuple[str, int]]]:
    return extract()


def test_catalogues_are_current_and_complete(messages: dict) -> None:
    for locale in ("en", "zh_CN"):
        assert po_path(locale).exists()
        cat = catalogue.__wrapped__(locale) if locale != "en" else None  # type: ignore[attr-defined]
        if cat is None:
            continue
        missing = sorted(m for m in messages if not cat.get(m))
        assert not missing, (f"{len(missing)} messages lack a {locale} translation (run "
                             f"python -m kehu.i18n.messages and translate): {missing[:10]}")


def test_translations_keep_their_placeholders(messages: dict) -> None:
    zh = catalogue.__wrapped__("zh_CN")  # type: ignore[attr-defined]
    for msgid in messages:
        if msgid in zh:
            assert _fields(zh[msgid]) == _fields(msgid), msgid


def test_english_catalogue_lists_every_message(messages: dict) -> None:
    text = po_path("en").read_text(encoding="utf-8")
    for msgid in list(messages)[:50]:
        first_line = msgid.split("\n")[0][:20].replace('"', '\\"')
        assert first_line in text


def test_switching_language() -> None:
    set_locale("zh_CN")
    try:
        assert gettext("Error") == "错误"
    finally:
        set_locale("en")
    assert gettext("Error") == "Error"
