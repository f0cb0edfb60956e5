"""Extract translatable strings from the source and keep the catalogues in step.

``python -m kehu.i18n.messages`` updates ``locales/*/LC_MESSAGES/kehu.po``: new messages are
added (empty in zh_CN until translated; English is the source and its catalogue maps each
message to itself), messages no longer in the source are dropped. ``tests/test_i18n.py``
fails while any zh_CN message lacks a translation.
"""

from __future__ import annotations

import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po, write_po

from kehu.i18n import LOCALES_DIR, SUPPORTED

SOURCE_DIR = Path(__file__).resolve().parents[1]
KEYWORDS = {"_": None, "gettext": None, "N_": None}


def extract() -> dict[str, list[tuple[str, int]]]:
    """msgid -> places (file, line) for every literal passed to ``_()`` / ``gettext()``, in
    the Python source and in the web app's Jinja templates."""
    found: dict[str, list[tuple[str, int]]] = {}
    for filename, lineno, message, _comments, _ctx in extract_from_dir(
        str(SOURCE_DIR), method_map=[("**.py", "python"), ("**/templates/**.html", "jinja2")],
        keywords=KEYWORDS,
        comment_tags=(), strip_comment_tags=True,
    ):
        if isinstance(message, str) and message:
            found.setdefault(message, []).append((filename, lineno))
    return found


def po_path(locale: str) -> Path:
    return LOCALES_DIR / locale / "LC_MESSAGES" / "kehu.po"


def update() -> dict[str, int]:
    """Rewrite both catalogues from the source; returns untranslated counts per locale."""
    messages = extract()
    missing: dict[str, int] = {}
    for locale in SUPPORTED:
        path = po_path(locale)
        old: dict[str, str] = {}
        if path.exists():
            with path.open("rb") as fh:
                old = {str(m.id): str(m.string) for m in read_po(fh) if m.id}
        cat = Catalog(locale=locale, project="kehu", charset="utf-8", fuzzy=False)
        n_missing = 0
        for msgid in sorted(messages):
            text = msgid if locale == "en" else old.get(msgid, "")
            if not text:
                n_missing += 1
            cat.add(msgid, text, locations=[(f, ln) for f, ln in messages[msgid][:3]])
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as fh:
            write_po(fh, cat, width=100, omit_header=False, sort_output=True)
        missing[locale] = n_missing
    return missing


if __name__ == "__main__":  # pragma: no cover
    result = update()
    sys.stdout.write(f"{result}\n")
