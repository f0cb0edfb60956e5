"""Language of each request and locale-aware formatting (Babel) for the templates.

The language is, in order: ``?lang=`` on the request, the signed-in user's setting, the
``kehu_lang`` cookie the language switch sets, the browser's ``Accept-Language``, and the
workspace's ``[company] locale``.

>>> from_accept_language("en-GB,en;q=0.9,zh-CN;q=0.8")
'en'
>>> from_accept_language("fr-FR, zh;q=0.5, en;q=0.4")
'zh_CN'
>>> from_accept_language("fr") is None
True
>>> money(1234.5, "zh_CN"), money(1234.5, "en"), number(0.25, "en", percent=True)
('¥1,234.50', '¥1,234.50', '25%')
"""

from __future__ import annotations

import functools
from datetime import date, datetime
from typing import Any

from babel import Locale
from babel.dates import format_date, format_datetime
from babel.numbers import format_currency, format_decimal, format_percent
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from kehu.i18n import SUPPORTED, get_locale, set_locale

LANG_COOKIE = "kehu_lang"
LANG_PARAM = "lang"


def supported(value: str | None) -> str | None:
    """``value`` as a supported locale, or None when it names none.

    >>> supported("zh-CN"), supported("en_US"), supported("de")
    ('zh_CN', 'en', None)
    """
    if not value:
        return None
    v = value.strip().replace("-", "_").lower()
    if v.startswith("zh"):
        return "zh_CN"
    if v == "en" or v.startswith("en_"):
        return "en"
    return None


def from_accept_language(header: str | None) -> str | None:
    """The supported locale the browser prefers most, by ``q`` weight."""
    if not header:
        return None
    ranked: list[tuple[float, int, str]] = []
    for i, part in enumerate(header.split(",")):
        tag, _sep, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        loc = supported(tag)
        if loc and q > 0:
            ranked.append((-q, i, loc))
    return min(ranked)[2] if ranked else None


def request_locale(request: Request, default: str, user_locale: str | None = None) -> str:
    return (supported(request.query_params.get(LANG_PARAM)) or supported(user_locale)
            or supported(request.cookies.get(LANG_COOKIE))
            or from_accept_language(request.headers.get("accept-language"))
            or supported(default) or "en")


class LocaleMiddleware:
    """Sets the request's locale (before the user is known) for messages and error pages."""

    def __init__(self, app: ASGIApp, default: str) -> None:
        self.app = app
        self.default = default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            set_locale(request_locale(Request(scope), self.default))
        await self.app(scope, receive, send)


# -- formatting (Jinja filters) -------------------------------------------------------------


def _babel(locale: str | None) -> Locale:
    loc = locale or get_locale()
    return _parsed(loc if loc in SUPPORTED else "en")


@functools.cache
def _parsed(code: str) -> Locale:
    """Babel's Locale, parsed once: parsing a code on every number cost a third of a second
    on a dashboard of 650 figures."""
    return Locale.parse(code)


def number(value: Any, locale: str | None = None, digits: int = 0,
           percent: bool = False) -> str:
    if value is None:
        return "–"
    if percent:
        return format_percent(value, format="#,##0." + "0" * digits + "%" if digits else None,
                              locale=_babel(locale))
    fmt = "#,##0" + ("." + "0" * digits if digits else "")
    return format_decimal(value, format=fmt, locale=_babel(locale))


def money(value: Any, locale: str | None = None, currency: str = "CNY", digits: int = 2) -> str:
    """An amount with its currency; yuan show as ``¥`` in every language."""
    if value is None:
        return "–"
    fmt = "¤#,##0" + ("." + "0" * digits if digits else "")
    text = format_currency(value, currency, format=fmt, locale=_babel(locale),
                           currency_digits=False)
    return text.replace("CN¥", "¥").replace("￥", "¥")


def day(value: date | datetime | None, locale: str | None = None, fmt: str = "medium") -> str:
    if value is None:
        return "–"
    if isinstance(value, datetime):
        return format_datetime(value, fmt, locale=_babel(locale))
    return format_date(value, fmt, locale=_babel(locale))


FILTERS = {"number": number, "money": money, "day": day}
