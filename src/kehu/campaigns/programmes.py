"""Lifecycle programmes (C5): campaign templates whose audience is recomputed at every wave.

A programme is a campaign spec without an audience and a schedule, plus a kind that supplies
the audience from the latest analysis run:

======================  ==============================================================
dormant_reactivation    休眠客户激活: lifecycle stage ``dormant``
winback                 流失挽回: lifecycle stage ``churned`` (optionally only recent ones)
high_value_retention    high-value, high-risk: tier in ``tiers`` and churn risk ≥ ``min_risk``
repeat_purchase         a first purchase, no second yet, ``min_days``–``max_days`` ago
======================  ==============================================================

``run_programmes`` launches a wave of every enabled programme that is due (its last wave is
at least ``every_days`` old) — all waves together, so the contact policy gives customers
wanted by two programmes to the higher priority. Each wave is an ordinary campaign
(``<programme>-<yyyymmdd>``) with its own holdout, measured like any other;
``programme_results`` adds the waves up. Referral tracking (老客户推荐) is
:func:`referral_report`.

>>> p = ProgrammeSpec.parse({"id": "WAKE", "name": "休眠唤醒", "kind": "dormant_reactivation",
...     "campaign": {"channel": "sms", "offers": {"default": {"text": "回归礼包"}}}})
>>> p.every_days, p.campaign["channel"], audience_for(p).rule.field
(30, 'sms', 'lifecycle_stage')
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import ibis
import yaml
from pydantic import Field, field_validator

from kehu.campaigns.spec import _ID, Audience, BaseModel, CampaignSpec
from kehu.errors import NotFoundError
from kehu.i18n import _
from kehu.segments.spec import AllOf, FieldRule
from kehu.specfiles import read_yaml, validated

if TYPE_CHECKING:
    from kehu.workspace import Workspace

Kind = Literal["dormant_reactivation", "winback", "high_value_retention", "repeat_purchase"]


class ProgrammeSpec(BaseModel):
    id: str
    name: str = Field(min_length=1, max_length=200)
    kind: Kind
    enabled: bool = True
    every_days: int = Field(default=30, ge=1, le=366)
    #: kind parameters: tiers / min_risk (high_value_retention), churned_within_days
    #: (winback), min_days / max_days (repeat_purchase)
    params: dict[str, Any] = Field(default_factory=dict)
    #: the campaign template: every CampaignSpec field but id, audience and schedule
    campaign: dict[str, Any]

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not _ID.match(v) or len(v) > 60:
            raise ValueError("letters, digits, '_', '.', '-' only, at most 60, e.g. WAKE")
        return v

    @field_validator("campaign")
    @classmethod
    def _template(cls, v: dict[str, Any]) -> dict[str, Any]:
        bad = {"id", "audience", "schedule"} & set(v)
        if bad:
            raise ValueError(f"the programme sets {', '.join(sorted(bad))} itself")
        return v

    @classmethod
    def parse(cls, data: Any, where: str = "programme") -> ProgrammeSpec:
        spec = validated(cls, data, where, _("programme"))
        spec.wave(date(2000, 1, 1), where)   # the template must make a valid campaign
        return spec

    def wave(self, as_of: date, where: str = "programme") -> CampaignSpec:
        """The campaign of the wave launched after ``as_of``."""
        data = {"goal": GOALS[self.kind], **self.campaign,
                "id": f"{self.id}-{as_of:%Y%m%d}", "name": f"{self.name} {as_of:%Y-%m-%d}",
                "audience": audience_for(self).model_dump(mode="json", exclude_none=True),
                "schedule": {"start": (as_of + timedelta(days=1)).isoformat()}}
        return CampaignSpec.parse(data, f"{where} {self.id}: campaign")


GOALS = {"dormant_reactivation": "reactivation", "winback": "winback",
         "high_value_retention": "retention", "repeat_purchase": "repeat_purchase"}


def audience_for(p: ProgrammeSpec) -> Audience:
    """The programme's audience rule over the latest run's scores."""
    prm = p.params
    rules: list[Any]
    if p.kind == "dormant_reactivation":
        rules = [FieldRule(field="lifecycle_stage", op="=", value="dormant")]
    elif p.kind == "winback":
        rules = [FieldRule(field="lifecycle_stage", op="=", value="churned")]
        if prm.get("churned_within_days"):
            rules.append(FieldRule(field="recency_days", op="<=",
                                   value=int(prm["churned_within_days"])))
    elif p.kind == "high_value_retention":
        rules = [FieldRule(field="tier", op="in", value=list(prm.get("tiers",
                                                                       ["diamond", "gold"]))),
                 FieldRule(field="churn_risk", op=">=", value=float(prm.get("min_risk", 0.3)))]
    else:  # repeat_purchase
        rules = [FieldRule(field="repeat_purchases", op="=", value=0),
                 FieldRule(field="recency_days", op="between",
                           value=[int(prm.get("min_days", 7)), int(prm.get("max_days", 60))])]
    rule = rules[0] if len(rules) == 1 else AllOf.model_validate({"all": rules})
    return Audience(rule=rule)


# -- saved programmes ----------------------------------------------------------------------
def default_programmes() -> list[ProgrammeSpec]:
    text = resources.files("kehu.campaigns").joinpath("default_programmes.yaml").read_text(
        encoding="utf-8")
    return [ProgrammeSpec.parse(d, "default_programmes.yaml") for d in yaml.safe_load(text)]


def load_programmes(path: str | Path) -> list[ProgrammeSpec]:
    data = read_yaml(path, _("Programme file not found: {path}."))
    items = data if isinstance(data, list) else [data]
    return [ProgrammeSpec.parse(d, f"{path} #{i + 1}") for i, d in enumerate(items)]


def save_programmes(ws: Workspace, programmes: list[ProgrammeSpec], actor: str) -> None:
    from kehu.store import services as sv

    for p in programmes:
        sv.save_definition(ws.store, sv.DefinitionIn(
            kind="programme", name=p.id, description=p.name, spec=p.model_dump(mode="json")),
            actor)


def programmes(ws: Workspace) -> list[ProgrammeSpec]:
    """The saved programmes, else the defaults (all disabled until saved)."""
    from sqlalchemy import select

    from kehu.store.models import Definition

    with ws.store.session() as s:
        rows = list(s.scalars(select(Definition).where(Definition.kind == "programme")
                              .order_by(Definition.name)))
    if rows:
        return [ProgrammeSpec.parse(r.spec, r.name) for r in rows]
    return [p.model_copy(update={"enabled": False}) for p in default_programmes()]


# -- waves ----------------------------------------------------------------------------------
@dataclass
class ProgrammeRun:
    as_of: date
    launched: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def waves(ws: Workspace, programme_id: str) -> list[str]:
    """Campaign ids of the programme's waves, oldest first."""
    from sqlalchemy import select

    from kehu.store.models import CampaignLaunch

    with ws.store.session() as s:
        ids = list(s.scalars(select(CampaignLaunch.campaign_id).where(
            CampaignLaunch.campaign_id.like(f"{programme_id}-%"))))
    return sorted(i for i in ids if i[len(programme_id) + 1:].isdigit())


def run_programmes(ws: Workspace, actor: str, as_of: date | None = None,
                   dry_run: bool = False, seed: int | None = None) -> ProgrammeRun:
    """Launch (or with ``dry_run`` plan) a wave of every enabled programme that is due."""
    from kehu.analytics.summary import last_transaction_day
    from kehu.campaigns.launch import launch_many, plan_many

    as_of = as_of or last_transaction_day(ws.engine)
    out = ProgrammeRun(as_of)
    due: list[CampaignSpec] = []
    for p in programmes(ws):
        if not p.enabled:
            out.skipped.append({"programme": p.id, "reason": "disabled"})
            continue
        past = waves(ws, p.id)
        if past:
            last = date(int(past[-1][-8:-4]), int(past[-1][-4:-2]), int(past[-1][-2:]))
            if (as_of - last).days < p.every_days:
                out.skipped.append({"programme": p.id, "reason": "not_due",
                                    "last_wave": past[-1]})
                continue
        due.append(p.wave(as_of))
    if not due:
        return out
    if dry_run:
        for pl in plan_many(ws, due, as_of):
            out.launched.append({"campaign_id": pl.campaign_id, "planned": True,
                                 **{k: v for k, v in pl.to_dict().items() if k in (
                                     "eligible", "contactable", "suppressed", "treatment",
                                     "control", "cost", "warnings")}})
        return out
    for r in launch_many(ws, due, actor, as_of, seed=seed):
        out.launched.append({"campaign_id": r.plan.campaign_id, "eligible": r.plan.eligible,
                             "treatment": r.treatment, "control": r.control,
                             "suppressed": r.plan.suppressed, "seed": r.seed})
    return out


def programme_results(ws: Workspace, programme_id: str) -> dict[str, Any]:
    """Every wave's incremental margin and cost, and the programme's total with an interval
    (independent waves: their standard errors add in quadrature)."""
    from kehu.campaigns.measure import measure

    ids = waves(ws, programme_id)
    if not ids:
        raise NotFoundError(_("Programme {id} has no waves yet ('kehu programme run' "
                              "launches them).").format(id=programme_id))
    rows: list[dict[str, Any]] = []
    for cid in ids:
        r = measure(ws, cid, by_segment=False)
        m = r.incremental_margin
        rows.append({"campaign_id": cid, "design": r.design, "n_treatment": r.n_treatment,
                     "n_control": r.n_control, "incremental_margin": m.get("estimate"),
                     "se": m.get("se"), "cost": r.cost, "roi": r.roi.get("estimate")})
    known = [x for x in rows if x["incremental_margin"] is not None and x["se"] is not None]
    total = float(sum(float(x["incremental_margin"]) for x in known))
    se = float(sum(float(x["se"]) ** 2 for x in known)) ** 0.5
    cost = float(sum(float(x["cost"]) for x in rows))
    return {"programme": programme_id, "waves": rows, "incremental_margin": total,
            "low": total - 1.96 * se, "high": total + 1.96 * se, "cost": cost,
            "roi": (total - cost) / cost if cost > 0 else None,
            "roi_low": (total - 1.96 * se - cost) / cost if cost > 0 else None,
            "roi_high": (total + 1.96 * se - cost) / cost if cost > 0 else None}


# -- referrals (老客户推荐) ----------------------------------------------------------------------
def referral_report(ws: Workspace, as_of: date | None = None, top: int = 20) -> dict[str, Any]:
    """Referrals made, converted, conversion rate and days to convert, and the referral
    value: what the referred customers bought from their conversion to ``as_of``; by
    referrer, best first."""
    eng = ws.engine
    if not eng.warehouse.exists("referrals"):
        raise NotFoundError(_("No referrals imported: import a referrals file (老客户推荐) "
                              "first."))
    r = eng.table("referrals")
    if as_of is not None:
        r = r.filter(r.referral_date <= as_of)
    conv = r.converted_date.notnull() & r.referred_id.notnull()
    if as_of is not None:
        conv = conv & (r.converted_date <= as_of)
    r = r.mutate(converted=conv.cast("int64"))
    value = ibis.literal(0.0)
    if eng.warehouse.exists("transactions"):
        t = eng.table("transactions")
        if "kind" in t.columns:
            t = t.filter(t.kind.fill_null("purchase") != "refund")
        if as_of is not None:
            t = t.filter(t.transaction_time.date() <= as_of)
        j = r.filter(r.converted == 1).join(
            t, [r.referred_id == t.customer_id, t.transaction_time.date() >= r.converted_date])
        spend = j.group_by("referral_id").aggregate(value=j.amount.sum())
        r = r.left_join(spend, "referral_id").drop("referral_id_right")
        value = r.value.fill_null(0.0)
    r = r.mutate(value=value.cast("float64"),
                 days=(r.converted_date.epoch_days() - r.referral_date.epoch_days()))
    df = r.select("referrer_id", "converted", "value", "days").to_pandas()
    by = df.groupby("referrer_id").agg(referrals=("converted", "size"),
                                       converted=("converted", "sum"),
                                       referral_value=("value", "sum"))
    by["conversion_rate"] = by.converted / by.referrals
    by = by.sort_values(["referral_value", "converted"], ascending=False)
    conv_days = df.days[df.converted == 1]
    return {
        "as_of": as_of.isoformat() if as_of else None,
        "referrals": len(df), "referrers": int(by.shape[0]),
        "converted": int(df.converted.sum()),
        "conversion_rate": float(df.converted.mean()) if len(df) else None,
        "median_days_to_convert": float(conv_days.median()) if len(conv_days) else None,
        "referral_value": float(df.value.sum()),
        "top_referrers": [
            {"referrer_id": str(i), "referrals": int(x.referrals), "converted": int(x.converted),
             "conversion_rate": float(x.conversion_rate),
             "referral_value": float(x.referral_value)}
            for i, x in by.head(top).iterrows()]}


__all__ = ["ProgrammeRun", "ProgrammeSpec", "audience_for", "default_programmes",
           "load_programmes", "programme_results", "programmes", "referral_report",
           "run_programmes", "save_programmes", "waves"]
