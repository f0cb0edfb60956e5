"""A person's task inbox: the tasks they may see, filtered, sorted and paged, and the task
state changes (done, snoozed, dismissed) checked against the same scope.

**Who sees which tasks** (:func:`task_scope`):

- admins and analysts: every task;
- an account manager: the tasks assigned to them and those of the customers they manage
  today (the app store's assignment in force, else the warehouse's
  ``customers.account_manager_id``: :func:`kehu.accounts.portfolio.managers_on`);
- a manager whose employee record names a team (``employees.team``), or who is the
  ``manager_id`` of other employees: the tasks of that team — assigned to the team's users
  (themselves included), queued for the team (``Task.team``) or about a customer a team
  member manages today; a manager the employees table knows no team for: every task.

A task outside the scope is answered as if it did not exist (:class:`NotFoundError`), so
nobody learns about another team's tasks by trying ids.

>>> TaskScope.everything().sees_all
True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any, Literal

import ibis
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import case, select

from kehu.accounts.portfolio import team_of
from kehu.alerts.service import ORIGIN, dismiss_task, rules_in_force, snooze_task
from kehu.errors import NotFoundError
from kehu.i18n import _
from kehu.specfiles import validated
from kehu.store.models import Task, User
from kehu.store.services import complete_task

if TYPE_CHECKING:
    from sqlalchemy.sql.elements import ColumnElement

    from kehu.store.users import UserOut
    from kehu.workspace import Workspace

StatusFilter = Literal["open", "snoozed", "done", "dismissed", "cancelled", "all"]
DueFilter = Literal["overdue", "today", "week", "later", "none"]
SortKey = Literal["due", "priority"]
#: the ``kind`` of a task that no alert rule created
MANUAL = "manual"
#: the ``kind`` of an alert task whose rule is no longer in force
OTHER = "other"
MAX_PAGE_SIZE = 200
MAX_PAGE = 1_000_000


@dataclass(frozen=True)
class TaskScope:
    """The tasks a user may see: all, or those assigned to ``user_ids``, queued for
    ``teams`` or about a customer managed today by one of ``employee_ids``."""

    sees_all: bool
    user_ids: frozenset[int] = field(default_factory=frozenset)
    employee_ids: frozenset[str] = field(default_factory=frozenset)
    teams: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def everything(cls) -> TaskScope:
        return cls(True)


def task_scope(ws: Workspace, user: UserOut) -> TaskScope:
    """The scope of ``user`` (see the module documentation)."""
    if user.role in ("admin", "analyst"):
        return TaskScope.everything()
    emp = user.employee_id
    if user.role == "account_manager":
        return TaskScope(False, frozenset({user.id}), frozenset({emp} if emp else set()))
    if user.role == "manager":
        team, members = team_of(ws, emp) if emp else (None, set())
        if team is None and len(members) <= 1:
            return TaskScope.everything()  # no team known: a manager sees every task
        with ws.store.session() as s:
            uids = set(s.scalars(select(User.id).where(User.employee_id.in_(sorted(members)))))
        return TaskScope(False, frozenset(uids | {user.id}), frozenset(members),
                         frozenset({team} if team else set()))
    return TaskScope(False, frozenset({user.id}))  # anyone else: their own tasks only


class InboxQuery(BaseModel):
    """Filters, order and page of an inbox."""

    model_config = ConfigDict(extra="forbid")

    status: StatusFilter = "open"
    kind: str | None = Field(None, max_length=100, description="alert rule kind, "
                             "'manual' or 'other'")
    due: DueFilter | None = None
    sort: SortKey = "due"
    page: int = Field(1, ge=1, le=MAX_PAGE)
    page_size: int = Field(50, ge=1, le=MAX_PAGE_SIZE)

    @classmethod
    def parse(cls, data: Any) -> InboxQuery:
        return validated(cls, data, "inbox", _("task filter"))


@dataclass
class InboxPage:
    total: int
    page: int
    page_size: int
    rows: list[dict[str, Any]]
    today: date

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.page_size))


def rule_kinds(ws: Workspace) -> dict[str, str]:
    """Alert rule name -> its kind, for the rules in force."""
    return {r.name: r.kind for r in rules_in_force(ws.store).rules}


def _kind(origin: str | None, kinds: dict[str, str]) -> str:
    if not origin or not origin.startswith(ORIGIN):
        return MANUAL
    return kinds.get(origin[len(ORIGIN):], OTHER)


def _filters(query: InboxQuery, today: date, kinds: dict[str, str]) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = []
    if query.status != "all":
        conds.append(Task.status == query.status)
    if query.kind == MANUAL:
        conds.append(Task.origin.is_(None) | ~Task.origin.startswith(ORIGIN))
    elif query.kind == OTHER:
        conds.append(Task.origin.startswith(ORIGIN)
                     & Task.origin.not_in([ORIGIN + n for n in kinds]))
    elif query.kind:
        conds.append(Task.origin.in_([ORIGIN + n for n, k in kinds.items()
                                      if k == query.kind]))
    if query.due == "overdue":
        conds.append(Task.due_date < today)
    elif query.due == "today":
        conds.append(Task.due_date == today)
    elif query.due == "week":
        conds.append(Task.due_date.between(today, today + timedelta(days=7)))
    elif query.due == "later":
        conds.append(Task.due_date > today + timedelta(days=7))
    elif query.due == "none":
        conds.append(Task.due_date.is_(None))
    return conds


_PRIORITY_RANK = case({"high": 0, "normal": 1, "low": 2}, value=Task.priority, else_=1)


def _order(sort: SortKey) -> list[Any]:
    due = [Task.due_date.is_(None), Task.due_date]
    if sort == "priority":
        return [_PRIORITY_RANK, *due, Task.id]
    return [*due, _PRIORITY_RANK, Task.id]


def _managed(ws: Workspace, employee_ids: frozenset[str], customer_ids: set[str],
             today: date) -> set[str]:
    """Of ``customer_ids``, those an employee of ``employee_ids`` manages ``today``."""
    if not employee_ids or not customer_ids:
        return set()
    from kehu.accounts.portfolio import managers_on

    m = managers_on(ws, today)
    wanted = ibis.memtable(pa.table({"customer_id": pa.array(sorted(customer_ids),
                                                             pa.string())}))
    hit = m.filter(m.employee_id.isin(sorted(employee_ids))).join(wanted, "customer_id")
    return {str(c) for c in hit.select("customer_id").to_pyarrow().column(0).to_pylist()}


def _visible_ids(ws: Workspace, scope: TaskScope, rows: list[Any], today: date) -> list[int]:
    """Ids of ``rows`` (id, customer_id, assignee_id, team) inside ``scope``, in order."""
    if scope.sees_all:
        return [r[0] for r in rows]
    managed = _managed(ws, scope.employee_ids, {r[1] for r in rows if r[1]}, today)
    return [r[0] for r in rows if r[2] in scope.user_ids or (r[3] and r[3] in scope.teams)
            or (r[1] and r[1] in managed)]


def inbox(ws: Workspace, scope: TaskScope, query: InboxQuery | None = None,
          today: date | None = None) -> InboxPage:
    """One page of the tasks in ``scope`` matching ``query``, soonest due first (or by
    priority); rows as :func:`task_row` gives them."""
    query = query or InboxQuery()
    today = today or date.today()
    kinds = rule_kinds(ws)
    q = select(Task.id, Task.customer_id, Task.assignee_id, Task.team) \
        .where(*_filters(query, today, kinds)).order_by(*_order(query.sort))
    with ws.store.session() as s:
        candidates = list(s.execute(q))
    ids = _visible_ids(ws, scope, candidates, today)
    start = (query.page - 1) * query.page_size
    page_ids = ids[start:start + query.page_size]
    return InboxPage(len(ids), query.page, query.page_size,
                     task_rows(ws, _load(ws, page_ids), kinds, today), today)


def _load(ws: Workspace, ids: list[int]) -> list[Task]:
    if not ids:
        return []
    with ws.store.session() as s:
        found = {t.id: t for t in s.scalars(select(Task).where(Task.id.in_(ids)))}
    return [found[i] for i in ids if i in found]


def task_rows(ws: Workspace, tasks: list[Task], kinds: dict[str, str] | None = None,
              today: date | None = None) -> list[dict[str, Any]]:
    """Tasks as plain rows: the stored fields, the alert ``rule`` and its ``kind``, the
    assignee's user name and whether the task is ``overdue``."""
    kinds = rule_kinds(ws) if kinds is None else kinds
    today = today or date.today()
    uids = {t.assignee_id for t in tasks if t.assignee_id is not None}
    names: dict[int, str] = {}
    if uids:
        with ws.store.session() as s:
            names = {i: n for i, n in s.execute(select(User.id, User.username)
                                                .where(User.id.in_(uids)))}
    return [{"id": t.id, "title": t.title, "description": t.description,
             "customer_id": t.customer_id, "due_date": t.due_date, "priority": t.priority,
             "status": t.status, "origin": t.origin,
             "rule": t.origin[len(ORIGIN):] if t.origin and t.origin.startswith(ORIGIN)
             else None, "kind": _kind(t.origin, kinds), "assignee_id": t.assignee_id,
             "assignee": names.get(t.assignee_id) if t.assignee_id is not None else None,
             "team": t.team, "snoozed_until": t.snoozed_until, "created_at": t.created_at,
             "completed_at": t.completed_at,
             "overdue": t.status in ("open", "snoozed") and t.due_date is not None
             and t.due_date < today} for t in tasks]


def visible_task(ws: Workspace, scope: TaskScope, task_id: int,
                 today: date | None = None) -> Task:
    """The task, or :class:`NotFoundError` when it does not exist *or* is outside ``scope``
    (the same message either way)."""
    with ws.store.session() as s:
        t = s.get(Task, task_id)
    if t is None or not _visible_ids(ws, scope, [(t.id, t.customer_id, t.assignee_id,
                                                   t.team)], today or date.today()):
        raise NotFoundError(_("No task with id {id}.").format(id=task_id))
    return t


def mark_done(ws: Workspace, scope: TaskScope, task_id: int, actor: str) -> Task:
    """Close a task in ``scope`` as done (audited)."""
    visible_task(ws, scope, task_id)
    return complete_task(ws.store, task_id, actor)


def snooze(ws: Workspace, scope: TaskScope, task_id: int, until: date, actor: str,
           today: date | None = None) -> Task:
    """Set a task in ``scope`` aside until ``until`` (after today; audited)."""
    visible_task(ws, scope, task_id)
    return snooze_task(ws.store, task_id, until, actor, today=today)


def dismiss(ws: Workspace, scope: TaskScope, task_id: int, actor: str) -> Task:
    """Close a task in ``scope`` without doing it (audited)."""
    visible_task(ws, scope, task_id)
    return dismiss_task(ws.store, task_id, actor)


def recent_alerts(ws: Workspace, scope: TaskScope, limit: int = 20,
                  today: date | None = None) -> list[dict[str, Any]]:
    """The newest tasks alert rules created in ``scope``: rule, kind, customer, when, status."""
    today = today or date.today()
    q = select(Task.id, Task.customer_id, Task.assignee_id, Task.team) \
        .where(Task.origin.startswith(ORIGIN)).order_by(Task.created_at.desc(), Task.id.desc())
    ids: list[int] = []
    with ws.store.session() as s:
        # read in slices until ``limit`` visible ones are found (scoped users see few)
        offset, step = 0, max(limit * 10, 500)
        while len(ids) < limit:
            part = list(s.execute(q.offset(offset).limit(step)))
            if not part:
                break
            ids += _visible_ids(ws, scope, part, today)
            offset += step
    return task_rows(ws, _load(ws, ids[:limit]), today=today)


def kinds_in_use(ws: Workspace) -> list[str]:
    """The kinds a task can have: the alert rule kinds in force, then manual and other."""
    return [*dict.fromkeys(rule_kinds(ws).values()), MANUAL, OTHER]


__all__ = ["InboxPage", "InboxQuery", "TaskScope", "dismiss", "inbox", "kinds_in_use",
           "mark_done", "recent_alerts", "snooze", "task_rows", "task_scope", "visible_task"]
