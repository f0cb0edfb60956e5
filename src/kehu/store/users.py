"""People who use kehu: users, their passwords (argon2id), API tokens and login throttling.

Inputs (:class:`UserIn`, :class:`TokenIn`) and outputs (:class:`UserOut`, :class:`TokenOut`)
are pydantic models apart from the stored rows, so a password hash never leaves this module.
Every change leaves an audit entry.

>>> from kehu.store.db import AppStore
>>> store = AppStore("sqlite://"); store.upgrade()
>>> u = create_user(store, UserIn(username="li.na", role="analyst", password="s3cret-pass"),
...                 actor="cli")
>>> u.role, authenticate(store, "li.na", "s3cret-pass").username
('analyst', 'li.na')
>>> authenticate(store, "li.na", "wrong") is None
True
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any, Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select

from kehu.errors import KehuInputError, NotFoundError
from kehu.i18n import _
from kehu.store.db import AppStore
from kehu.store.models import ApiToken, AuditEntry, LoginAttempt, User

Role = Literal["admin", "analyst", "manager", "account_manager", "viewer"]
TOKEN_PREFIX = "kehu_"

# -- schemas --------------------------------------------------------------------------------


class UserIn(BaseModel):
    """A user as an administrator creates one."""

    username: str = Field(min_length=1, max_length=80, pattern=r"^[\w.@+-]+$")
    role: Role = "viewer"
    password: str | None = Field(None, min_length=8, max_length=1024)
    display_name: str | None = Field(None, max_length=200)
    email: str | None = Field(None, max_length=320)
    employee_id: str | None = Field(None, max_length=80)
    locale: Literal["zh_CN", "en"] = "zh_CN"


class UserOut(BaseModel):
    """A user as shown by the CLI and the API (no password hash)."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    username: str
    display_name: str | None
    email: str | None
    role: Role
    locale: str
    is_active: bool
    employee_id: str | None


class TokenIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)


class TokenOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    created_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


class NewToken(TokenOut):
    """A token just created: the only time its secret is shown."""

    token: str


# -- passwords ------------------------------------------------------------------------------


@cache
def _hasher() -> PasswordHasher:
    return PasswordHasher()  # argon2id with the library's (RFC 9106) parameters


def hash_password(password: str) -> str:
    """An argon2id hash of ``password``.

    >>> hash_password("s3cret-pass").startswith("$argon2id$")
    True
    """
    return _hasher().hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches ``password_hash`` (False for a user without one)."""
    if not password_hash:
        _hasher().hash(password)  # same work either way: no timing hint that the user is unknown
        return False
    try:
        return _hasher().verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def password_fingerprint(password_hash: str | None) -> str:
    """A short digest of the stored hash; a session carries it, so changing the password
    ends every session made with the old one."""
    return hashlib.sha256((password_hash or "").encode()).hexdigest()[:16]


def hash_token(token: str) -> str:
    """How an API token is stored: its SHA-256 (tokens are long and random, no salt needed)."""
    return hashlib.sha256(token.encode()).hexdigest()


# -- users ----------------------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(UTC)


def _require_employee_id(role: str, employee_id: str | None) -> None:
    """An account manager without an employee id would see no customers: refused."""
    if role == "account_manager" and not employee_id:
        raise KehuInputError(_("An account manager needs an employee id (the id their "
                               "customers are assigned to). Set employee_id."))


def create_user(store: AppStore, user: UserIn, actor: str) -> UserOut:
    _require_employee_id(user.role, user.employee_id)
    with store.session() as s:
        if s.scalar(select(User.id).where(User.username == user.username)) is not None:
            raise KehuInputError(_("A user named {name!r} exists already. Choose another name, "
                                   "or see 'kehu user list'.").format(name=user.username))
        row = User(username=user.username, role=user.role, display_name=user.display_name,
                   email=user.email, employee_id=user.employee_id, locale=user.locale,
                   is_active=True,
                   password_hash=hash_password(user.password) if user.password else None)
        s.add(row)
        s.flush()
        s.add(AuditEntry(actor=actor, action="create", object_type="user",
                         object_id=user.username, details={"role": user.role}))
        return UserOut.model_validate(row)


def list_users(store: AppStore) -> list[UserOut]:
    with store.session() as s:
        return [UserOut.model_validate(u) for u in s.scalars(select(User).order_by(User.username))]


def get_user(store: AppStore, user_id: int) -> UserOut | None:
    with store.session() as s:
        row = s.get(User, user_id)
        return UserOut.model_validate(row) if row is not None else None


def session_user(store: AppStore, user_id: int, fingerprint: str) -> UserOut | None:
    """The active user a session names, if the session's password fingerprint still holds."""
    with store.session() as s:
        row = s.get(User, user_id)
        if row is None or not row.is_active or \
                not secrets.compare_digest(password_fingerprint(row.password_hash), fingerprint):
            return None
        return UserOut.model_validate(row)


def session_fingerprint(store: AppStore, user_id: int) -> str:
    """The fingerprint a new session of this user carries (see :func:`session_user`)."""
    with store.session() as s:
        row = s.get(User, user_id)
        return password_fingerprint(row.password_hash if row is not None else None)


def disable_user(store: AppStore, username: str, actor: str) -> UserOut:
    """Deactivate a user: sessions and API tokens stop working at once."""
    with store.session() as s:
        row = s.scalar(select(User).where(User.username == username))
        if row is None:
            raise NotFoundError(_("No user named {name!r}. See 'kehu user list'.").format(
                name=username))
        row.is_active = False
        s.add(AuditEntry(actor=actor, action="disable", object_type="user", object_id=username))
        return UserOut.model_validate(row)


class UserChange(BaseModel):
    """What an administrator may change of a user (unset fields stay as they are)."""

    model_config = ConfigDict(extra="forbid")

    role: Role | None = None
    display_name: str | None = Field(None, max_length=200)
    email: str | None = Field(None, max_length=320)
    employee_id: str | None = Field(None, max_length=80)
    is_active: bool | None = None


def _user_row(s: Any, username: str) -> User:
    row: User | None = s.scalar(select(User).where(User.username == username))
    if row is None:
        raise NotFoundError(_("No user named {name!r}. See 'kehu user list'.").format(
            name=username))
    return row


def _active_admins(s: Any) -> int:
    return int(s.scalar(select(func.count()).select_from(User).where(
        User.role == "admin", User.is_active.is_(True))) or 0)


def update_user(store: AppStore, username: str, change: UserChange, actor: str) -> UserOut:
    """Change a user's role, names, employee id or active flag; audited with before and after.

    Refuses to leave the workspace without an active administrator, and an account manager
    without an employee id (they would see no customers).
    """
    fields = change.model_dump(exclude_unset=True)
    with store.session() as s:
        row = _user_row(s, username)
        before = {k: getattr(row, k) for k in fields}
        for k, v in fields.items():
            setattr(row, k, v.strip() or None if isinstance(v, str) else v)
        _require_employee_id(row.role, row.employee_id)
        s.flush()
        if _active_admins(s) == 0:
            raise KehuInputError(_("This change would leave no active administrator. Make "
                                   "another user an administrator first."))
        after = {k: getattr(row, k) for k in fields}
        if before != after:
            s.add(AuditEntry(actor=actor, action="update", object_type="user",
                             object_id=username, details={"before": before, "after": after}))
        return UserOut.model_validate(row)


def set_password(store: AppStore, username: str, password: str, actor: str,
                 old_password: str | None = None) -> UserOut:
    """Set a user's password (an administrator's reset), or change one's own when
    ``old_password`` is given and right. Every session made with the old password ends."""
    if not 8 <= len(password) <= 1024:
        raise KehuInputError(_("A password needs 8 to 1024 characters; this one has "
                               "{n}.").format(n=len(password)))
    with store.session() as s:
        row = _user_row(s, username)
        if old_password is not None and not verify_password(row.password_hash, old_password):
            raise KehuInputError(_("The current password is wrong. Nothing was changed."))
        row.password_hash = hash_password(password)
        s.add(AuditEntry(actor=actor, action="set_password", object_type="user",
                         object_id=username,
                         details={"self": old_password is not None}))
        return UserOut.model_validate(row)


def set_locale(store: AppStore, user_id: int, locale: Literal["zh_CN", "en"],
               actor: str) -> None:
    with store.session() as s:
        row = s.get(User, user_id)
        if row is not None and row.locale != locale:
            row.locale = locale
            s.add(AuditEntry(actor=actor, action="update", object_type="user",
                             object_id=row.username, details={"locale": locale}))


def authenticate(store: AppStore, username: str, password: str) -> UserOut | None:
    """The active user with this name and password, else None (no hint which was wrong)."""
    with store.session() as s:
        row = s.scalar(select(User).where(User.username == username))
        ok = verify_password(row.password_hash if row is not None else None, password)
        if row is None or not ok or not row.is_active:
            return None
        if row.password_hash and _hasher().check_needs_rehash(row.password_hash):
            row.password_hash = hash_password(password)
        return UserOut.model_validate(row)


# -- login throttling -----------------------------------------------------------------------


def note_login_attempt(store: AppStore, username: str, ip: str, succeeded: bool) -> None:
    with store.session() as s:
        s.add(LoginAttempt(at=_now(), username=username[:80], ip=ip[:64], succeeded=succeeded))


def login_retry_after(store: AppStore, username: str, ip: str, max_failures: int,
                      window_seconds: int) -> int:
    """Seconds until ``username`` may try again from ``ip`` (0: now). Failures count within
    the window and after the last successful login."""
    since = _now() - timedelta(seconds=window_seconds)
    with store.session() as s:
        last_ok = s.scalar(select(func.max(LoginAttempt.at)).where(
            LoginAttempt.username == username, LoginAttempt.ip == ip,
            LoginAttempt.succeeded.is_(True), LoginAttempt.at >= since))
        failures = list(s.scalars(
            select(LoginAttempt.at).where(
                LoginAttempt.username == username, LoginAttempt.ip == ip,
                LoginAttempt.succeeded.is_(False), LoginAttempt.at >= (last_ok or since))
            .order_by(LoginAttempt.at.desc()).limit(max_failures)))
    if len(failures) < max_failures:
        return 0
    oldest = failures[-1]
    if oldest.tzinfo is None:  # SQLite gives naive UTC datetimes back
        oldest = oldest.replace(tzinfo=UTC)
    return max(1, int((oldest + timedelta(seconds=window_seconds) - _now()).total_seconds()) + 1)


# -- API tokens -----------------------------------------------------------------------------


def create_token(store: AppStore, user_id: int, token: TokenIn, actor: str) -> NewToken:
    plain = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with store.session() as s:
        row = ApiToken(user_id=user_id, name=token.name, token_hash=hash_token(plain),
                       created_at=_now())
        s.add(row)
        s.flush()
        s.add(AuditEntry(actor=actor, action="create", object_type="api_token",
                         object_id=str(row.id), details={"name": token.name}))
        return NewToken(token=plain, **TokenOut.model_validate(row).model_dump())


def list_tokens(store: AppStore, user_id: int) -> list[TokenOut]:
    with store.session() as s:
        return [TokenOut.model_validate(t) for t in s.scalars(
            select(ApiToken).where(ApiToken.user_id == user_id).order_by(ApiToken.id))]


def revoke_token(store: AppStore, user_id: int, token_id: int, actor: str) -> TokenOut:
    """Revoke one of the user's own tokens."""
    with store.session() as s:
        row = s.get(ApiToken, token_id)
        if row is None or row.user_id != user_id:
            raise NotFoundError(_("No API token {id} of yours.").format(id=token_id))
        if row.revoked_at is None:
            row.revoked_at = _now()
            s.add(AuditEntry(actor=actor, action="revoke", object_type="api_token",
                             object_id=str(token_id)))
        return TokenOut.model_validate(row)


def token_user(store: AppStore, token: str) -> UserOut | None:
    """The active user owning an unrevoked token, noting when the token was used."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    with store.session() as s:
        row = s.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token),
                                              ApiToken.revoked_at.is_(None)))
        if row is None:
            return None
        user = s.get(User, row.user_id)
        if user is None or not user.is_active:
            return None
        row.last_used_at = _now()
        return UserOut.model_validate(user)


__all__ = ["NewToken", "Role", "TokenIn", "TokenOut", "UserIn", "UserOut", "authenticate",
           "create_token", "create_user", "disable_user", "get_user", "hash_password",
           "hash_token", "list_tokens", "list_users", "login_retry_after", "note_login_attempt",
           "password_fingerprint", "revoke_token", "session_fingerprint", "session_user",
           "set_locale", "token_user", "verify_password"]
