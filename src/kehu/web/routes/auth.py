"""Signing in and out, and the language switch."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from kehu.i18n import _
from kehu.store.services import record
from kehu.store.users import (
    authenticate,
    login_retry_after,
    note_login_attempt,
    session_fingerprint,
    set_locale,
)
from kehu.web.deps import OptionalUser, SettingsDep, StoreDep, render
from kehu.web.i18n import LANG_COOKIE, supported
from kehu.web.security import client_ip, cookie_secure, new_session

router = APIRouter(include_in_schema=False)


def safe_next(target: str | None) -> str:
    """Only a path on this site (no ``//host`` or scheme) may be a redirect target.

    >>> safe_next("/admin/audit"), safe_next("//evil.example"), safe_next("https://x")
    ('/admin/audit', '/', '/')
    """
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


@router.get("/login")
def login_page(request: Request, user: OptionalUser, next: str = "/") -> Response:
    if user is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    return render(request, "login.html", {"next": safe_next(next)})


@router.post("/login")
def login(request: Request, store: StoreDep, settings: SettingsDep,
          username: Annotated[str, Form(max_length=80)],
          password: Annotated[str, Form(max_length=1024)],
          next: Annotated[str, Form()] = "/") -> Response:
    ip = client_ip(request)
    username = username.strip()
    web = settings.web
    wait = login_retry_after(store, username, ip, web.login_max_failures,
                             web.login_window_seconds)
    if wait:
        record(store, username, "login_refused", "session", username, {"ip": ip})
        return render(request, "login.html", {
            "next": safe_next(next), "username": username,
            "error": _("Too many failed sign-ins. Try again in {n} seconds.").format(n=wait)},
            status_code=429, headers={"Retry-After": str(wait)})
    user = authenticate(store, username, password)
    note_login_attempt(store, username, ip, succeeded=user is not None)
    if user is None:
        record(store, username, "login_failed", "session", username, {"ip": ip})
        return render(request, "login.html", {
            "next": safe_next(next), "username": username,
            "error": _("Wrong user name or password.")}, status_code=401)
    new_session(request, {"uid": user.id, "fp": session_fingerprint(store, user.id)})
    record(store, user.username, "login", "session", user.username, {"ip": ip})
    return RedirectResponse(safe_next(next), status_code=303)


@router.post("/logout")
def logout(request: Request, store: StoreDep, user: OptionalUser) -> Response:
    if user is not None and user.via == "session":
        record(store, user.actor, "logout", "session", user.user.username)
    request.session.clear()
    return RedirectResponse("/login", status_code=303)


@router.post("/lang")
def switch_language(request: Request, store: StoreDep, settings: SettingsDep,
                    user: OptionalUser, lang: Annotated[str, Form()],
                    next: Annotated[str, Form()] = "/") -> Response:
    """Remember the chosen language: in a cookie, and in the user's setting when signed in."""
    locale = supported(lang) or settings.company.locale
    if user is not None and user.via == "session" and locale in ("zh_CN", "en"):
        set_locale(store, user.user.id, locale, actor=user.actor)  # type: ignore[arg-type]
    response = RedirectResponse(safe_next(next), status_code=303)
    response.set_cookie(LANG_COOKIE, locale, max_age=365 * 86400, httponly=True,
                        samesite="lax", secure=cookie_secure(settings.web))
    return response
