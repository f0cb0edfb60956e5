"""Typed dependencies, declared once: every route takes what it needs from here.

``WorkspaceDep``, ``StoreDep``, ``SettingsDep`` give the app's parts; ``CurrentUser`` is the
person or script behind the request (session cookie or ``Authorization: Bearer`` token);
``require_role(...)`` narrows it; ``Audit`` records writes and exports; ``render`` renders a
page in the request's language.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import Depends, HTTPException, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from kehu.i18n import _, set_locale
from kehu.settings import Settings
from kehu.store import AppStore
from kehu.store.services import record
from kehu.store.users import Role, UserOut, session_user, token_user
from kehu.web.errors import NotAuthenticated
from kehu.web.i18n import request_locale
from kehu.web.security import bearer_token, csrf_token
from kehu.workspace import Workspace


@dataclass
class WebContext:
    """What ``create_app`` builds once and every request shares (``app.state.kehu``)."""

    settings: Settings
    workspace: Workspace
    templates: Jinja2Templates


def get_context(request: Request) -> WebContext:
    ctx: WebContext = request.app.state.kehu
    return ctx


def get_workspace(request: Request) -> Workspace:
    return get_context(request).workspace


def get_store(request: Request) -> AppStore:
    return get_context(request).workspace.store


def get_settings(request: Request) -> Settings:
    return get_context(request).settings


WorkspaceDep = Annotated[Workspace, Depends(get_workspace)]
StoreDep = Annotated[AppStore, Depends(get_store)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


@dataclass(frozen=True)
class Principal:
    """Who is behind a request, and how they proved it."""

    user: UserOut
    via: Literal["session", "token"]

    @property
    def actor(self) -> str:
        """The name the audit log records."""
        return self.user.username if self.via == "session" else f"{self.user.username} (token)"


def optional_user(request: Request, store: StoreDep) -> Principal | None:
    token = bearer_token(request)
    if token is not None:  # a bad token is refused, never silently replaced by the cookie
        user = token_user(store, token)
        if user is None:
            raise NotAuthenticated
        principal = Principal(user, "token")
    else:
        uid, fp = request.session.get("uid"), request.session.get("fp")
        if not isinstance(uid, int) or not isinstance(fp, str):
            return None
        user = session_user(store, uid, fp)
        if user is None:
            request.session.clear()
            return None
        principal = Principal(user, "session")
    request.state.principal = principal
    return principal


def current_user(principal: Annotated[Principal | None, Depends(optional_user)]) -> Principal:
    if principal is None:
        raise NotAuthenticated
    return principal


OptionalUser = Annotated[Principal | None, Depends(optional_user)]
CurrentUser = Annotated[Principal, Depends(current_user)]


def require_role(*roles: Role) -> Callable[[Principal], Principal]:
    """A dependency admitting only users with one of ``roles`` (403 for the others).

    >>> admin_only = require_role("admin")
    """

    def check(principal: CurrentUser) -> Principal:
        if principal.user.role not in roles:
            raise HTTPException(403, detail=_("Your role ({role}) may not do this; it needs "
                                              "one of: {roles}.").format(
                role=principal.user.role, roles=", ".join(roles)))
        return principal

    return check


AdminUser = Annotated[Principal, Depends(require_role("admin"))]

# Who may do what (the role table of docs/web.md); routes depend on these, never on names.
#: the OLAP explorer and read-only analytics
ANALYTICS_READERS: tuple[Role, ...] = ("admin", "analyst", "manager", "viewer")
#: segments and campaigns: see them
PLANNERS: tuple[Role, ...] = ("admin", "analyst", "manager")
#: segments and campaigns: create, save, launch
ANALYSTS: tuple[Role, ...] = ("admin", "analyst")
#: campaigns: approve before launch
APPROVERS: tuple[Role, ...] = ("admin", "manager")
#: imports, models, settings
CONFIGURERS: tuple[Role, ...] = ("admin", "analyst")
#: a task inbox (everyone with customers to look after or a team to lead)
STAFF: tuple[Role, ...] = ("admin", "analyst", "manager", "account_manager")

AnalyticsReader = Annotated[Principal, Depends(require_role(*ANALYTICS_READERS))]
Planner = Annotated[Principal, Depends(require_role(*PLANNERS))]
Analyst = Annotated[Principal, Depends(require_role(*ANALYSTS))]
Approver = Annotated[Principal, Depends(require_role(*APPROVERS))]
Configurer = Annotated[Principal, Depends(require_role(*CONFIGURERS))]
Staff = Annotated[Principal, Depends(require_role(*STAFF))]


@dataclass(frozen=True)
class CustomerScope:
    """Which customers a user may see: all of them, or (account managers) those assigned to
    their employee id. Services filter by it; templates never decide."""

    all_customers: bool
    employee_id: str | None = None


def customer_scope(principal: CurrentUser) -> CustomerScope:
    if principal.user.role == "account_manager":
        return CustomerScope(False, principal.user.employee_id)
    return CustomerScope(True)


ScopeDep = Annotated[CustomerScope, Depends(customer_scope)]


class Auditor:
    """Records a write or an export by the current user (``audit("export", "segment", id)``)."""

    def __init__(self, store: StoreDep, principal: CurrentUser) -> None:
        self.store = store
        self.principal = principal

    def __call__(self, action: str, object_type: str, object_id: str | None = None,
                 details: dict[str, Any] | None = None) -> None:
        record(self.store, self.principal.actor, action, object_type, object_id, details)


Audit = Annotated[Auditor, Depends(Auditor)]


def apply_locale(request: Request) -> str:
    """Set and return the request's language, the signed-in user's setting included (call it
    in a route before translating anything outside a template)."""
    ctx = get_context(request)
    principal: Principal | None = getattr(request.state, "principal", None)
    locale = request_locale(request, ctx.settings.company.locale,
                            principal.user.locale if principal else None)
    set_locale(locale)
    return locale


def render(request: Request, template: str, context: dict[str, Any] | None = None,
           status_code: int = 200, headers: dict[str, str] | None = None) -> HTMLResponse:
    """Render a page in the request's language, with the user, CSRF token and settings."""
    ctx = get_context(request)
    principal: Principal | None = getattr(request.state, "principal", None)
    locale = apply_locale(request)
    values = {"request": request, "user": principal.user if principal else None,
              "csrf_token": csrf_token(request), "locale": locale,
              "company": ctx.settings.company.name, "currency": ctx.settings.company.currency,
              "demo": ctx.settings.web.demo, **(context or {})}
    return ctx.templates.TemplateResponse(request, template, values, status_code=status_code,
                                          headers=headers)
