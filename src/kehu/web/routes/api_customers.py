"""The JSON API over the CRM's data (``/api/v1``): customers (list, 360, timeline, notes), the
dashboard and the user's tasks — thin routes over the same services as the pages, the same
scope rules (an account manager's request for another manager's customer is a 404), and
``application/problem+json`` errors."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from kehu.customer360.service import Customer360, TimelineItem, customer_360
from kehu.customers import CustomerQuery, get_visible, search
from kehu.customers.search import MAX_PAGE
from kehu.dashboard import dashboard
from kehu.store import services as sv
from kehu.store.services import NoteIn
from kehu.web.deps import (
    CurrentUser,
    Principal,
    Staff,
    StoreDep,
    WorkspaceDep,
    apply_locale,
    require_role,
)
from kehu.web.routes.api import PREFIX, PROBLEM
from kehu.web.routes.customers import (
    InteractionBody,
    TaskBody,
    create_customer_task,
    interaction_in,
    scope_of,
)

router = APIRouter(prefix=PREFIX, tags=["customers"],
                   responses={401: PROBLEM, 403: PROBLEM, 422: PROBLEM})

TaskStatus = Literal["open", "snoozed", "done", "dismissed", "cancelled", "all"]
Page = Annotated[int, Query(ge=1, le=MAX_PAGE, description="page number, from 1")]
PageSize = Annotated[int, Query(ge=1, le=200, description="rows per page")]


class Paged(BaseModel):
    total: int = Field(description="every match, not only this page")
    page: int
    page_size: int
    pages: int


class CustomerRow(BaseModel):
    customer_id: str
    name: str | None = None
    phone: str | None = Field(None, description="masked (138****5678) for viewers")
    city: str | None = None
    tier: str | None = None
    rfm_class: str | None = None
    lifecycle_stage: str | None = None
    churn_risk: float | None = None
    clv: float | None = None
    total_value: float | None = None
    current_value: float | None = None
    account_manager_id: str | None = None


class CustomerPageOut(Paged):
    as_of: date | None = Field(description="as-of date of the analysis run the scores are from")
    run_id: str | None
    rows: list[CustomerRow]


class TimelinePage(Paged):
    customer_id: str
    items: list[TimelineItem]


class TableOut(BaseModel):
    columns: list[dict[str, str]]
    rows: list[list[Any]]


class SectionOut(BaseModel):
    key: str
    title: str
    chart: dict[str, Any] = Field(description="ECharts option fragment: series and axes")
    table: TableOut
    summary: dict[str, Any]
    notes: list[str]


class DashboardOut(BaseModel):
    run_id: str
    as_of: date
    locale: str
    computed_at: datetime
    cached: bool
    failed: list[str]
    sections: dict[str, SectionOut]


class TaskOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    title: str
    customer_id: str | None
    description: str | None
    due_date: date | None
    status: str
    priority: str
    origin: str | None
    team: str | None


class TaskPage(Paged):
    rows: list[TaskOut]


class InteractionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    customer_id: str
    time: datetime
    channel: str
    type: str | None
    direction: str | None
    outcome: str | None
    text: str | None
    employee_id: str | None
    user_id: int | None


class NoteBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=20_000, pattern=r"\S")


class NoteOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    customer_id: str
    text: str
    author_id: int | None
    created_at: datetime


def _pages(total: int, page_size: int) -> int:
    return max(1, -(-total // page_size))


@router.get("/customers", response_model=CustomerPageOut)
def list_customers(query: Annotated[CustomerQuery, Query()], user: CurrentUser,
                   ws: WorkspaceDep) -> CustomerPageOut:
    """Customers you may see (account managers: those assigned to them), filtered, sorted
    and paged; list parameters repeat (``?tiers=gold&tiers=silver``)."""
    result = search(ws, query, scope_of(user))
    return CustomerPageOut(total=result.total, page=result.page, page_size=result.page_size,
                           pages=result.pages, as_of=result.as_of, run_id=result.run_id,
                           rows=[CustomerRow(**r) for r in result.rows])


@router.get("/customers/{customer_id}", response_model=Customer360,
            responses={404: PROBLEM})
def get_customer(customer_id: str, user: CurrentUser, ws: WorkspaceDep,
                 timeline_limit: Annotated[int, Query(ge=0, le=1000)] = 50) -> Customer360:
    """One customer's 360: profile, attributes, account manager, scores, service level and
    the newest ``timeline_limit`` timeline events."""
    scope = scope_of(user)
    row = get_visible(ws, customer_id, scope)
    c = customer_360(ws, customer_id, limit=timeline_limit)
    if scope.mask_phone:
        c.profile["phone"] = row.get("phone")
        c.profile.pop("id_number", None)
    return c


@router.get("/customers/{customer_id}/timeline", response_model=TimelinePage,
            responses={404: PROBLEM})
def get_timeline(customer_id: str, user: CurrentUser, ws: WorkspaceDep, page: Page = 1,
                 page_size: PageSize = 50) -> TimelinePage:
    """The customer's timeline, newest first, a page at a time."""
    get_visible(ws, customer_id, scope_of(user))
    c = customer_360(ws, customer_id, limit=page * page_size)
    items = c.timeline[(page - 1) * page_size:page * page_size]
    return TimelinePage(customer_id=customer_id, total=c.timeline_total, page=page,
                        page_size=page_size, pages=_pages(c.timeline_total, page_size),
                        items=items)


@router.post("/customers/{customer_id}/notes", response_model=NoteOut, status_code=201,
             responses={404: PROBLEM})
def post_note(customer_id: str, body: NoteBody, user: Staff,
              ws: WorkspaceDep) -> NoteOut:
    """Add a note to a customer you may see (audited)."""
    get_visible(ws, customer_id, scope_of(user))
    note = sv.add_note(ws.store, NoteIn(customer_id=customer_id, text=body.text.strip(),
                                        author_id=user.user.id), actor=user.actor)
    return NoteOut.model_validate(note)


@router.post("/customers/{customer_id}/interactions", response_model=InteractionOut,
             status_code=201, responses={404: PROBLEM})
def post_interaction(customer_id: str, body: InteractionBody, user: Staff,
                     ws: WorkspaceDep) -> InteractionOut:
    """Log a contact with a customer you may see (audited); it joins their timeline and
    the warehouse's interactions at the next analysis run."""
    get_visible(ws, customer_id, scope_of(user))
    item = sv.log_interaction(ws.store, interaction_in(customer_id, body, user),
                              actor=user.actor)
    return InteractionOut.model_validate(item)


@router.post("/customers/{customer_id}/tasks", response_model=TaskOut, status_code=201,
             responses={404: PROBLEM})
def post_task(customer_id: str, body: TaskBody, user: Staff, ws: WorkspaceDep) -> TaskOut:
    """Create a follow-up task about a customer you may see, for yourself or the customer's
    account manager (audited)."""
    return TaskOut.model_validate(create_customer_task(ws, customer_id, body, user))


@router.get("/dashboard", response_model=DashboardOut, responses={404: PROBLEM})
def get_dashboard(request: Request, ws: WorkspaceDep,
                  user: Annotated[Principal, Depends(require_role("admin", "analyst", "manager",
                                                                  "viewer"))],
                  flows_from: date | None = None, flows_to: date | None = None) -> DashboardOut:
    """Every dashboard section of the latest analysis run, labels in your language (404
    before the first run; account managers, who see only their customers, get 403)."""
    locale = apply_locale(request)
    return DashboardOut.model_validate(dashboard(ws, locale, flows_from, flows_to).to_dict())


@router.get("/tasks", response_model=TaskPage)
def get_tasks(user: CurrentUser, store: StoreDep,
              status: TaskStatus = "open", page: Page = 1,
              page_size: PageSize = 50) -> TaskPage:
    """Tasks assigned to you, by due date (``status=all``: every status)."""
    tasks = sv.list_tasks(store, assignee_id=user.user.id,
                          status=None if status == "all" else status)
    rows = [TaskOut.model_validate(t) for t in tasks[(page - 1) * page_size:page * page_size]]
    return TaskPage(total=len(tasks), page=page, page_size=page_size,
                    pages=_pages(len(tasks), page_size), rows=rows)
