"""Campaigns: create (audience, policy check with suppressions, holdout, power), approve,
launch, results — HTML pages (``router``) and the JSON API (``api``), thin over
:mod:`kehu.campaigns.drafts`, :mod:`kehu.campaigns.launch` and :mod:`kehu.campaigns.measure`,
the services the ``kehu campaign`` commands use.

Who may do what: planners (admin, analyst, manager) see campaigns and their checks; analysts
(admin, analyst) create, submit and launch; approvers (admin, manager) approve or reject —
never their own campaign unless an administrator.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from typing import Annotated, Any

import yaml
from fastapi import APIRouter, Body, HTTPException, Path, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from kehu.campaigns import drafts
from kehu.campaigns.drafts import Actor, SameUserError, TransitionError
from kehu.campaigns.launch import CampaignPlan
from kehu.campaigns.measure import CampaignResult, measure
from kehu.campaigns.spec import CampaignSpec
from kehu.errors import KehuInputError, NotFoundError
from kehu.i18n import N_, _
from kehu.web.campaign_view import (
    FormValues,
    form_spec,
    labels,
    plan_chart,
    plan_dict,
    result_view,
    spec_form_values,
)
from kehu.web.deps import (
    ANALYSTS,
    APPROVERS,
    Analyst,
    Approver,
    Planner,
    Principal,
    WorkspaceDep,
    apply_locale,
    render,
)
from kehu.web.routes.api import PREFIX, PROBLEM
from kehu.workspace import Workspace

router = APIRouter(include_in_schema=False)
api = APIRouter(prefix=PREFIX, tags=["campaigns"],
                responses={401: PROBLEM, 403: PROBLEM, 422: PROBLEM})

CampaignId = Annotated[str, Path(min_length=1, max_length=80,
                                 pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,79}$",
                                 description="the campaign's id (letters, digits, _ . -)")]


def actor(p: Principal) -> Actor:
    return Actor(p.user.id, p.actor, p.user.role)


@contextmanager
def http_errors(not_found: int = 404) -> Iterator[None]:
    """The workflow's errors as HTTP statuses: 404 unknown (``not_found``: 422 when a spec in
    the body names what does not exist), 409 a step the campaign's status does not allow,
    403 approving one's own campaign, 422 any other bad input."""
    try:
        yield
    except NotFoundError as exc:
        if not_found == 404:
            raise
        raise HTTPException(not_found, detail=str(exc)) from exc
    except SameUserError as exc:
        raise HTTPException(403, detail=str(exc)) from exc
    except TransitionError as exc:
        raise HTTPException(409, detail=str(exc)) from exc
    except KehuInputError as exc:
        raise HTTPException(422, detail=str(exc)) from exc


def _results(ws: Workspace, campaign_id: str) -> CampaignResult | str:
    """The campaign's measurement, or why there is none yet (no contacts, no responses)."""
    try:
        return measure(ws, campaign_id)
    except NotFoundError:
        raise
    except KehuInputError as exc:
        return str(exc)


def _has_responses(r: CampaignResult) -> bool:
    return r.responders_treatment + r.responders_control > 0


NO_RESPONSES = N_("No responses yet: nobody in the treatment or the control group has "
                  "responded or bought within the attribution window so far. Results appear "
                  "here as responses and purchases arrive.")


# == HTML pages ===============================================================================
@router.get("/campaigns")
def campaigns_page(request: Request, user: Planner, ws: WorkspaceDep,
                   status: str | None = None) -> Response:
    """Every campaign: launched (or imported) ones and drafts, with their status."""
    locale = apply_locale(request)
    rows = drafts.overview(ws)
    if status:
        rows = [r for r in rows if r.status == status]
    return render(request, "campaigns.html", {
        "rows": rows, "status": status or "", "labels": labels(locale, ws),
        "can_create": user.user.role in ANALYSTS})


def _form_context(ws: Workspace, locale: str, values: FormValues, *, campaign_id: str | None,
                  plan: CampaignPlan | None = None, error: str | None = None
                  ) -> dict[str, Any]:
    return {"values": values, "campaign_id": campaign_id, "labels": labels(locale, ws),
            "segments": drafts.saved_segments(ws.store), "scores": _score_columns(ws),
            "plan": plan_dict(plan) if plan else None,
            "plan_chart": plan_chart(plan) if plan else None, "error": error,
            "action": f"/campaigns/{campaign_id}/edit" if campaign_id else "/campaigns/new"}


def _score_columns(ws: Workspace) -> list[str]:
    """Numeric scores of the analysis runs a score band can use."""
    from kehu.analytics.run import SCORES_TABLE
    from kehu.segments.compile import SCORE_FIELDS

    if not ws.warehouse.exists(SCORES_TABLE):
        return []
    schema = ws.engine.table(SCORES_TABLE).schema()
    return [f for f in SCORE_FIELDS if f in schema and schema[f].is_numeric()]


def _default_values() -> FormValues:
    start = date.today() + timedelta(days=1)
    return {"goal": "cross_sell", "channel": "sms", "start": start.isoformat(),
            "window": "30", "holdout": "10", "expected_effect": "2", "priority": "0",
            "cost_per_contact": "0.1", "cost_fixed": "0",
            "message_body": "{name}，您好：{offer}"}


@router.get("/campaigns/new")
def new_campaign_page(request: Request, user: Analyst, ws: WorkspaceDep) -> Response:
    """The form of a new campaign; ``?segment=NAME`` preselects a saved segment."""
    locale = apply_locale(request)
    values = _default_values()
    seg = request.query_params.get("segment")
    if seg:
        values["segment"] = seg
    return render(request, "campaign_form.html",
                  _form_context(ws, locale, values, campaign_id=None))


async def _form_values(request: Request) -> FormValues:
    form = await request.form()
    return {k: v.strip() for k, v in form.items()
            if isinstance(v, str) and k != "csrf_token"}


def _is_htmx(request: Request) -> bool:
    return bool(request.headers.get("HX-Request"))


async def _form_post(request: Request, user: Principal, ws: Workspace,
                     campaign_id: str | None) -> Response:
    """Check (HTMX: only the plan) or save the form; bad input re-renders it with 422."""
    locale = apply_locale(request)
    values = await _form_values(request)
    what = values.get("action", "check")
    try:
        spec = form_spec(values)
        if what == "save":
            by = actor(user)
            if campaign_id is None:
                await run_in_threadpool(drafts.create_draft, ws, spec, by)
            else:
                await run_in_threadpool(drafts.update_draft, ws, campaign_id, spec, by)
            return RedirectResponse(f"/campaigns/{spec.id}", status_code=303)
        plan = await run_in_threadpool(drafts.check, ws, spec)
    except KehuInputError as exc:  # NotFoundError too: a segment that is not saved
        apply_locale(request)
        status = 409 if isinstance(exc, TransitionError) else 422
        if _is_htmx(request) and what != "save":
            return render(request, "_campaign_plan.html", {
                "plan": None, "plan_error": str(exc), "labels": labels(locale, ws)},
                status_code=status)
        return render(request, "campaign_form.html",
                      _form_context(ws, locale, values, campaign_id=campaign_id,
                                    error=str(exc)), status_code=status)
    apply_locale(request)
    if _is_htmx(request):
        return render(request, "_campaign_plan.html", {
            "plan": plan_dict(plan), "plan_chart": plan_chart(plan), "labels": labels(locale, ws)})
    return render(request, "campaign_form.html",
                  _form_context(ws, locale, values, campaign_id=campaign_id, plan=plan))


@router.post("/campaigns/new")
async def new_campaign_post(request: Request, user: Analyst, ws: WorkspaceDep) -> Response:
    """``action=check``: the plan of the form's campaign; ``action=save``: save the draft."""
    return await _form_post(request, user, ws, None)


@router.get("/campaigns/{campaign_id}/edit")
def edit_campaign_page(campaign_id: CampaignId, request: Request, user: Analyst,
                       ws: WorkspaceDep) -> Response:
    locale = apply_locale(request)
    d = drafts.get_draft(ws.store, campaign_id)
    with http_errors():
        if not drafts.allowed("edit", d.status):
            drafts.refuse("edit", d)
    return render(request, "campaign_form.html",
                  _form_context(ws, locale, spec_form_values(d.spec), campaign_id=campaign_id))


@router.post("/campaigns/{campaign_id}/edit")
async def edit_campaign_post(campaign_id: CampaignId, request: Request, user: Analyst,
                             ws: WorkspaceDep) -> Response:
    return await _form_post(request, user, ws, campaign_id)


def _detail(request: Request, user: Principal, ws: Workspace, campaign_id: str,
            error: str | None = None, status_code: int = 200) -> Response:
    locale = apply_locale(request)
    draft = drafts.find_draft(ws.store, campaign_id)
    launched = campaign_id in drafts.existing_campaign_ids(ws)
    if draft is None and not launched:
        raise NotFoundError(_("No campaign {id}: neither a draft nor a launched or imported "
                              "campaign. The campaign list shows them all.").format(
            id=campaign_id))
    ctx: dict[str, Any] = {"draft": draft, "launched": launched, "campaign_id": campaign_id,
                           "labels": labels(locale, ws), "error": error,
                           "history": drafts.history(ws.store, campaign_id),
                           "is_analyst": user.user.role in ANALYSTS,
                           "is_approver": user.user.role in APPROVERS,
                           "own": draft is not None and draft.created_by_id == user.user.id
                           and user.user.role != "admin",
                           "spec_yaml": yaml.safe_dump(draft.spec, allow_unicode=True,
                                                       sort_keys=False) if draft else None}
    if launched:
        res = _results(ws, campaign_id)
        ctx["result"] = result_view(res, locale, ws) if isinstance(res, CampaignResult) else None
        ctx["result_error"] = res if isinstance(res, str) else None
        ctx["no_responses"] = isinstance(res, CampaignResult) and not _has_responses(res)
    elif draft is not None:
        try:
            plan = drafts.check(ws, CampaignSpec.parse(draft.spec, campaign_id))
            ctx["plan"], ctx["plan_chart"] = plan_dict(plan), plan_chart(plan)
        except KehuInputError as exc:
            ctx["plan"], ctx["plan_error"] = None, str(exc)
    apply_locale(request)
    return render(request, "campaign.html", ctx, status_code=status_code)


@router.get("/campaigns/{campaign_id}")
def campaign_page(campaign_id: CampaignId, request: Request, user: Planner,
                  ws: WorkspaceDep) -> Response:
    """A campaign: its spec, approval and history; its plan before launch, its results
    (treatment against control, uplift by segment, Qini curve) after."""
    return _detail(request, user, ws, campaign_id)


def _step(request: Request, user: Principal, ws: Workspace, campaign_id: str,
          step: Any, *args: Any) -> Response:
    """Run a workflow step, then show the campaign (again, with the refusal, on an error)."""
    try:
        step(ws, campaign_id, actor(user), *args)
    except NotFoundError:
        raise
    except KehuInputError as exc:
        status = 403 if isinstance(exc, SameUserError) else \
            409 if isinstance(exc, TransitionError) else 422
        return _detail(request, user, ws, campaign_id, error=str(exc), status_code=status)
    return RedirectResponse(f"/campaigns/{campaign_id}", status_code=303)


async def _reason(request: Request) -> str:
    form = await request.form()
    v = form.get("reason")
    return v.strip() if isinstance(v, str) else ""


@router.post("/campaigns/{campaign_id}/submit")
def submit_form(campaign_id: CampaignId, request: Request, user: Analyst,
                ws: WorkspaceDep) -> Response:
    return _step(request, user, ws, campaign_id, drafts.submit)


@router.post("/campaigns/{campaign_id}/approve")
async def approve_form(campaign_id: CampaignId, request: Request, user: Approver,
                       ws: WorkspaceDep) -> Response:
    note = await _reason(request)
    return await run_in_threadpool(_step, request, user, ws, campaign_id, drafts.approve, note)


@router.post("/campaigns/{campaign_id}/reject")
async def reject_form(campaign_id: CampaignId, request: Request, user: Approver,
                      ws: WorkspaceDep) -> Response:
    reason = await _reason(request)
    return await run_in_threadpool(_step, request, user, ws, campaign_id, drafts.reject,
                                   reason)


@router.post("/campaigns/{campaign_id}/launch")
def launch_form(campaign_id: CampaignId, request: Request, user: Analyst,
                ws: WorkspaceDep) -> Response:
    return _step(request, user, ws, campaign_id, drafts.launch)


# == JSON API =================================================================================
Page = Annotated[int, Query(ge=1, le=1_000_000, description="page number, from 1")]
PageSize = Annotated[int, Query(ge=1, le=200, description="rows per page")]
SpecBody = Annotated[dict[str, Any], Body(
    description="A campaign spec, the same fields as the YAML of 'kehu campaign plan' (see "
                "docs/campaigns.md): id, name, channel, audience, schedule, holdout, …",
    examples=[{"id": "SPRING-XS", "name": "春季交叉销售", "channel": "sms",
               "goal": "cross_sell", "audience": {"segment": "高价值流失风险"},
               "schedule": {"start": "2026-03-01"}, "holdout": {"fraction": 0.1},
               "expected_effect": 0.02}])]


class CampaignOut(BaseModel):
    campaign_id: str
    name: str | None
    status: str = Field(description="draft, submitted (awaiting approval), approved, "
                                    "rejected or launched")
    status_label: str
    channel: str | None
    goal: str | None
    start_date: date | None
    end_date: date | None
    audience: int | None = Field(description="treatment + control once launched; before: "
                                             "contactable customers at the last check")
    treatment: int | None
    control: int | None
    created_by: str | None
    updated_at: datetime | None


class CampaignPage(BaseModel):
    total: int
    page: int
    page_size: int
    pages: int
    rows: list[CampaignOut]


class WorkflowOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    status: str
    version: int
    created_by: str
    created_at: datetime | None
    submitted_by: str | None
    submitted_at: datetime | None
    decided_by: str | None
    decided_at: datetime | None
    decision_reason: str | None
    launched_by: str | None
    launched_at: datetime | None
    plan: dict[str, Any] | None = Field(description="counts of the last policy check")


class HistoryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    at: datetime | None
    actor: str
    action: str
    details: dict[str, Any] | None


class CampaignDetail(CampaignOut):
    spec: dict[str, Any] | None
    workflow: WorkflowOut | None
    history: list[HistoryOut]
    allowed_actions: list[str] = Field(description="workflow steps the status allows now")


class PlanOut(BaseModel):
    campaign_id: str
    name: str
    channel: str
    start: date
    audience_as_of: date
    eligible: int
    contactable: int
    suppressed: int
    suppressed_by_rule: dict[str, int]
    treatment: int
    control: int
    cost: float | None = Field(description="fixed + per contact × treated")
    base_rate: float
    base_rate_source: str
    power: dict[str, Any] = Field(description="mde (minimum detectable lift), power for "
                                              "expected_effect, suggested_holdout for 80 %")
    by_tier: list[dict[str, Any]]
    warnings: list[str]


class DecisionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(None, max_length=5000,
                               description="why (required to reject; a note to approve)")


class LaunchOut(BaseModel):
    campaign_id: str
    status: str
    seed: int
    launched_at: datetime
    treatment: int
    control: int
    queued: int = Field(description="messages queued in the outbox")


class ResultsOut(BaseModel):
    campaign_id: str
    has_responses: bool
    message: str | None = Field(description="why there is nothing to measure yet")
    name: str | None = None
    channel: str | None = None
    start: date | None = None
    window_days: int | None = None
    attribution: str | None = None
    design: str | None = None
    n_treatment: int | None = None
    n_control: int | None = None
    responders_treatment: int | None = None
    responders_control: int | None = None
    response_rate: dict[str, Any] | None = None
    incremental_responses: dict[str, Any] | None = None
    revenue_per_contact: dict[str, Any] | None = None
    incremental_revenue: dict[str, Any] | None = None
    incremental_margin: dict[str, Any] | None = None
    cost: float | None = None
    roi: dict[str, Any] | None = None
    significant: bool | None = None
    margin_rate: float | None = None
    by_tier: list[dict[str, Any]] = Field(default_factory=list)
    uplift_by_segment: dict[str, list[dict[str, Any]]] = Field(default_factory=dict)
    qini: dict[str, Any] | None = None
    label: str | None = None
    notes: list[str] = Field(default_factory=list)


def _row_out(r: drafts.CampaignRow) -> CampaignOut:
    return CampaignOut(campaign_id=r.campaign_id, name=r.name, status=r.status,
                       status_label=_(drafts.STATUS_LABELS.get(r.status, r.status)),
                       channel=r.channel, goal=r.goal, start_date=r.start_date,
                       end_date=r.end_date, audience=r.audience, treatment=r.treatment,
                       control=r.control, created_by=r.created_by, updated_at=r.updated_at)


def _detail_out(ws: Workspace, campaign_id: str) -> CampaignDetail:
    row = next((r for r in drafts.overview(ws) if r.campaign_id == campaign_id), None)
    if row is None:
        raise NotFoundError(_("No campaign {id}: neither a draft nor a launched or imported "
                              "campaign. The campaign list shows them all.").format(
            id=campaign_id))
    d = drafts.find_draft(ws.store, campaign_id)
    status = d.status if d else "launched"
    return CampaignDetail(
        **_row_out(row).model_dump(), spec=d.spec if d else None,
        workflow=WorkflowOut.model_validate(d) if d else None,
        history=[HistoryOut.model_validate(h) for h in drafts.history(ws.store, campaign_id)],
        allowed_actions=[a for a in drafts.FROM if d and drafts.allowed(a, status)])


def _parse(body: dict[str, Any]) -> CampaignSpec:
    with http_errors():
        return CampaignSpec.parse(body, "body")


@api.get("/campaigns", response_model=CampaignPage)
def list_campaigns_api(request: Request, user: Planner, ws: WorkspaceDep,
                       status: Annotated[str | None, Query(
                           pattern="^(draft|submitted|approved|rejected|launched)$")] = None,
                       page: Page = 1, page_size: PageSize = 50) -> CampaignPage:
    """Every campaign, launched (or imported) and drafts, newest start first."""
    apply_locale(request)
    rows = [r for r in drafts.overview(ws) if status is None or r.status == status]
    return CampaignPage(total=len(rows), page=page, page_size=page_size,
                        pages=max(1, -(-len(rows) // page_size)),
                        rows=[_row_out(r) for r in rows[(page - 1) * page_size:
                                                        page * page_size]])


@api.post("/campaigns/plan", response_model=PlanOut)
def plan_api(body: SpecBody, request: Request, user: Planner, ws: WorkspaceDep) -> PlanOut:
    """What launching the spec would do now: audience, suppressions by rule, treatment and
    control, cost, the minimum detectable lift and the power. Nothing is written."""
    apply_locale(request)
    spec = _parse(body)
    with http_errors(not_found=422):
        return PlanOut.model_validate(plan_dict(drafts.check(ws, spec)))


@api.post("/campaigns", response_model=CampaignDetail, status_code=201,
          responses={409: PROBLEM})
def create_api(body: SpecBody, request: Request, user: Analyst,
               ws: WorkspaceDep) -> CampaignDetail:
    """Save a spec as a draft (its plan checked first; audited)."""
    apply_locale(request)
    spec = _parse(body)
    with http_errors(not_found=422):
        drafts.create_draft(ws, spec, actor(user))
    return _detail_out(ws, spec.id)


@api.get("/campaigns/{campaign_id}", response_model=CampaignDetail, responses={404: PROBLEM})
def get_api(campaign_id: CampaignId, request: Request, user: Planner,
            ws: WorkspaceDep) -> CampaignDetail:
    """A campaign: status, spec, approval, history."""
    apply_locale(request)
    return _detail_out(ws, campaign_id)


@api.put("/campaigns/{campaign_id}", response_model=CampaignDetail,
         responses={404: PROBLEM, 409: PROBLEM})
def update_api(campaign_id: CampaignId, body: SpecBody, request: Request, user: Analyst,
               ws: WorkspaceDep) -> CampaignDetail:
    """Replace a draft's (or a rejected campaign's) spec; it becomes a draft again."""
    apply_locale(request)
    drafts.get_draft(ws.store, campaign_id)  # 404 when there is no such draft
    spec = _parse(body)
    with http_errors(not_found=422):
        drafts.update_draft(ws, campaign_id, spec, actor(user))
    return _detail_out(ws, campaign_id)


@api.post("/campaigns/{campaign_id}/submit", response_model=CampaignDetail,
          responses={404: PROBLEM, 409: PROBLEM})
def submit_api(campaign_id: CampaignId, request: Request, user: Analyst,
               ws: WorkspaceDep) -> CampaignDetail:
    """Submit a draft for approval (its plan is checked again)."""
    apply_locale(request)
    with http_errors():
        drafts.submit(ws, campaign_id, actor(user))
    return _detail_out(ws, campaign_id)


@api.post("/campaigns/{campaign_id}/approve", response_model=CampaignDetail,
          responses={404: PROBLEM, 409: PROBLEM})
def approve_api(campaign_id: CampaignId, request: Request, user: Approver, ws: WorkspaceDep,
                body: DecisionBody | None = None) -> CampaignDetail:
    """Approve a submitted campaign (403 for its own author, unless an administrator)."""
    apply_locale(request)
    with http_errors():
        drafts.approve(ws, campaign_id, actor(user), body.reason if body else None)
    return _detail_out(ws, campaign_id)


@api.post("/campaigns/{campaign_id}/reject", response_model=CampaignDetail,
          responses={404: PROBLEM, 409: PROBLEM})
def reject_api(campaign_id: CampaignId, body: DecisionBody, request: Request, user: Approver,
               ws: WorkspaceDep) -> CampaignDetail:
    """Reject a submitted campaign with a reason (required)."""
    apply_locale(request)
    with http_errors():
        drafts.reject(ws, campaign_id, actor(user), body.reason or "")
    return _detail_out(ws, campaign_id)


@api.post("/campaigns/{campaign_id}/launch", response_model=LaunchOut,
          responses={404: PROBLEM, 409: PROBLEM})
def launch_api(campaign_id: CampaignId, request: Request, user: Analyst,
               ws: WorkspaceDep) -> LaunchOut:
    """Launch an approved campaign: audience snapshot, contact policy, holdout drawn by
    tier, contacts written to the warehouse, messages queued (audited)."""
    apply_locale(request)
    with http_errors():
        row, rep = drafts.launch(ws, campaign_id, actor(user))
    return LaunchOut(campaign_id=campaign_id, status=row.status, seed=rep.seed,
                     launched_at=rep.launched_at, treatment=rep.treatment,
                     control=rep.control, queued=rep.queued)


@api.get("/campaigns/{campaign_id}/results", response_model=ResultsOut,
         responses={404: PROBLEM})
def results_api(campaign_id: CampaignId, request: Request, user: Planner,
                ws: WorkspaceDep) -> ResultsOut:
    """Treatment against control: response rates, lift, incremental revenue and margin and
    ROI with 95 % intervals, by tier, uplift by segment, Qini curve. Before any response:
    ``has_responses`` false and a message. 404 for a campaign not launched yet."""
    apply_locale(request)
    if campaign_id not in drafts.existing_campaign_ids(ws):
        d = drafts.get_draft(ws.store, campaign_id)  # 404 when unknown
        raise HTTPException(409, detail=_("Campaign {id} is {status}: it has results only "
                                          "once launched.").format(
            id=campaign_id, status=_(drafts.STATUS_LABELS[d.status]).lower()))
    res = _results(ws, campaign_id)
    if isinstance(res, str):
        return ResultsOut(campaign_id=campaign_id, has_responses=False, message=res)
    has = _has_responses(res)
    return ResultsOut.model_validate(res.to_dict() | {
        "has_responses": has, "message": None if has else _(NO_RESPONSES)})
