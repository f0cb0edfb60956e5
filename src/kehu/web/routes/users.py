"""User administration (administrators) and one's own account: password, language, API
tokens. Thin over :mod:`kehu.store.users`, which audits every change."""

from __future__ import annotations

import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Form, Path, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, Field, ValidationError

from kehu.errors import KehuInputError
from kehu.i18n import _
from kehu.store.models.people import ROLES
from kehu.store.users import (
    TokenIn,
    UserChange,
    UserIn,
    UserOut,
    create_token,
    create_user,
    list_tokens,
    list_users,
    revoke_token,
    session_fingerprint,
    set_password,
    update_user,
)
from kehu.web.deps import AdminUser, CurrentUser, StoreDep, render
from kehu.web.routes.api import PREFIX, PROBLEM
from kehu.web.security import new_session

router = APIRouter(include_in_schema=False)
api = APIRouter(prefix=PREFIX, tags=["users"], responses={401: PROBLEM, 403: PROBLEM,
                                                          422: PROBLEM})
USERNAME = Path(min_length=1, max_length=80, pattern=r"^[\w.@+-]+$")


def new_password() -> str:
    """A random first password an administrator hands over (16 URL-safe characters)."""
    return secrets.token_urlsafe(12)


def _form_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                         for e in exc.errors())
    return str(exc)


def _users_page(request: Request, store: Any, status: int = 200, **ctx: Any) -> Response:
    return render(request, "users.html", {"users": list_users(store), "roles": ROLES, **ctx},
                  status_code=status)


@router.get("/admin/users")
def users_page(request: Request, admin: AdminUser, store: StoreDep) -> Response:
    return _users_page(request, store)


@router.post("/admin/users")
def users_create(request: Request, admin: AdminUser, store: StoreDep,
                 username: Annotated[str, Form(max_length=80)],
                 role: Annotated[str, Form(max_length=40)],
                 display_name: Annotated[str, Form(max_length=200)] = "",
                 email: Annotated[str, Form(max_length=320)] = "",
                 employee_id: Annotated[str, Form(max_length=80)] = "",
                 locale: Annotated[str, Form(max_length=10)] = "zh_CN") -> Response:
    """Create a user with a random first password, shown once on the page."""
    password = new_password()
    values = {"username": username.strip(), "role": role, "locale": locale,
              "display_name": display_name.strip() or None, "email": email.strip() or None,
              "employee_id": employee_id.strip() or None}
    try:
        made = create_user(store, UserIn(**values, password=password), actor=admin.actor)
    except (ValidationError, KehuInputError) as exc:
        return _users_page(request, store, 422, error=_form_error(exc), form=values)
    return _users_page(request, store, 201, created=made, password=password)


@router.post("/admin/users/{username}")
def users_update(request: Request, admin: AdminUser, store: StoreDep,
                 username: Annotated[str, USERNAME],
                 role: Annotated[str, Form(max_length=40)],
                 is_active: Annotated[str, Form(max_length=5)] = "",
                 display_name: Annotated[str, Form(max_length=200)] = "",
                 email: Annotated[str, Form(max_length=320)] = "",
                 employee_id: Annotated[str, Form(max_length=80)] = "") -> Response:
    """Change a user's role, names, employee id and whether they may sign in."""
    try:
        change = UserChange(role=role, is_active=bool(is_active),
                            display_name=display_name, email=email, employee_id=employee_id)
        update_user(store, username, change, actor=admin.actor)
    except (ValidationError, KehuInputError) as exc:
        return _users_page(request, store, 422, error=_form_error(exc))
    return RedirectResponse("/admin/users", status_code=303)


@router.post("/admin/users/{username}/password")
def users_reset_password(request: Request, admin: AdminUser, store: StoreDep,
                         username: Annotated[str, USERNAME]) -> Response:
    """A new random password for ``username`` (shown once); their sessions end."""
    password = new_password()
    user = set_password(store, username, password, actor=admin.actor)
    return _users_page(request, store, reset=user, password=password)


# -- one's own account ----------------------------------------------------------------------

def _account_page(request: Request, store: Any, me: CurrentUser, status: int = 200,
                  **ctx: Any) -> Response:
    return render(request, "account.html", {"tokens": list_tokens(store, me.user.id), **ctx},
                  status_code=status)


@router.get("/account")
def account_page(request: Request, me: CurrentUser, store: StoreDep) -> Response:
    return _account_page(request, store, me)


@router.post("/account/password")
def account_password(request: Request, me: CurrentUser, store: StoreDep,
                     current: Annotated[str, Form(max_length=1024)],
                     new: Annotated[str, Form(max_length=1024)],
                     repeat: Annotated[str, Form(max_length=1024)]) -> Response:
    """Change one's own password; other sessions end, this one goes on."""
    if new != repeat:
        return _account_page(request, store, me, 422, error=_(
            "The new password and its repetition differ. Nothing was changed."))
    try:
        set_password(store, me.user.username, new, actor=me.actor, old_password=current)
    except KehuInputError as exc:
        return _account_page(request, store, me, 422, error=str(exc))
    new_session(request, {"uid": me.user.id, "fp": session_fingerprint(store, me.user.id)})
    return _account_page(request, store, me, message=_("Your password was changed."))


@router.post("/account/tokens")
def account_token(request: Request, me: CurrentUser, store: StoreDep,
                  name: Annotated[str, Form(min_length=1, max_length=200)]) -> Response:
    made = create_token(store, me.user.id, TokenIn(name=name), actor=me.actor)
    return _account_page(request, store, me, new_token=made)


@router.post("/account/tokens/{token_id}/revoke")
def account_token_revoke(request: Request, me: CurrentUser, store: StoreDep,
                         token_id: Annotated[int, Path(ge=1, le=2**63 - 1)]) -> Response:
    revoke_token(store, me.user.id, token_id, actor=me.actor)
    return RedirectResponse("/account", status_code=303)


# -- API ------------------------------------------------------------------------------------

class NewUser(BaseModel):
    """A user made through the API, with the first password to hand over."""

    user: UserOut
    password: str


class PasswordChange(BaseModel):
    current: str = Field(max_length=1024)
    new: str = Field(min_length=8, max_length=1024)


@api.get("/users", response_model=list[UserOut])
def api_users(admin: AdminUser, store: StoreDep) -> list[UserOut]:
    """Every user (administrators only)."""
    return list_users(store)


@api.post("/users", response_model=NewUser, status_code=201)
def api_create_user(body: UserIn, admin: AdminUser, store: StoreDep) -> NewUser:
    """Create a user; without a password in the body a random one is made and returned."""
    password = body.password or new_password()
    made = create_user(store, body.model_copy(update={"password": password}), actor=admin.actor)
    return NewUser(user=made, password=password)


@api.patch("/users/{username}", response_model=UserOut, responses={404: PROBLEM})
def api_update_user(username: Annotated[str, USERNAME], body: UserChange, admin: AdminUser,
                    store: StoreDep) -> UserOut:
    return update_user(store, username, body, actor=admin.actor)


@api.put("/me/password", status_code=204)
def api_change_password(body: PasswordChange, me: CurrentUser, store: StoreDep) -> Response:
    """Change your own password (sessions made with the old one end; tokens go on)."""
    set_password(store, me.user.username, body.new, actor=me.actor, old_password=body.current)
    return Response(status_code=204)

