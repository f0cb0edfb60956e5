"""Translations: every user-facing string goes through :func:`gettext` (imported as ``_``).

Catalogues are Babel/gettext ``.po`` files under ``locales/<locale>/LC_MESSAGES/kehu.po``,
read with Babel at first use (no compile step, nothing at import time). English is the
source language; ``zh_CN`` is kept complete by ``tests/test_i18n.py``.

>>> set_locale("zh_CN")
>>> gettext("Error")
'错误'
>>> set_locale("en")
>>> gettext("Error")
'Error'
"""

from __future__ import annotations

import contextvars
import os
from functools import cache
from pathlib import Path

from babel.messages.pofile import read_po

LOCALES_DIR = Path(__file__).parent / "locales"
SUPPORTED = ("en", "zh_CN")

_current: contextvars.ContextVar[str | None] = contextvars.ContextVar("kehu_locale", default=None)


def normalise_locale(value: str | None) -> str:
    """Map a locale name such as ``zh-CN``, ``zh_CN.UTF-8``, ``zh`` or ``en_US`` to a supported one.

    >>> normalise_locale("zh-CN"), normalise_locale("zh_TW.UTF-8"), normalise_locale("fr")
    ('zh_CN', 'zh_CN', 'en')
    """
    if not value:
        return "en"
    v = value.split(".")[0].replace("-", "_").lower()
    if v.startswith("zh"):
        return "zh_CN"
    return "en"


def set_locale(locale: str | None) -> None:
    """Set the locale for the current context (CLI run or web request)."""
    _current.set(normalise_locale(locale) if locale else None)


def get_locale() -> str:
    """The locale in force: the one set, else ``KEHU_LANG`` / ``LANG`` from the environment."""
    loc = _current.get()
    if loc:
        return loc
    return normalise_locale(os.environ.get("KEHU_LANG") or os.environ.get("LANG"))


@cache
def catalogue(locale: str) -> dict[str, str]:
    """The message catalogue of ``locale`` as a dict msgid -> msgstr (empty for English)."""
    path = LOCALES_DIR / locale / "LC_MESSAGES" / "kehu.po"
    if not path.exists():
        return {}
    with path.open("rb") as fh:
        cat = read_po(fh, locale=locale)
    return {str(m.id): str(m.string) for m in cat if m.id and m.string and isinstance(m.id, str)}


def gettext(message: str) -> str:
    """Translate ``message`` into the current locale (falls back to the English source)."""
    loc = get_locale()
    if loc == "en":
        return message
    return catalogue(loc).get(message) or message


_ = gettext

__all__ = ["SUPPORTED", "_", "catalogue", "get_locale", "gettext", "normalise_locale", "set_locale"]


def N_(message: str) -> str:
    """Mark ``message`` for translation without translating it now (labels defined at import
    time and translated with :func:`gettext` when shown).

    >>> N_("Region")
    'Region'
    """
    return message
