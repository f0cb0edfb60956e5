"""Errors: RFC 9457 ``application/problem+json`` under ``/api``, HTML pages elsewhere.

An anonymous request to a page is redirected to the login page; to the API it gets 401 with
``WWW-Authenticate: Bearer``.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from kehu.errors import KehuError, KehuInputError, NotFoundError
from kehu.i18n import _

PROBLEM_JSON = "application/problem+json"
API_PREFIX = "/api/"


class NotAuthenticated(Exception):
    """No valid session or token: pages redirect to the login page, the API answers 401."""


def is_api(request: Request) -> bool:
    return request.url.path.startswith(API_PREFIX)


def problem(status: int, detail: str, title: str | None = None,
            headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    """An RFC 9457 problem response (``type`` is ``about:blank``: the title is the HTTP
    status phrase)."""
    body: dict[str, Any] = {"type": "about:blank",
                            "title": title or HTTPStatus(status).phrase,
                            "status": status, "detail": detail, **extra}
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _page(request: Request, status: int, detail: str,
          headers: dict[str, str] | None = None) -> Response:
    from kehu.web.deps import render

    return render(request, "error.html", {"status": status, "title": HTTPStatus(status).phrase,
                                          "detail": detail},
                  status_code=status, headers=headers)


def _respond(request: Request, status: int, detail: str,
             headers: dict[str, str] | None = None, **extra: Any) -> Response:
    if is_api(request):
        return problem(status, detail, headers=headers, **extra)
    return _page(request, status, detail, headers)


async def _not_authenticated(request: Request, exc: Exception) -> Response:
    if is_api(request):
        return problem(401, _("Sign in, or send an API token as 'Authorization: Bearer "
                              "<token>'."), headers={"WWW-Authenticate": "Bearer"})
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target)}", status_code=303)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    return _respond(request, exc.status_code, detail, headers=dict(exc.headers or {}) or None)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg")} for e in exc.errors()]
    detail = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors)
    return _respond(request, 422, detail, errors=errors) if is_api(request) else \
        _respond(request, 422, detail)


async def _kehu_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, KehuError)
    status = 404 if isinstance(exc, NotFoundError) else \
        400 if isinstance(exc, KehuInputError) else 500
    return _respond(request, status, str(exc))


def install(app: FastAPI) -> None:
    app.add_exception_handler(NotAuthenticated, _not_authenticated)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(KehuError, _kehu_error)
