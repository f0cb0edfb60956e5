"""Services over the app store: every write goes through here and leaves an audit entry.

Inputs are validated pydantic models (what a person authors); outputs are the ORM rows
(detached, safe to read after the session).

>>> from kehu.store.db import AppStore
>>> store = AppStore("sqlite://"); store.upgrade()
>>> n = add_note(store, NoteIn(customer_id="C1", text="客户希望下月再联系"), actor="analyst1")
>>> [x.text for x in list_notes(store, "C1")]
['客户希望下月再联系']
>>> [(a.action, a.object_type) for a in audit_log(store)]
[('create', 'note')]
"""

from __future__ import annotations

import threading
import time as time_
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal, TypeVar, cast
from weakref import WeakKeyDictionary

from pydantic import BaseModel, Field
from sqlalchemy import or_, select

from kehu.errors import KehuInputError, NotFoundError
from kehu.i18n import _
from kehu.store.db import AppStore
from kehu.store.models import (
    Assignment,
    AuditEntry,
    Definition,
    LoggedInteraction,
    Note,
    Task,
)
from kehu.store.models.crm import OPEN_STATUSES

T = TypeVar("T", Note, LoggedInteraction, Task)

# -- inputs ---------------------------------------------------------------------------------


class NoteIn(BaseModel):
    customer_id: str = Field(min_length=1, max_length=80)
    text: str = Field(min_length=1, max_length=20_000)
    author_id: int | None = None


#: the channels an interaction can come through (MISSION D5)
Channel = Literal["store", "hotline", "sms", "web", "app", "visit", "email", "wechat", "mail",
                  "push", "partner", "other"]


class InteractionIn(BaseModel):
    customer_id: str = Field(min_length=1, max_length=80)
    time: datetime
    channel: Channel
    type: str | None = Field(None, max_length=80)
    direction: Literal["inbound", "outbound"] | None = None
    outcome: str | None = Field(None, max_length=200)
    text: str | None = Field(None, max_length=20_000)
    employee_id: str | None = Field(None, max_length=80)
    user_id: int | None = None


class TaskIn(BaseModel):
    title: str = Field(min_length=1, max_length=300)
    customer_id: str | None = None
    assignee_id: int | None = None
    description: str | None = None
    due_date: date | None = None
    priority: Literal["low", "normal", "high"] = "normal"
    origin: str | None = None


class DefinitionIn(BaseModel):
    kind: Literal["segment", "alert_rule", "campaign", "contact_policy", "programme",
                  "service_levels", "tier_scheme", "lifecycle_rules"]
    name: str = Field(min_length=1, max_length=200)
    description: str | None = None
    spec: dict[str, Any]


# -- audit ----------------------------------------------------------------------------------


def record(store: AppStore, actor: str, action: str, object_type: str,
           object_id: str | None = None, details: dict[str, Any] | None = None) -> None:
    """Write one audit entry (used by every write here, and for exports elsewhere)."""
    with store.session() as s:
        s.add(AuditEntry(actor=actor, action=action, object_type=object_type,
                         object_id=object_id, details=details))


def audit_log(store: AppStore, limit: int = 100, *, offset: int = 0, actor: str | None = None,
              action: str | None = None, object_type: str | None = None,
              object_id: str | None = None, since: date | None = None,
              until: date | None = None) -> list[AuditEntry]:
    """Audit entries, newest first, optionally only those of one actor, action, object type
    or object, and from ``since`` to ``until`` (days, both included; times as stored, UTC).
    """
    q = select(AuditEntry)
    for column, value in ((AuditEntry.actor, actor), (AuditEntry.action, action),
                          (AuditEntry.object_type, object_type),
                          (AuditEntry.object_id, object_id)):
        if value:
            q = q.where(column == value)
    if since is not None:
        q = q.where(AuditEntry.at >= datetime.combine(since, time.min, UTC))
    if until is not None:
        q = q.where(AuditEntry.at < datetime.combine(until + timedelta(days=1), time.min, UTC))
    with store.session() as s:
        return list(s.scalars(q.order_by(AuditEntry.id.desc()).offset(offset).limit(limit)))


# -- notes and interactions -----------------------------------------------------------------


def _create(store: AppStore, row: T, actor: str, object_type: str,
            details: dict[str, Any]) -> T:
    """Insert ``row`` and its audit entry in one transaction."""
    with store.session() as s:
        s.add(row)
        s.flush()
        s.add(AuditEntry(actor=actor, action="create", object_type=object_type,
                         object_id=str(row.id), details=details))
    return row


def add_note(store: AppStore, note: NoteIn, actor: str) -> Note:
    return _create(store, Note(**note.model_dump()), actor, "note",
                   {"customer_id": note.customer_id})


def list_notes(store: AppStore, customer_id: str) -> list[Note]:
    with store.session() as s:
        return list(s.scalars(select(Note).where(Note.customer_id == customer_id)
                              .order_by(Note.created_at.desc(), Note.id.desc())))


def log_interaction(store: AppStore, item: InteractionIn, actor: str) -> LoggedInteraction:
    return _create(store, LoggedInteraction(**item.model_dump()), actor, "interaction",
                   {"customer_id": item.customer_id})


def list_interactions(store: AppStore, customer_id: str) -> list[LoggedInteraction]:
    with store.session() as s:
        return list(s.scalars(select(LoggedInteraction)
                              .where(LoggedInteraction.customer_id == customer_id)
                              .order_by(LoggedInteraction.time.desc())))


# -- tasks ----------------------------------------------------------------------------------


def create_task(store: AppStore, task: TaskIn, actor: str) -> Task:
    return _create(store, Task(**task.model_dump()), actor, "task", {"title": task.title})


def list_tasks(store: AppStore, assignee_id: int | None = None, status: str | None = "open",
               customer_id: str | None = None, team: str | None = None) -> list[Task]:
    q = select(Task)
    if assignee_id is not None:
        q = q.where(Task.assignee_id == assignee_id)
    if team is not None:
        q = q.where(Task.team == team)
    if status is not None:
        q = q.where(Task.status == status)
    if customer_id is not None:
        q = q.where(Task.customer_id == customer_id)
    with store.session() as s:
        return list(s.scalars(q.order_by(Task.due_date.is_(None), Task.due_date, Task.id)))


def complete_task(store: AppStore, task_id: int, actor: str,
                  status: Literal["done", "cancelled", "dismissed"] = "done") -> Task:
    """Close an open (or snoozed) task as done, cancelled or dismissed."""
    with store.session() as s:
        row = s.get(Task, task_id)
        if row is None:
            raise NotFoundError(_("No task with id {id}.").format(id=task_id))
        if row.status not in OPEN_STATUSES:
            raise KehuInputError(_("Task {id} is already {status}.").format(
                id=task_id, status=row.status))
        row.status = status
        row.snoozed_until = None
        row.completed_at = datetime.now(UTC)
        s.add(AuditEntry(actor=actor, action=status, object_type="task", object_id=str(task_id)))
    return row


# -- account managers -----------------------------------------------------------------------


def assign(store: AppStore, customer_id: str, employee_id: str, actor: str,
           since: date | None = None) -> Assignment:
    """Make ``employee_id`` the customer's account manager from ``since`` (ending any
    current assignment the day before)."""
    since = since or date.today()
    with store.session() as s:
        for cur in s.scalars(select(Assignment).where(Assignment.customer_id == customer_id,
                                                      Assignment.valid_to.is_(None))):
            cur.valid_to = since
        row = Assignment(customer_id=customer_id, employee_id=employee_id, valid_from=since)
        s.add(row)
        s.flush()
        s.add(AuditEntry(actor=actor, action="assign", object_type="customer",
                         object_id=customer_id, details={"employee_id": employee_id}))
    return row


def unassign(store: AppStore, customer_id: str, actor: str, until: date | None = None) -> int:
    until = until or date.today()
    with store.session() as s:
        rows = list(s.scalars(select(Assignment).where(Assignment.customer_id == customer_id,
                                                       Assignment.valid_to.is_(None))))
        for r in rows:
            r.valid_to = until
        s.add(AuditEntry(actor=actor, action="unassign", object_type="customer",
                         object_id=customer_id))
    return len(rows)


def portfolio(store: AppStore, employee_id: str, on: date | None = None) -> list[str]:
    """Customer ids assigned to ``employee_id`` on ``on`` (default today)."""
    on = on or date.today()
    with store.session() as s:
        q = select(Assignment.customer_id).where(
            Assignment.employee_id == employee_id, Assignment.valid_from <= on,
            or_(Assignment.valid_to.is_(None), Assignment.valid_to > on))
        return sorted(s.scalars(q))


# -- definitions ----------------------------------------------------------------------------


def save_definition(store: AppStore, d: DefinitionIn, actor: str) -> Definition:
    """Create a definition, or a new version of the one with the same kind and name."""
    forget_definitions(store)
    with store.session() as s:
        row = s.scalars(select(Definition).where(Definition.kind == d.kind,
                                                 Definition.name == d.name)).first()
        if row is None:
            row = Definition(kind=d.kind, name=d.name, description=d.description, spec=d.spec)
            s.add(row)
            action = "create"
        else:
            row.spec = d.spec
            row.description = d.description
            row.version += 1
            row.updated_at = datetime.now(UTC)
            action = "update"
        s.flush()
        s.add(AuditEntry(actor=actor, action=action, object_type=d.kind, object_id=d.name,
                         details={"version": row.version}))
    return row


#: seconds a definition read through :func:`definition_in_force` is reused before the store
#: is asked again. A save in this process is seen at once; another process (a second web
#: worker, the CLI) sees it within this time.
DEFINITION_MEMO_SECONDS = 1.0
_DEF_MEMO: WeakKeyDictionary[AppStore, dict[tuple[str, str], tuple[float, Any]]] = \
    WeakKeyDictionary()
_DEF_MEMO_LOCK = threading.Lock()
D = TypeVar("D")


def definition_in_force(store: AppStore, kind: str, name: str, default: Callable[[], D],
                        parse: Callable[[Any, str], D], where: str) -> tuple[D, int | None]:
    """The saved definition parsed — ``parse(spec, where.format(v=version))`` — and its
    version, or ``default()`` and ``None`` when none is saved; reused for
    :data:`DEFINITION_MEMO_SECONDS`: the tier scheme, lifecycle rules and service levels are
    read on every customer page, and reading and parsing them cost ~10 % of it.

    >>> store = AppStore("sqlite://"); store.upgrade()
    >>> def get() -> tuple[Any, int | None]:
    ...     return definition_in_force(store, "tier_scheme", "default", dict,
    ...                                lambda spec, where: spec, "saved (version {v})")
    >>> get()
    ({}, None)
    >>> _ = save_definition(store, DefinitionIn(kind="tier_scheme", name="default",
    ...                     spec={"a": 1}), actor="admin")
    >>> get()   # a save: seen at once
    ({'a': 1}, 1)
    """
    key = (kind, name)
    now = time_.monotonic()
    with _DEF_MEMO_LOCK:
        hit = _DEF_MEMO.get(store, {}).get(key)
    if hit is not None and now - hit[0] < DEFINITION_MEMO_SECONDS:
        return cast(tuple[D, int | None], hit[1])
    try:
        d = get_definition(store, kind, name)
    except NotFoundError:
        value: tuple[D, int | None] = (default(), None)
    else:
        value = (parse(d.spec, where.format(v=d.version)), d.version)
    with _DEF_MEMO_LOCK:
        _DEF_MEMO.setdefault(store, {})[key] = (now, value)
    return value


def forget_definitions(store: AppStore) -> None:
    """Drop what :func:`definition_in_force` keeps for ``store`` (called on every save)."""
    with _DEF_MEMO_LOCK:
        _DEF_MEMO.pop(store, None)


def get_definition(store: AppStore, kind: str, name: str) -> Definition:
    with store.session() as s:
        row = s.scalars(select(Definition).where(Definition.kind == kind,
                                                 Definition.name == name)).first()
    if row is None:
        raise NotFoundError(_("No {kind} named '{name}'.").format(kind=kind, name=name))
    return row
