"""Security of the web app: the secret key check, the session's CSRF token, security headers.

Sessions are Starlette's signed cookies (itsdangerous; HttpOnly, SameSite=Lax, Secure unless
in demo mode on a loopback host). A session holds the user id, a fingerprint of the password
hash (changing the password or disabling the user ends it) and a CSRF token. Every unsafe
request authenticated by the cookie must echo that token, in the form field ``csrf_token`` or
the header ``X-CSRF-Token`` (which the base template makes HTMX send); requests with an
``Authorization: Bearer`` token are exempt, as a browser never adds that header by itself.
"""

from __future__ import annotations

import secrets
from typing import Any

from fastapi import HTTPException, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kehu.errors import KehuInputError
from kehu.i18n import _
from kehu.settings import WebSection

SESSION_COOKIE = "kehu_session"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
#: placeholders people copy from examples; refused like an empty key
KNOWN_DEFAULTS = frozenset({"changethis", "change-me", "changeme", "secret", "secret-key"})
MIN_SECRET_LENGTH = 32

CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; "
       "form-action 'self'")


def signing_key(web: WebSection) -> str:
    """The key that signs sessions, refusing to start without a real one outside demo mode.

    >>> signing_key(WebSection(secret_key="x" * 40)) == "x" * 40
    True
    >>> len(signing_key(WebSection(demo=True))) > 40  # random per run in demo mode
    True
    >>> try:
    ...     signing_key(WebSection())
    ... except KehuInputError as exc:
    ...     print(type(exc).__name__)
    KehuInputError
    """
    key = web.secret_key.get_secret_value()
    if not key and web.demo:
        return secrets.token_urlsafe(48)
    if not key:
        raise KehuInputError(_(
            "[web] secret_key is empty. The web app will not start without a secret key "
            "outside demo mode. Set KEHU_WEB__SECRET_KEY to {n}+ random characters (python -c "
            "\"import secrets; print(secrets.token_urlsafe(48))\"), or use --demo on your own "
            "computer.").format(n=MIN_SECRET_LENGTH))
    if key.lower() in KNOWN_DEFAULTS or len(key) < MIN_SECRET_LENGTH:
        raise KehuInputError(_(
            "[web] secret_key is too weak: it must be at least {n} random characters and not "
            "a placeholder. Got {length} characters. Set KEHU_WEB__SECRET_KEY to the output of "
            "python -c \"import secrets; print(secrets.token_urlsafe(48))\".").format(
            n=MIN_SECRET_LENGTH, length=len(key)))
    return key


def cookie_secure(web: WebSection) -> bool:
    """Whether cookies carry the Secure flag: as configured, except demo mode on loopback.

    >>> cookie_secure(WebSection()), cookie_secure(WebSection(demo=True))
    (True, False)
    """
    if web.demo and web.host in LOOPBACK:
        return False
    return web.cookie_secure


def csrf_token(request: Request) -> str:
    """The session's CSRF token, made on first use."""
    session: dict[str, Any] = request.session
    token = session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return token


def new_session(request: Request, data: dict[str, Any]) -> None:
    """Replace the session (on login): fresh CSRF token, nothing kept from before."""
    request.session.clear()
    request.session.update(data)
    request.session["csrf"] = secrets.token_urlsafe(32)


def bearer_token(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    scheme, _sep, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


async def csrf_protect(request: Request) -> None:
    """App-wide dependency: refuse an unsafe cookie-authenticated request without the token."""
    if request.method in SAFE_METHODS or bearer_token(request) is not None:
        return
    expected = request.session.get("csrf")
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.headers.get("content-type", "").startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form()
        value = form.get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    if not isinstance(expected, str) or not sent or not secrets.compare_digest(expected, sent):
        raise HTTPException(403, detail=_("The form has expired or did not come from kehu "
                                          "(CSRF token missing or wrong). Reload the page and "
                                          "try again."))


class SecurityHeaders:
    """Pure ASGI middleware adding the security headers to every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [(b"x-content-type-options", b"nosniff"),
                            (b"x-frame-options", b"DENY"),
                            (b"referrer-policy", b"same-origin"),
                            (b"content-security-policy", CSP.encode())]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def client_ip(request: Request) -> str:
    """The client address (behind a proxy, run uvicorn with --proxy-headers)."""
    return request.client.host if request.client else "unknown"
