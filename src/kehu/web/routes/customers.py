"""HTML pages of customers: the list (search, filters, pages; HTMX swaps the result table)
and one customer's 360 page with notes and open tasks. Every customer shown has passed the
user's scope (:class:`kehu.customers.Scope`): another manager's customer is a 404."""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Annotated, Any, Literal
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kehu.alerts.service import PRIORITY_LABELS
from kehu.analytics.lifecycle import STAGES
from kehu.analytics.rfm import RfmClassScheme
from kehu.customer360.service import customer_360, kind_label
from kehu.customers import CustomerQuery, Scope, get_visible, search
from kehu.dashboard.service import STAGE_LABELS
from kehu.errors import KehuInputError, NotFoundError
from kehu.i18n import N_, _
from kehu.store import services as sv
from kehu.store.services import Channel, InteractionIn, NoteIn
from kehu.web.deps import CurrentUser, Principal, Staff, WorkspaceDep, apply_locale, render
from kehu.workspace import Workspace

router = APIRouter(include_in_schema=False)

#: the list page's form fields and the CustomerQuery fields they fill
FORM_FIELDS = {"q": "q", "tier": "tiers", "segment": "segment", "lifecycle": "lifecycle_stages",
               "rfm": "rfm_classes", "min_risk": "min_risk", "max_risk": "max_risk",
               "manager": "manager", "sort": "sort", "desc": "desc", "page": "page",
               "page_size": "page_size"}
LIST_FIELDS = frozenset({"tiers", "lifecycle_stages", "rfm_classes"})
SORT_LABELS = {"total_value": "Total value", "current_value": "Current value", "clv": "CLV",
               "churn_risk": "Churn risk", "customer_id": "Customer id", "name": "Name"}
PAGE_SIZE = 25
#: timeline events a customer page shows before "Show all"
TIMELINE_SHOWN = 200


def scope_of(principal: Principal) -> Scope:
    """The customers this user may see, as the customer services take it."""
    return Scope.for_role(principal.user.role, principal.user.employee_id)


def form_query(params: Any) -> tuple[CustomerQuery, dict[str, Any]]:
    """The list page's parameters as a :class:`CustomerQuery` (empty fields ignored) and the
    values to refill the form with. Raises KehuInputError naming a bad parameter."""
    data: dict[str, Any] = {"page_size": PAGE_SIZE}
    values: dict[str, Any] = {}
    for name, field in FORM_FIELDS.items():
        got = [v.strip() for v in params.getlist(name) if v.strip()]
        if not got:
            continue
        values[name] = got[0]
        data[field] = got if field in LIST_FIELDS else got[0]
    return CustomerQuery.parse(data), values


def choices(locale: str, ws: Workspace | None = None) -> dict[str, list[tuple[str, str]]]:
    """Options of the list page's selects: (code, label in ``locale``; tier names from the
    workspace's tier scheme when ``ws`` is given)."""
    from kehu.accounts.service_levels import tier_scheme

    zh = locale == "zh_CN"
    rfm = RfmClassScheme()
    return {"tier": [(t.code, t.name_zh if zh else t.name_en) for t in tier_scheme(ws).tiers],
            "lifecycle": [(s, _(STAGE_LABELS.get(s, s))) for s in STAGES],
            "rfm": [(c.code, rfm.name(c.code, locale)) for c in rfm.classes],
            "sort": [(k, _(v)) for k, v in SORT_LABELS.items()]}


def _page_link(values: dict[str, Any], page: int) -> str:
    return "/customers?" + urlencode({**values, "page": page})


@router.get("/customers")
def customers_page(request: Request, user: CurrentUser, ws: WorkspaceDep) -> Response:
    """The customer list; with ``HX-Request`` only the result table (a partial)."""
    locale = apply_locale(request)
    query, values = form_query(request.query_params)
    scope = scope_of(user)
    result = search(ws, query, scope)
    values.pop("page", None)
    partial = request.headers.get("HX-Request") \
        and not request.headers.get("HX-History-Restore-Request")
    from kehu.customers import managers_today

    options = choices(locale, ws)
    labels = {k: dict(v) for k, v in options.items()}   # as _labels, without a second read
    managers, names = managers_today(ws)
    if not partial:   # the filters' saved segments and managers (the form is not swapped)
        from kehu.segments.saved import list_saved

        options["segment"] = [(s.name, s.name) for s in list_saved(ws.store)]
        # an account manager sees their own customers only: no manager to choose
        options["manager"] = [] if scope.employee_id else managers
    ctx = {"result": result, "values": values, "choices": options,
           "labels": labels, "manager_names": names,
           "prev_link": _page_link(values, result.page - 1) if result.page > 1 else None,
           "next_link": _page_link(values, result.page + 1)
           if result.page < result.pages else None}
    return render(request, "_customer_rows.html" if partial else "customers.html", ctx)


def _labels(locale: str, ws: Workspace | None = None) -> dict[str, dict[str, str]]:
    c = choices(locale, ws)
    return {k: dict(v) for k, v in c.items()}


#: the 360 page's names of profile fields (others show their column name)
PROFILE_LABELS = {
    "customer_type": N_("Customer type"), "gender": N_("Gender"),
    "birth_date": N_("Birth date"), "id_number": N_("ID number"), "phone": N_("Phone"),
    "email": N_("E-mail"), "address": N_("Address"), "region": N_("Region"),
    "city": N_("City"), "signup_date": N_("Customer since"),
    "signup_channel": N_("Joined through"), "account_manager_id": N_("Account manager id"),
    "industry": N_("Industry"), "source_system": N_("Source system"),
}
CONTRACT_STATUS = {"active": N_("in force"), "ended": N_("ended"),
                   "cancelled": N_("cancelled"), "renewed": N_("renewed")}
#: a contract ending within this many days is marked as maturing (到期预先通知)
MATURING_DAYS = 90


def profile_facts(profile: dict[str, Any]) -> list[tuple[str, Any]]:
    """The profile as (label, value) pairs in the current language, codes named."""
    from kehu.explorer.labels import CUSTOMER_TYPE_LABELS, GENDER_LABELS

    named = {"gender": GENDER_LABELS, "customer_type": CUSTOMER_TYPE_LABELS}
    out = []
    for k, v in profile.items():
        if k in ("customer_id", "name") or v is None:
            continue
        if k in named and v in named[k]:
            v = _(named[k][v])
        elif isinstance(v, bool):
            v = _("yes") if v else _("no")
        out.append((_(PROFILE_LABELS[k]) if k in PROFILE_LABELS else k, v))
    return out


def contracts_of(ws: Workspace, customer_id: str) -> list[dict[str, Any]]:
    """The customer's contracts from the warehouse, latest start first (none without the
    table), each with ``days_left`` to its end date (negative once ended) and ``status_label``.
    """
    from kehu.customer360.lookup import rows

    if ws.warehouse.head_version("contracts") is None:
        return []

    def contracts(table: Any, v: dict[str, Any]) -> Any:
        t = table("contracts")
        cols = [c for c in ("contract_id", "product_id", "start_date", "end_date", "status",
                            "monthly_fee", "balance", "auto_renew") if c in t.columns]
        return t.filter(t.customer_id == v["cid"]).select(*cols) \
            .order_by(t.start_date.desc())

    today = date.today()
    out = rows(ws, "contracts", contracts, cid=customer_id)
    for r in out:
        end = r.get("end_date")
        r["days_left"] = (end - today).days if isinstance(end, date) else None
        status = r.get("status")
        r["status_label"] = _(CONTRACT_STATUS[status]) if status in CONTRACT_STATUS else status
    return out


def churn_reasons(scores: dict[str, Any]) -> list[dict[str, Any]]:
    """The churn model's top reasons for this customer (stored as JSON), or none."""
    raw = scores.get("churn_reasons")
    if not raw:
        return []
    try:
        items = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        return []
    if not isinstance(items, list):
        return []
    from kehu.models.churn.reasons import render as sentence

    # each reason as a sentence in the reader's language ("contract ends in 21 days")
    return [{**r, "text": sentence(r)} for r in items if isinstance(r, dict) and "feature" in r]


@router.get("/customers/{customer_id}")
def customer_page(customer_id: str, request: Request, user: CurrentUser,
                  ws: WorkspaceDep, timeline: Literal["newest", "all"] = "newest"
                  ) -> Response:
    """One customer's 360 page; its timeline shows the newest :data:`TIMELINE_SHOWN` events,
    or every event with ``timeline=all``."""
    locale = apply_locale(request)
    try:
        row = get_visible(ws, customer_id, scope_of(user))  # 404 outside the user's scope
    except NotFoundError:
        # a record identity resolution merged into another: its customer's page
        from kehu.identity.follow import surviving_id

        survivor = surviving_id(ws.engine, customer_id)
        if survivor is None:
            raise
        return RedirectResponse(f"/customers/{quote(survivor, safe='')}", status_code=303)
    notes = sv.list_notes(ws.store, customer_id)
    c360 = customer_360(ws, customer_id, limit=None if timeline == "all" else TIMELINE_SHOWN,
                        notes=notes)
    if scope_of(user).mask_phone:
        c360.profile["phone"] = row.get("phone")
        c360.profile.pop("id_number", None)
    labels = _labels(locale, ws)
    from kehu.explorer.labels import CHANNEL_LABELS

    labels["channel"] = {k: _(v) for k, v in CHANNEL_LABELS.items()}
    from kehu.customer360.service import named_title, product_names

    names = product_names(ws)
    return render(request, "customer.html", {
        "details": [named_title(it, names) for it in c360.timeline], "product_names": names,
        "c": c360, "row": row, "labels": labels, "contracts": contracts_of(ws, customer_id),
        "facts": profile_facts(c360.profile), "maturing_days": MATURING_DAYS,
        "reasons": churn_reasons(c360.scores), "kind_label": kind_label,
        "notes": notes,
        "assignees": [] if user.user.role == "viewer" else assignees(ws, user, row),
        "today": date.today(),
        "priority_labels": {k: _(v) for k, v in PRIORITY_LABELS.items()},
        "tasks": sv.list_tasks(ws.store, customer_id=customer_id)})


@router.post("/customers/{customer_id}/notes")
def add_note_form(customer_id: str, text: Annotated[str, Form(max_length=20_000)],
                  user: Staff, ws: WorkspaceDep) -> Response:
    """Add a note to the customer (CSRF-checked; audited by the store service)."""
    get_visible(ws, customer_id, scope_of(user))
    if not text.strip():
        raise KehuInputError(_("The note is empty. Write its text, then add it."))
    sv.add_note(ws.store, NoteIn(customer_id=customer_id, text=text.strip(),
                                 author_id=user.user.id), actor=user.actor)
    return RedirectResponse(f"/customers/{customer_id}#notes", status_code=303)


class InteractionBody(BaseModel):
    """A contact staff log with a customer (a call, a visit, a WeChat chat …)."""

    model_config = ConfigDict(extra="forbid")

    channel: Channel
    #: when it happened (business-local time); default: now
    time: datetime | None = None
    type: str | None = Field(None, max_length=80, description="e.g. call, visit, complaint")
    direction: Literal["inbound", "outbound"] | None = None
    outcome: str | None = Field(None, max_length=200)
    text: str | None = Field(None, max_length=20_000)


def interaction_in(customer_id: str, body: InteractionBody, user: Principal) -> InteractionIn:
    """The store's record of ``body``, logged by ``user`` (their employee id, if any)."""
    clean = {k: (v.strip() or None) if isinstance(v, str) else v
             for k, v in body.model_dump(exclude={"time"}).items()}
    return InteractionIn(customer_id=customer_id, time=body.time or datetime.now(),
                         employee_id=user.user.employee_id, user_id=user.user.id, **clean)


@router.post("/customers/{customer_id}/interactions")
def log_interaction_form(
        customer_id: str, user: Staff, ws: WorkspaceDep, channel: Annotated[str, Form()],
        time: Annotated[str, Form(max_length=40)] = "",
        type: Annotated[str, Form(max_length=80)] = "",
        direction: Annotated[str, Form(max_length=20)] = "",
        outcome: Annotated[str, Form(max_length=200)] = "",
        text: Annotated[str, Form(max_length=20_000)] = "") -> Response:
    """Log a contact from the 360 page (CSRF-checked; audited by the store service)."""
    get_visible(ws, customer_id, scope_of(user))
    try:
        body = InteractionBody.model_validate({
            "channel": channel, "time": time or None, "type": type or None,
            "direction": direction or None, "outcome": outcome or None, "text": text or None})
    except ValidationError as exc:
        err = exc.errors()[0]
        raise KehuInputError(_("The contact was not logged: the '{field}' field {problem}. "
                               "Correct it and log it again.").format(
            field=".".join(str(x) for x in err["loc"]), problem=err["msg"])) from exc
    sv.log_interaction(ws.store, interaction_in(customer_id, body, user), actor=user.actor)
    return RedirectResponse(f"/customers/{quote(customer_id, safe='')}#timeline",
                            status_code=303)


class TaskBody(BaseModel):
    """A follow-up task about a customer, for yourself or their account manager."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=300, pattern=r"\S")
    description: str | None = Field(None, max_length=20_000)
    due_date: date | None = None
    priority: Literal["low", "normal", "high"] = "normal"
    #: a user id from :func:`assignees`; default: yourself
    assignee_id: int | None = None


def assignees(ws: Workspace, user: Principal, row: dict[str, Any]) -> list[tuple[int, str]]:
    """Whom a task about the customer of ``row`` may go to: the user, and the user who is the
    customer's account manager (when there is one)."""
    from kehu.store.users import list_users

    out = [(user.user.id, _("me"))]
    emp = row.get("account_manager_id")
    if emp:
        out += [(u.id, _("{name} (the customer's account manager)").format(name=u.username))
                for u in list_users(ws.store)
                if u.employee_id == emp and u.is_active and u.id != user.user.id]
    return out


def create_customer_task(ws: Workspace, customer_id: str, body: TaskBody,
                         user: Principal) -> Any:
    """Create the task (audited) after checking the customer is in the user's scope and the
    assignee is one :func:`assignees` allows."""
    row = get_visible(ws, customer_id, scope_of(user))
    allowed = dict(assignees(ws, user, row))
    who = body.assignee_id if body.assignee_id is not None else user.user.id
    if who not in allowed:
        raise KehuInputError(_("The 'assignee_id' parameter must be you or the customer's "
                               "account manager ({ids}). Got {v} instead.").format(
            ids=", ".join(str(i) for i in allowed), v=who))
    return sv.create_task(ws.store, sv.TaskIn(
        title=body.title.strip(), customer_id=customer_id, assignee_id=who,
        description=(body.description or "").strip() or None, due_date=body.due_date,
        priority=body.priority), actor=user.actor)


@router.post("/customers/{customer_id}/tasks")
def add_task_form(
        customer_id: str, user: Staff, ws: WorkspaceDep,
        title: Annotated[str, Form(max_length=300)],
        due_date: Annotated[str, Form(max_length=20)] = "",
        priority: Annotated[str, Form(max_length=10)] = "normal",
        assignee_id: Annotated[str, Form(max_length=20)] = "") -> Response:
    """Create a follow-up task from the 360 page (CSRF-checked; audited)."""
    try:
        body = TaskBody.model_validate({
            "title": title, "due_date": due_date or None, "priority": priority,
            "assignee_id": assignee_id or None})
    except ValidationError as exc:
        err = exc.errors()[0]
        raise KehuInputError(_("The task was not created: the '{field}' field {problem}. "
                               "Correct it and create it again.").format(
            field=".".join(str(x) for x in err["loc"]), problem=err["msg"])) from exc
    create_customer_task(ws, customer_id, body, user)
    return RedirectResponse(f"/customers/{quote(customer_id, safe='')}#tasks",
                            status_code=303)
