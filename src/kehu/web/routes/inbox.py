"""Tasks and alerts inbox of the signed-in user: their tasks (account managers: their own and
their customers'; managers: their team's; admins and analysts: all — the scope is
:func:`kehu.alerts.inbox.task_scope`), filtered and sorted, with done / snooze / dismiss
buttons (HTMX swaps the row), the newest alerts, and the same actions in the API."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from kehu.alerts import inbox as svc
from kehu.alerts.inbox import InboxQuery, TaskScope
from kehu.alerts.service import PRIORITY_LABELS
from kehu.errors import KehuInputError, NotFoundError
from kehu.i18n import N_, _
from kehu.web.deps import Principal, Staff, WorkspaceDep, apply_locale, render
from kehu.web.routes.api import DB_INT_MAX, PREFIX, PROBLEM
from kehu.web.routes.api_customers import Paged
from kehu.workspace import Workspace

router = APIRouter(include_in_schema=False)
api = APIRouter(prefix=PREFIX, tags=["tasks"],
                responses={401: PROBLEM, 403: PROBLEM, 422: PROBLEM})

STATUS_LABELS = {"open": N_("Open"), "snoozed": N_("Snoozed"), "done": N_("Done"),
                 "dismissed": N_("Dismissed"), "cancelled": N_("Cancelled"), "all": N_("All")}
DUE_LABELS = {"overdue": N_("Overdue"), "today": N_("Due today"),
              "week": N_("Due in the next 7 days"), "later": N_("Due later"),
              "none": N_("No due date")}
SORT_LABELS = {"due": N_("Due date"), "priority": N_("Priority")}
KIND_LABELS = {"maturity": N_("Contract maturity"), "usage_drop": N_("Usage drop"),
               "churn_risk_up": N_("Churn risk up"), "tier_change": N_("Tier change"),
               "complaint_unresolved": N_("Unresolved complaint"),
               "payment_overdue": N_("Overdue payment"), "birthday": N_("Birthday"),
               "anniversary": N_("Anniversary"), svc.MANUAL: N_("Created by hand"),
               svc.OTHER: N_("Retired alert rule")}
FILTER_FIELDS = ("status", "kind", "due", "sort", "page")
PAGE_SIZE = 50
TaskId = Annotated[int, Path(ge=1, le=DB_INT_MAX)]


def scope_for(ws: Workspace, principal: Principal) -> TaskScope:
    return svc.task_scope(ws, principal.user)


def _scope_note(principal: Principal, scope: TaskScope) -> str:
    if scope.sees_all:
        return _("Every task, of every team.")
    if principal.user.role == "manager":
        return _("The tasks of your team: {teams}.").format(
            teams=", ".join(sorted(scope.teams)) or _("the employees reporting to you"))
    return _("Your tasks and those of the customers you look after.")


def labels() -> dict[str, dict[str, str]]:
    """Translated labels of statuses, kinds, due ranges, orders and priorities."""
    return {"status": {k: _(v) for k, v in STATUS_LABELS.items()},
            "kind": {k: _(v) for k, v in KIND_LABELS.items()},
            "due": {k: _(v) for k, v in DUE_LABELS.items()},
            "sort": {k: _(v) for k, v in SORT_LABELS.items()},
            "priority": {k: _(v) for k, v in PRIORITY_LABELS.items()}}


def _query(params: Any) -> tuple[InboxQuery, dict[str, str]]:
    values = {k: params.get(k, "").strip() for k in FILTER_FIELDS}
    values = {k: v for k, v in values.items() if v}
    return InboxQuery.parse({**values, "page_size": PAGE_SIZE}), values


def _link(values: dict[str, str], page: int) -> str:
    return "/inbox?" + urlencode({**{k: v for k, v in values.items() if k != "page"},
                                  "page": page})


def _context(ws: Workspace, principal: Principal, scope: TaskScope, query: InboxQuery,
             values: dict[str, str]) -> dict[str, Any]:
    page = svc.inbox(ws, scope, query)
    return {"page": page, "values": values, "labels": labels(),
            "kinds": svc.kinds_in_use(ws), "tomorrow": page.today + timedelta(days=1),
            "scope_note": _scope_note(principal, scope),
            "prev_link": _link(values, page.page - 1) if page.page > 1 else None,
            "next_link": _link(values, page.page + 1) if page.page < page.pages else None}


def _is_htmx(request: Request) -> bool:
    return bool(request.headers.get("HX-Request")) \
        and not request.headers.get("HX-History-Restore-Request")


@router.get("/inbox")
def inbox_page(request: Request, user: Staff, ws: WorkspaceDep) -> Response:
    """The inbox; with ``HX-Request`` only the task table (a partial)."""
    apply_locale(request)
    scope = scope_for(ws, user)
    query, values = _query(request.query_params)
    ctx = _context(ws, user, scope, query, values)
    if _is_htmx(request):
        return render(request, "_inbox_rows.html", ctx)
    ctx["alerts"] = svc.recent_alerts(ws, scope)
    return render(request, "inbox.html", ctx)


def _after_change(request: Request, ws: Workspace, user: Principal, scope: TaskScope,
                  task_id: int, error: str | None = None) -> Response:
    """The changed task's row (HTMX), else back to the inbox; on an error the row (HTMX) or
    the inbox page with the message, status 422, nothing changed."""
    if _is_htmx(request):
        row = svc.task_rows(ws, [svc.visible_task(ws, scope, task_id)])[0]
        return render(request, "_inbox_task.html",
                      {"t": row, "labels": labels(), "row_error": error,
                       "tomorrow": date.today() + timedelta(days=1)},
                      status_code=422 if error else 200)
    if error is None:
        return RedirectResponse("/inbox", status_code=303)
    query, values = _query(request.query_params)
    ctx = _context(ws, user, scope, query, values)
    ctx.update(alerts=svc.recent_alerts(ws, scope), error=error)
    return render(request, "inbox.html", ctx, status_code=422)


def _change(request: Request, ws: Workspace, user: Principal, task_id: int,
            change: Callable[[TaskScope], object]) -> Response:
    """Apply ``change`` to a task in the user's scope (404 outside it); a refused change
    (already closed, a bad date) comes back with the problem and status 422."""
    apply_locale(request)
    scope = scope_for(ws, user)
    svc.visible_task(ws, scope, task_id)
    try:
        change(scope)
    except NotFoundError:
        raise
    except KehuInputError as exc:
        return _after_change(request, ws, user, scope, task_id, str(exc))
    return _after_change(request, ws, user, scope, task_id)


@router.post("/inbox/{task_id}/done")
def done_form(task_id: TaskId, request: Request, user: Staff, ws: WorkspaceDep) -> Response:
    """Mark a task done (CSRF-checked; audited by the service)."""
    return _change(request, ws, user, task_id,
                   lambda scope: svc.mark_done(ws, scope, task_id, user.actor))


@router.post("/inbox/{task_id}/dismiss")
def dismiss_form(task_id: TaskId, request: Request, user: Staff,
                 ws: WorkspaceDep) -> Response:
    """Close a task without acting on it (audited)."""
    return _change(request, ws, user, task_id,
                   lambda scope: svc.dismiss(ws, scope, task_id, user.actor))


@router.post("/inbox/{task_id}/snooze")
def snooze_form(task_id: TaskId, request: Request, user: Staff, ws: WorkspaceDep,
                until: Annotated[str, Form(max_length=40)] = "") -> Response:
    """Set a task aside until a day after today (audited)."""
    return _change(request, ws, user, task_id,
                   lambda scope: svc.snooze(ws, scope, task_id, _parse_day(until), user.actor))


def _parse_day(text: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise KehuInputError(_("The 'until' field must be a date such as {example}. Got "
                               "{got!r} instead. Pick the day the task should come back.")
                             .format(example=(date.today() + timedelta(days=7)).isoformat(),
                                     got=text)) from None


# -- API ------------------------------------------------------------------------------------


class InboxTaskOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    title: str
    description: str | None = None
    customer_id: str | None
    due_date: date | None
    priority: str
    status: str
    origin: str | None
    rule: str | None = Field(description="the alert rule that created the task")
    kind: str = Field(description="the alert rule's kind, 'manual' or 'other'")
    assignee: str | None = Field(description="user name of the assignee")
    team: str | None = Field(description="team queue when nobody is assigned")
    snoozed_until: date | None
    overdue: bool


class InboxPageOut(Paged):
    rows: list[InboxTaskOut]


class SnoozeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    until: date = Field(description="the day the task comes back (after today)")


@api.get("/inbox", response_model=InboxPageOut)
def api_inbox(query: Annotated[InboxQuery, Query()], user: Staff,
              ws: WorkspaceDep) -> InboxPageOut:
    """The tasks you may see (account managers: theirs and their customers'; managers: their
    team's; admins and analysts: all), filtered by status, kind and due date, paged."""
    page = svc.inbox(ws, scope_for(ws, user), query)
    return InboxPageOut(total=page.total, page=page.page, page_size=page.page_size,
                        pages=page.pages, rows=[InboxTaskOut(**r) for r in page.rows])


def _out(ws: Workspace, scope: TaskScope, task_id: int) -> InboxTaskOut:
    return InboxTaskOut(**svc.task_rows(ws, [svc.visible_task(ws, scope, task_id)])[0])


@api.post("/tasks/{task_id}/done", response_model=InboxTaskOut,
          responses={400: PROBLEM, 404: PROBLEM})
def api_done(task_id: TaskId, user: Staff, ws: WorkspaceDep) -> InboxTaskOut:
    """Mark a task done (404 for a task outside your scope; 400 when already closed)."""
    scope = scope_for(ws, user)
    svc.mark_done(ws, scope, task_id, user.actor)
    return _out(ws, scope, task_id)


@api.post("/tasks/{task_id}/snooze", response_model=InboxTaskOut,
          responses={400: PROBLEM, 404: PROBLEM})
def api_snooze(task_id: TaskId, body: SnoozeBody, user: Staff,
               ws: WorkspaceDep) -> InboxTaskOut:
    """Set a task aside until a day after today; the next alert run on or after that day
    reopens it."""
    scope = scope_for(ws, user)
    svc.snooze(ws, scope, task_id, body.until, user.actor)
    return _out(ws, scope, task_id)


@api.post("/tasks/{task_id}/dismiss", response_model=InboxTaskOut,
          responses={400: PROBLEM, 404: PROBLEM})
def api_dismiss(task_id: TaskId, user: Staff, ws: WorkspaceDep) -> InboxTaskOut:
    """Close a task without acting on it."""
    scope = scope_for(ws, user)
    svc.dismiss(ws, scope, task_id, user.actor)
    return _out(ws, scope, task_id)
