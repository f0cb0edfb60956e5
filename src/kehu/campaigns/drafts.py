"""Campaigns before launch: drafts, the approval workflow and the campaign overview.

A campaign spec is saved as a *draft* (its plan — audience, suppressions, groups — checked
and kept), *submitted* for approval, *approved* or *rejected* (with a reason) by an approver
who is not its author (administrators excepted), and only then *launched* through
:func:`kehu.campaigns.launch.launch`::

    draft ──submit──▶ submitted ──approve──▶ approved ──launch──▶ launched
      ▲                   │
      └──── edit ◀── rejected ◀──reject──┘

Every transition is written with its audit entry in one transaction (the launch is audited
by the launch service). A move the state machine does not allow raises
:class:`TransitionError`; the author approving their own campaign raises
:class:`SameUserError`.

>>> allowed("approve", "submitted"), allowed("launch", "draft")
(True, False)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from sqlalchemy import select

from kehu.campaigns.spec import CampaignSpec
from kehu.errors import KehuInputError, NotFoundError
from kehu.i18n import N_, _
from kehu.store.models import AuditEntry, CampaignDraft

if TYPE_CHECKING:
    from kehu.campaigns.launch import CampaignPlan, LaunchReport
    from kehu.store import AppStore
    from kehu.workspace import Workspace

Status = Literal["draft", "submitted", "approved", "rejected", "launched"]
Action = Literal["edit", "submit", "approve", "reject", "launch"]

#: which statuses each action may start from
FROM: dict[Action, tuple[Status, ...]] = {
    "edit": ("draft", "rejected"),
    "submit": ("draft", "rejected"),
    "approve": ("submitted",),
    "reject": ("submitted",),
    "launch": ("approved",),
}
#: how each status is shown (translate with ``_()``)
STATUS_LABELS: dict[str, str] = {
    "draft": N_("Draft"), "submitted": N_("Awaiting approval"), "approved": N_("Approved"),
    "rejected": N_("Rejected"), "launched": N_("Launched"),
}
#: what each action does to a campaign, for messages (translate with ``_()``)
PAST: dict[str, str] = {
    "edit": N_("edited"), "submit": N_("submitted for approval"), "approve": N_("approved"),
    "reject": N_("rejected"), "launch": N_("launched"),
}
#: audit actions of the workflow (launching is audited by the launch service itself)
AUDIT_ACTIONS = ("create_draft", "update_draft", "submit", "approve", "reject", "launch")
OBJECT_TYPE = "campaign"
#: ids the web pages use as paths under /campaigns/
RESERVED_IDS = frozenset({"new", "plan"})


class TransitionError(KehuInputError):
    """The campaign's status does not allow this step (HTTP 409)."""


class SameUserError(KehuInputError):
    """The author of a campaign may not approve it (HTTP 403)."""


@dataclass(frozen=True)
class Actor:
    """Who moves a campaign along: the user's id (for the four-eyes rule), the name the
    audit log records and their role."""

    user_id: int | None
    name: str
    role: str


def allowed(action: Action, status: str) -> bool:
    """Whether ``action`` may be taken on a campaign in ``status``."""
    return status in FROM[action]


def _now() -> datetime:
    return datetime.now(UTC)


def jsonable(v: Any) -> Any:
    """``v`` with numpy numbers as Python ones, NaN and infinities as None, dates as ISO text
    (what JSON columns and responses can hold)."""
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [jsonable(x) for x in v]
    if isinstance(v, bool | str) or v is None:
        return v
    if isinstance(v, np.integer | int):
        return int(v)
    if isinstance(v, np.floating | float):
        f = float(v)
        return f if math.isfinite(f) else None
    if isinstance(v, date):
        return v.isoformat()
    return v


def plan_to_dict(p: CampaignPlan) -> dict[str, Any]:
    """The plan as JSON-ready data (an undetectable lift, ``inf``, becomes None)."""
    out: dict[str, Any] = jsonable(p.to_dict())
    return out


def _plan_summary(p: CampaignPlan) -> dict[str, Any]:
    d = plan_to_dict(p)
    return {k: d[k] for k in ("eligible", "contactable", "suppressed", "suppressed_by_rule",
                              "treatment", "control", "cost", "audience_as_of")} | {
        "mde": d["power"].get("mde"), "power": d["power"].get("power"),
        "checked_at": _now().isoformat()}


def check(ws: Workspace, spec: CampaignSpec) -> CampaignPlan:
    """What launching ``spec`` now would do (:func:`kehu.campaigns.launch.plan`)."""
    from kehu.campaigns.launch import plan

    return plan(ws, spec)


def existing_campaign_ids(ws: Workspace) -> set[str]:
    """Ids of campaigns already in the warehouse (imported or launched)."""
    from kehu.campaigns.measure import list_campaigns

    return {str(c["campaign_id"]) for c in list_campaigns(ws)}


# -- reading --------------------------------------------------------------------------------
def find_draft(store: AppStore, campaign_id: str) -> CampaignDraft | None:
    with store.session() as s:
        return s.scalars(select(CampaignDraft).where(
            CampaignDraft.campaign_id == campaign_id)).first()


def get_draft(store: AppStore, campaign_id: str) -> CampaignDraft:
    row = find_draft(store, campaign_id)
    if row is None:
        raise NotFoundError(_("No campaign draft '{id}'. The campaign list shows the drafts "
                              "and launched campaigns.").format(id=campaign_id))
    return row


def list_drafts(store: AppStore) -> list[CampaignDraft]:
    with store.session() as s:
        return list(s.scalars(select(CampaignDraft).order_by(CampaignDraft.id)))


def history(store: AppStore, campaign_id: str) -> list[AuditEntry]:
    """The campaign's audit entries, oldest first."""
    with store.session() as s:
        return list(s.scalars(select(AuditEntry).where(
            AuditEntry.object_type == OBJECT_TYPE, AuditEntry.object_id == campaign_id,
            AuditEntry.action.in_(AUDIT_ACTIONS)).order_by(AuditEntry.id)))


def saved_segments(store: AppStore) -> list[tuple[str, str | None]]:
    """Names (and descriptions) of the segments saved in the app store, by name."""
    from kehu.segments.saved import list_saved

    return [(s.name, s.description) for s in list_saved(store)]


@dataclass
class CampaignRow:
    """One line of the campaign overview: a draft, a launched campaign, or both."""

    campaign_id: str
    name: str | None
    status: str
    channel: str | None
    goal: str | None
    start_date: date | None
    end_date: date | None
    audience: int | None
    treatment: int | None
    control: int | None
    created_by: str | None
    updated_at: datetime | None


def _day(v: Any) -> date | None:
    if v is None or isinstance(v, date):
        return v
    return date.fromisoformat(str(v)[:10])


def overview(ws: Workspace) -> list[CampaignRow]:
    """Every campaign: launched or imported ones from the warehouse
    (:func:`kehu.campaigns.measure.list_campaigns`) and the drafts not launched yet, newest
    start first. Audience: treatment + control once launched, else the last check's
    contactable customers."""
    from kehu.campaigns.measure import list_campaigns

    drafts = {d.campaign_id: d for d in list_drafts(ws.store)}
    rows: list[CampaignRow] = []
    for c in list_campaigns(ws):
        cid = str(c["campaign_id"])
        d = drafts.pop(cid, None)
        t, k = c.get("treatment"), c.get("control")
        rows.append(CampaignRow(
            cid, c.get("name"), "launched", c.get("channel"), c.get("goal"),
            _day(c.get("start_date")), _day(c.get("end_date")),
            None if t is None and k is None else int(t or 0) + int(k or 0),
            None if t is None else int(t), None if k is None else int(k),
            d.created_by if d else None,
            (d.launched_at or d.updated_at or d.created_at) if d else None))
    for d in drafts.values():
        sched = d.spec.get("schedule") or {}
        rows.append(CampaignRow(
            d.campaign_id, d.name, d.status, d.spec.get("channel"), d.spec.get("goal"),
            _day(sched.get("start")), _day(sched.get("end")),
            (d.plan or {}).get("contactable"), (d.plan or {}).get("treatment"),
            (d.plan or {}).get("control"), d.created_by, d.updated_at or d.created_at))
    rows.sort(key=lambda r: (r.start_date or date.max, r.campaign_id), reverse=True)
    return rows


# -- the workflow ---------------------------------------------------------------------------
def refuse(action: Action, row: CampaignDraft) -> None:
    if not allowed(action, row.status):
        raise TransitionError(_(
            "Campaign {id} is {status}: it cannot be {action} now, only when it is {allowed}."
        ).format(id=row.campaign_id, status=_(STATUS_LABELS[row.status]).lower(),
                 action=_(PAST[action]),
                 allowed=", ".join(_(STATUS_LABELS[s]).lower() for s in FROM[action])))


def create_draft(ws: Workspace, spec: CampaignSpec, by: Actor) -> CampaignDraft:
    """Save ``spec`` as a new draft after checking its plan (a spec whose audience cannot be
    evaluated is refused). The id must be new: no draft and no campaign in the warehouse."""
    if spec.id.lower() in RESERVED_IDS:
        raise KehuInputError(_("id: '{id}' is reserved for the web pages; choose another id, "
                               "e.g. SPRING-XS.").format(id=spec.id))
    if find_draft(ws.store, spec.id) is not None or spec.id in existing_campaign_ids(ws):
        raise TransitionError(_("A campaign with the id {id} already exists. Give the new "
                                "campaign another id.").format(id=spec.id))
    p = check(ws, spec)
    with ws.store.session() as s:
        row = CampaignDraft(campaign_id=spec.id, name=spec.name,
                            spec=spec.model_dump(mode="json", exclude_none=True),
                            status="draft", version=1, plan=_plan_summary(p),
                            created_by=by.name, created_by_id=by.user_id)
        s.add(row)
        s.flush()
        s.add(AuditEntry(actor=by.name, action="create_draft", object_type=OBJECT_TYPE,
                         object_id=spec.id, details={"name": spec.name, "version": 1,
                                                     "eligible": p.eligible}))
    return row


def update_draft(ws: Workspace, campaign_id: str, spec: CampaignSpec, by: Actor
                 ) -> CampaignDraft:
    """Replace the spec of a draft (or of a rejected campaign, which becomes a draft
    again); the id cannot change."""
    if spec.id != campaign_id:
        raise KehuInputError(_("id: the campaign's id cannot change (it is {id}, the new spec "
                               "says {new}). Save a new campaign instead.").format(
            id=campaign_id, new=spec.id))
    refuse("edit", get_draft(ws.store, campaign_id))
    p = check(ws, spec)
    with ws.store.session() as s:
        row = _locked(s, campaign_id)
        refuse("edit", row)
        row.spec = spec.model_dump(mode="json", exclude_none=True)
        row.name = spec.name
        row.plan = _plan_summary(p)
        row.version += 1
        row.status = "draft"
        row.updated_at = _now()
        s.add(AuditEntry(actor=by.name, action="update_draft", object_type=OBJECT_TYPE,
                         object_id=campaign_id, details={"version": row.version,
                                                         "eligible": p.eligible}))
    return row


def _locked(s: Any, campaign_id: str) -> CampaignDraft:
    row: CampaignDraft | None = s.scalars(select(CampaignDraft).where(
        CampaignDraft.campaign_id == campaign_id).with_for_update()).first()
    if row is None:
        raise NotFoundError(_("No campaign draft '{id}'. The campaign list shows the drafts "
                              "and launched campaigns.").format(id=campaign_id))
    return row


def submit(ws: Workspace, campaign_id: str, by: Actor) -> CampaignDraft:
    """Ask for approval; the plan is checked again (the data may have changed)."""
    row = get_draft(ws.store, campaign_id)
    refuse("submit", row)
    p = check(ws, CampaignSpec.parse(row.spec, campaign_id))
    with ws.store.session() as s:
        row = _locked(s, campaign_id)
        refuse("submit", row)
        row.status = "submitted"
        row.plan = _plan_summary(p)
        row.submitted_at = row.updated_at = _now()
        row.submitted_by = by.name
        row.decided_at = row.decided_by = row.decided_by_id = row.decision_reason = None
        s.add(AuditEntry(actor=by.name, action="submit", object_type=OBJECT_TYPE,
                         object_id=campaign_id, details={"version": row.version}))
    return row


def _decide(ws: Workspace, campaign_id: str, by: Actor, action: Literal["approve", "reject"],
            reason: str | None) -> CampaignDraft:
    with ws.store.session() as s:
        row = _locked(s, campaign_id)
        refuse(action, row)
        if action == "approve" and by.role != "admin" and by.user_id is not None \
                and row.created_by_id == by.user_id:
            raise SameUserError(_("You created campaign {id}: another approver must approve "
                                  "it (only an administrator may approve their own "
                                  "campaign).").format(id=campaign_id))
        row.status = "approved" if action == "approve" else "rejected"
        row.decided_at = row.updated_at = _now()
        row.decided_by = by.name
        row.decided_by_id = by.user_id
        row.decision_reason = reason
        s.add(AuditEntry(actor=by.name, action=action, object_type=OBJECT_TYPE,
                         object_id=campaign_id,
                         details={"version": row.version, "reason": reason}))
    return row


def approve(ws: Workspace, campaign_id: str, by: Actor, note: str | None = None
            ) -> CampaignDraft:
    """Approve a submitted campaign (not the author's own, unless an administrator)."""
    return _decide(ws, campaign_id, by, "approve", (note or "").strip() or None)


def reject(ws: Workspace, campaign_id: str, by: Actor, reason: str) -> CampaignDraft:
    """Send a submitted campaign back to its author with ``reason`` (required)."""
    reason = (reason or "").strip()
    if not reason:
        raise KehuInputError(_("reason: say why the campaign is rejected, so its author can "
                               "change it. The reason was empty."))
    return _decide(ws, campaign_id, by, "reject", reason)


def _launched_elsewhere(ws: Workspace, campaign_id: str) -> bool:
    from kehu.store.models import CampaignLaunch

    with ws.store.session() as s:
        known = s.scalars(select(CampaignLaunch.id).where(
            CampaignLaunch.campaign_id == campaign_id)).first()
    return known is not None or campaign_id in existing_campaign_ids(ws)


def launch(ws: Workspace, campaign_id: str, by: Actor) -> tuple[CampaignDraft, LaunchReport]:
    """Launch an approved campaign (:func:`kehu.campaigns.launch.launch`, which refuses an
    id launched or imported before and audits the launch)."""
    from kehu.campaigns import launch as launching

    row = get_draft(ws.store, campaign_id)
    refuse("launch", row)
    try:
        report = launching.launch(ws, CampaignSpec.parse(row.spec, campaign_id), by.name)
    except NotFoundError:
        raise
    except KehuInputError as exc:  # launched or imported meanwhile: the service refuses
        if _launched_elsewhere(ws, campaign_id):
            raise TransitionError(str(exc)) from exc
        raise
    with ws.store.session() as s:
        row = _locked(s, campaign_id)
        row.status = "launched"
        row.launched_at = row.updated_at = report.launched_at
        row.launched_by = by.name
        row.plan = _plan_summary(report.plan) | {"treatment": report.treatment,
                                                 "control": report.control}
    return row, report
