"""Measuring what a campaign earned (C3): attribution, then treatment against control.

**Attribution** — the same rule for both groups. Each contact (treatment or control) gets
the responses of its customer to its campaign, or the customer's purchases, made from the
contact time to ``attribution_window_days`` after it::

    responses     imported responses of the campaign (not decline / opt_out / bounce);
                  revenue = their revenue, margin = revenue × margin rate
    transactions  purchases in the window; revenue = amount, margin = amount − cost
                  (× the margin rate when the lines carry no cost)
    auto          responses when the campaign has any, else transactions

**Measurement** — per campaign and per tier:

- response rate treatment vs control, their difference with Newcombe's interval and the
  two-proportion z-test; incremental responses = difference × treated;
- revenue and margin per contact with a 95 % interval, scaled to the treated customers:
  incremental revenue and incremental margin. By default (``auto``) Welch's interval, or the
  compound interval of :func:`kehu.campaigns.stats.compound_difference` when a group has
  fewer than 30 responders (Welch runs narrow there); ``welch``, ``bootstrap`` and
  ``compound`` can be chosen;
- cost = fixed + per contact × treated; ROI = (incremental margin − cost) / cost, with the
  margin's interval carried through;
- uplift by segment (tier, RFM class, lifecycle stage) and a Qini curve of targeting by value.

The campaign is called *significant* when its primary measure, the incremental revenue,
differs from zero at the test's level (one test per campaign, so a campaign without effect
is declared significant at most ``1 − level`` of the time).

A campaign without a control group gets a difference-in-differences of spend before and
after against a matched comparison group of customers not contacted, labelled as weaker
evidence.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

import ibis
import numpy as np
import pandas as pd

from kehu.campaigns import stats
from kehu.errors import KehuInputError, NotFoundError
from kehu.i18n import _

if TYPE_CHECKING:
    from kehu.warehouse import Engine
    from kehu.workspace import Workspace

NOT_A_RESPONSE = ("decline", "opt_out", "bounce", "unsubscribe", "open")
SEGMENT_FIELDS = ("tier", "rfm_class", "lifecycle_stage")
WEAKER = "weaker evidence: no randomised control group (difference-in-differences against " \
    "a matched comparison group)"


@dataclass
class CampaignInfo:
    campaign_id: str
    name: str | None
    channel: str | None
    start: date | None
    window_days: int
    cost_fixed: float
    cost_per_contact: float
    margin_rate: float | None = None
    attribution: str = "auto"


@dataclass
class CampaignResult:
    campaign_id: str
    name: str | None
    channel: str | None
    start: date | None
    window_days: int
    attribution: str
    design: Literal["randomised", "difference_in_differences"]
    n_treatment: int
    n_control: int
    responders_treatment: int
    responders_control: int
    response_rate: dict[str, Any]
    incremental_responses: dict[str, Any]
    revenue_per_contact: dict[str, Any]
    incremental_revenue: dict[str, Any]
    incremental_margin: dict[str, Any]
    cost: float
    roi: dict[str, Any]
    significant: bool
    margin_rate: float | None
    by_tier: list[dict[str, Any]] = field(default_factory=list)
    uplift_by_segment: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    qini: dict[str, Any] | None = None
    label: str | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(asdict(self))


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v]
    if isinstance(v, float | np.floating):
        f = float(v)
        return None if np.isnan(f) else f
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, date | datetime):
        return v.isoformat()
    return v


# -- what is known of a campaign --------------------------------------------------------------
def campaign_info(ws: Workspace, campaign_id: str) -> CampaignInfo:
    """Costs, dates and window from the campaign launched in kehu, else the imported row."""
    from kehu.campaigns.launch import launched

    try:
        spec, _row = launched(ws, campaign_id)
        return CampaignInfo(campaign_id, spec.name, spec.channel, spec.schedule.start,
                            spec.attribution_window_days, spec.cost_fixed,
                            spec.cost_per_contact, spec.margin_rate, spec.attribution)
    except NotFoundError:
        pass
    eng = ws.engine
    if not eng.warehouse.exists("campaigns"):
        raise NotFoundError(_("No campaign {id}: nothing was imported or launched.").format(
            id=campaign_id))
    c = eng.table("campaigns")
    rows = c.filter(c.campaign_id == campaign_id).to_pyarrow().to_pylist()
    if not rows:
        raise NotFoundError(_("No campaign {id} in the warehouse ('kehu campaign list' shows "
                              "them).").format(id=campaign_id))
    r = rows[0]
    start, end = r.get("start_date"), r.get("end_date")
    window = (end - start).days if start and end and end > start else 30
    return CampaignInfo(campaign_id, r.get("name"), r.get("channel"), start, window,
                        float(r.get("cost_fixed") or 0.0), float(r.get("cost_per_contact") or 0))


def list_campaigns(ws: Workspace) -> list[dict[str, Any]]:
    """Every campaign with its contacts by group."""
    eng = ws.engine
    if not eng.warehouse.exists("campaigns"):
        return []
    c = eng.table("campaigns")
    out = c.select("campaign_id", "name", "channel", "goal", "start_date", "end_date")
    if eng.warehouse.exists("campaign_contacts"):
        k = eng.table("campaign_contacts")
        g = k.group_by("campaign_id").aggregate(
            treatment=(k.group == "treatment").sum(), control=(k.group == "control").sum())
        out = out.left_join(g, "campaign_id").drop("campaign_id_right")
    df = out.order_by("start_date").to_pandas()
    for c in ("start_date", "end_date"):
        df[c] = [None if pd.isna(v) else pd.Timestamp(v).date() for v in df[c]]
    return [_jsonable(r) for r in df.to_dict("records")]


# -- attribution ------------------------------------------------------------------------------
def attribute(ws: Workspace, info: CampaignInfo) -> tuple[pd.DataFrame, str]:
    """One row per contact: ``customer_id, group, contact_time, responded, revenue, margin``
    and the attribution method used."""
    eng = ws.engine
    k = eng.table("campaign_contacts")
    k = k.filter(k.campaign_id == info.campaign_id)
    k = k.select("contact_id", "customer_id", "group", "contact_time")
    method = info.attribution
    if method == "auto":
        has = eng.warehouse.exists("responses") and bool(
            eng.table("responses").filter(
                eng.table("responses").campaign_id == info.campaign_id).count()
            .to_pyarrow().as_py())
        method = "responses" if has else "transactions"
    w = ibis.interval(days=info.window_days)
    if method == "responses":
        if not eng.warehouse.exists("responses"):
            raise KehuInputError(_("Campaign {id}: attribution 'responses' needs imported "
                                   "responses; import them or use 'transactions'.").format(
                id=info.campaign_id))
        r = eng.table("responses")
        r = r.filter(r.campaign_id == info.campaign_id)
        if "response_type" in r.columns:
            r = r.filter(r.response_type.isnull() | ~r.response_type.isin(NOT_A_RESPONSE))
        j = k.left_join(r.select("customer_id", "response_time",
                                 rev=r.revenue if "revenue" in r.columns else ibis.literal(0.0)),
                        [k.customer_id == r.customer_id,
                         r.response_time >= k.contact_time,
                         r.response_time <= k.contact_time + w])
        agg = j.group_by(["contact_id", "customer_id", "group"]).aggregate(
            responded=(j.response_time.notnull()).any().cast("int64"),
            revenue=j.rev.fill_null(0.0).sum().cast("float64"))
        df = agg.to_pandas()
        rate = info.margin_rate if info.margin_rate is not None else _margin_rate(
            eng, info.start)
        df["margin"] = df.revenue * (rate if rate is not None else 1.0)
        info.margin_rate = rate
    else:
        t = eng.table("transactions")
        t = t.filter(t.kind.fill_null("purchase") != "refund") if "kind" in t.columns else t
        cost = t.cost if "cost" in t.columns else ibis.null("float64")
        t = t.select("customer_id", "transaction_time", amount=t.amount.fill_null(0.0),
                     cost=cost)
        j = k.left_join(t, [k.customer_id == t.customer_id,
                            t.transaction_time > k.contact_time,
                            t.transaction_time <= k.contact_time + w])
        agg = j.group_by(["contact_id", "customer_id", "group"]).aggregate(
            responded=(j.transaction_time.notnull()).any().cast("int64"),
            revenue=j.amount.fill_null(0.0).sum().cast("float64"),
            costed=(j.amount.fill_null(0.0) * j.cost.notnull().cast("float64")).sum(),
            cost=j.cost.fill_null(0.0).sum().cast("float64"))
        df = agg.to_pandas()
        rate = info.margin_rate if info.margin_rate is not None else _margin_rate(
            eng, info.start)
        # lines with a cost give their margin; the rest the margin rate
        df["margin"] = (df.costed - df.cost) + (df.revenue - df.costed) * (
            rate if rate is not None else 1.0)
        df = df.drop(columns=["costed", "cost"])
        info.margin_rate = rate
    df["responded"] = df.responded.fillna(0).astype(int)
    return df, method


def _margin_rate(eng: Engine, start: date | None) -> float | None:
    from kehu.models.response.audience import margin_rate

    if not eng.warehouse.exists("transactions"):
        return None
    if start is None:
        from kehu.analytics.summary import last_transaction_day

        start = last_transaction_day(eng)
    return margin_rate(eng, start)


def segments_at_launch(ws: Workspace, campaign_id: str, start: date | None,
                       customers: pd.Series) -> pd.DataFrame:
    """Tier, RFM class and lifecycle stage of the contacts as the latest analysis run before
    the campaign saw them (the launch snapshot's tier for campaigns launched in kehu)."""
    from kehu.analytics.run import SCORES_TABLE
    from kehu.campaigns.launch import AUDIENCE_TABLE

    eng = ws.engine
    out = pd.DataFrame({"customer_id": customers.astype(str).unique()})
    if eng.warehouse.exists(SCORES_TABLE):
        s = eng.table(SCORES_TABLE)
        before = s.filter(s.as_of <= start) if start else s
        runs = before.aggregate(r=before.run_id.max()).to_pyarrow().to_pylist()[0]["r"]
        if runs is None:  # every run is later than the campaign: the earliest one
            runs = s.aggregate(r=s.run_id.min()).to_pyarrow().to_pylist()[0]["r"]
        cols = [c for c in SEGMENT_FIELDS if c in s.columns]
        seg = s.filter(s.run_id == runs).select("customer_id", *cols).to_pandas()
        out = out.merge(seg, on="customer_id", how="left")
    if eng.warehouse.exists(AUDIENCE_TABLE):
        a = eng.table(AUDIENCE_TABLE)
        snap = a.filter(a.campaign_id == campaign_id).select("customer_id", "tier") \
            .to_pandas()
        if len(snap):
            out = out.merge(snap.rename(columns={"tier": "snap_tier"}), on="customer_id",
                            how="left")
            out["tier"] = out.snap_tier.combine_first(out["tier"]) if "tier" in out.columns \
                else out.snap_tier
            out = out.drop(columns=["snap_tier"])
    for c in SEGMENT_FIELDS:
        if c not in out.columns:
            out[c] = None
        out[c] = out[c].fillna("-").astype(str)
    return out


# -- measurement ------------------------------------------------------------------------------
Method = Literal["auto", "welch", "bootstrap", "compound"]


def measure(ws: Workspace, campaign_id: str, *, level: float = 0.95,
            method: Method = "auto", by_segment: bool = True,
            seed: int = 0) -> CampaignResult:
    info = campaign_info(ws, campaign_id)
    eng = ws.engine
    if not eng.warehouse.exists("campaign_contacts"):
        raise NotFoundError(_("No campaign contacts: import or launch a campaign first."))
    df, how = attribute(ws, info)
    if df.empty:
        raise KehuInputError(_("Campaign {id} has no contacts.").format(id=campaign_id))
    t = df[df.group == "treatment"]
    c = df[df.group == "control"]
    if len(c) < 2:
        return _did(ws, info, df, how, level)
    seg = segments_at_launch(ws, campaign_id, info.start, df.customer_id)
    df = df.merge(seg, on="customer_id", how="left")
    res = _compare(info, df, how, level, method, seed)
    tiers = []
    for tier, g in df.groupby("tier", sort=True):
        gt, gc = g[g.group == "treatment"], g[g.group == "control"]
        if len(gt) >= 2 and len(gc) >= 2:
            share = len(gt) / max(len(t), 1)
            sub = _compare(info, g, how, level, method, seed, fixed_share=share)
            tiers.append({"tier": tier, **{k: v for k, v in sub.to_dict().items() if k in (
                "n_treatment", "n_control", "responders_treatment", "responders_control",
                "response_rate", "incremental_responses", "incremental_revenue",
                "incremental_margin", "cost", "roi", "significant")}})
        else:
            tiers.append({"tier": tier, "n_treatment": len(gt), "n_control": len(gc),
                          "note": _("too few customers in a group to compare")})
    res.by_tier = tiers
    if by_segment:
        treated = (df.group == "treatment").to_numpy()
        for f in SEGMENT_FIELDS:
            if df[f].nunique() > 1:
                u = stats.uplift_by_group(df[f].to_numpy(), treated, df.responded.to_numpy(),
                                          df.revenue.to_numpy(), level=level)
                res.uplift_by_segment[f] = _jsonable(u.reset_index().to_dict("records"))
        res.qini = _qini_by_value(ws, info, df)
    return res


def _compare(info: CampaignInfo, df: pd.DataFrame, how: str, level: float, method: str,
             seed: int, fixed_share: float = 1.0) -> CampaignResult:
    t = df[df.group == "treatment"]
    c = df[df.group == "control"]
    n_t, n_c = len(t), len(c)
    x_t, x_c = int(t.responded.sum()), int(c.responded.sum())
    rate = stats.proportion_difference(x_t, n_t, x_c, n_c, level=level)
    rev = stats.outcome_difference(t.revenue.to_numpy(), c.revenue.to_numpy(), level=level,
                                   method=method, seed=seed)  # type: ignore[arg-type]
    mar = stats.outcome_difference(t.margin.to_numpy(), c.margin.to_numpy(), level=level,
                                   method=method, seed=seed)  # type: ignore[arg-type]
    inc_margin = stats.scale(mar, n_t)
    cost = info.cost_fixed * fixed_share + info.cost_per_contact * n_t
    r = stats.roi(inc_margin, cost)
    return CampaignResult(
        info.campaign_id, info.name, info.channel, info.start, info.window_days, how,
        "randomised", n_t, n_c, x_t, x_c, rate.to_dict(),
        stats.scale(rate, n_t).to_dict(), rev.to_dict(), stats.scale(rev, n_t).to_dict(),
        inc_margin.to_dict(), round(cost, 2), r.to_dict(),
        bool(rev.p_value < 1 - level), info.margin_rate)


def _qini_by_value(ws: Workspace, info: CampaignInfo, df: pd.DataFrame
                   ) -> dict[str, Any] | None:
    """The Qini curve of targeting by customer value (the run's ``total_value`` before the
    campaign): does the uplift concentrate in the valuable customers?"""
    from kehu.analytics.run import SCORES_TABLE

    eng = ws.engine
    if not eng.warehouse.exists(SCORES_TABLE):
        return None
    s = eng.table(SCORES_TABLE)
    col = next((x for x in ("total_value", "clv", "monetary_total") if x in s.columns), None)
    if col is None:
        return None
    before = s.filter(s.as_of <= info.start) if info.start else s
    run = before.aggregate(r=before.run_id.max()).to_pyarrow().to_pylist()[0]["r"]
    if run is None:
        run = s.aggregate(r=s.run_id.min()).to_pyarrow().to_pylist()[0]["r"]
    v = s.filter(s.run_id == run).select("customer_id", value=s[col].cast("float64")) \
        .to_pandas()
    j = df.merge(v, on="customer_id", how="left")
    score = j.value.fillna(j.value.min() if j.value.notna().any() else 0.0).to_numpy()
    treated = (j.group == "treatment").to_numpy()
    curve = stats.qini_curve(score, treated, j.responded.to_numpy(), bins=20)
    coef = stats.qini_coefficient(score, treated, j.responded.to_numpy())
    return {"score": col, "coefficient": coef, **curve.to_dict()}


def _did(ws: Workspace, info: CampaignInfo, df: pd.DataFrame, how: str,
         level: float) -> CampaignResult:
    """Spend in the window before against the window after the contact, contacted customers
    against a matched group of customers not contacted (matched on prior spend, purchases
    and recency; same tier)."""
    eng = ws.engine
    if info.start is None:
        raise KehuInputError(_("Campaign {id} has no control group and no start date: it "
                               "cannot be measured.").format(id=info.campaign_id))
    start = info.start
    w = info.window_days
    t = eng.table("transactions")
    t = t.filter(t.kind.fill_null("purchase") != "refund") if "kind" in t.columns else t
    day = t.transaction_time.date()
    lo, hi = start - timedelta(days=w), start + timedelta(days=w)
    win = t.filter((day >= lo) & (day < hi))
    per = win.group_by("customer_id").aggregate(
        pre=(win.amount * (day < start).cast("float64")).sum(),
        post=(win.amount * (day >= start).cast("float64")).sum()).to_pandas()
    year = t.filter((day < start) & (day >= start - timedelta(days=365)))
    hist = year.group_by("customer_id").aggregate(
        spend_12m=year.amount.sum(), orders_12m=year.count(),
        last=year.transaction_time.max()).to_pandas()
    cust = eng.table("customers").select("customer_id").to_pandas()
    seg = segments_at_launch(ws, info.campaign_id, start, cust.customer_id)
    base = cust.merge(seg[["customer_id", "tier"]], on="customer_id", how="left") \
        .merge(hist, on="customer_id", how="left").merge(per, on="customer_id", how="left")
    base["recency"] = (pd.Timestamp(start) - pd.to_datetime(base["last"])).dt.days
    base = base.fillna({"spend_12m": 0.0, "orders_12m": 0, "pre": 0.0, "post": 0.0,
                        "recency": 9999})
    contacted = set(df.customer_id)
    tr = base[base.customer_id.isin(contacted)].set_index("customer_id")
    pool = base[~base.customer_id.isin(contacted)].set_index("customer_id")
    cols = ["spend_12m", "orders_12m", "recency", "pre"]
    matched = stats.matched_comparison(tr, pool, cols, exact=["tier"])
    cmp_ = pool.loc[matched]
    d = stats.diff_in_diff(tr.pre.to_numpy(), tr.post.to_numpy(), cmp_.pre.to_numpy(),
                           cmp_.post.to_numpy(), level=level)
    rate = _margin_rate(eng, start)
    n_t = len(tr)
    inc_rev = stats.scale(d, n_t)
    factor = rate if rate is not None else 1.0
    inc_margin = stats.Interval(
        None if inc_rev.estimate is None else inc_rev.estimate * factor,
        None if inc_rev.low is None else inc_rev.low * factor,
        None if inc_rev.high is None else inc_rev.high * factor, level)
    cost = info.cost_fixed + info.cost_per_contact * n_t
    responders = int(df.responded.sum())
    nan: dict[str, Any] = {"estimate": None, "low": None, "high": None}
    return CampaignResult(
        info.campaign_id, info.name, info.channel, start, w, how,
        "difference_in_differences", n_t, len(cmp_), responders, 0, nan, nan, d.to_dict(),
        inc_rev.to_dict(), inc_margin.to_dict(), round(cost, 2),
        stats.roi(inc_margin, cost).to_dict(), bool(d.p_value < 1 - level), rate,
        label=WEAKER,
        notes=[_("No control group: compared with {n} matched customers not contacted "
                 "(same tier, similar spend, purchases and recency). Weaker evidence than a "
                 "randomised holdout.").format(n=len(cmp_))])


def measure_all(ws: Workspace, **kw: Any) -> list[CampaignResult]:
    return [measure(ws, str(c["campaign_id"]), **kw) for c in list_campaigns(ws)]


def campaign_results(ws: Workspace, start: date, end: date) -> list[dict[str, Any]]:
    """Campaigns starting in ``[start, end]`` with their incremental margin, cost and ROI
    (for the CRM-effectiveness KPIs)."""
    out = []
    for c in list_campaigns(ws):
        s = c.get("start_date")
        if s is None:
            continue
        s = pd.Timestamp(s).date()
        if not start <= s <= end:
            continue
        try:
            r = measure(ws, str(c["campaign_id"]), by_segment=False)
        except KehuInputError:
            continue
        out.append({"campaign_id": r.campaign_id, "start_date": s,
                    "incremental_margin": r.incremental_margin.get("estimate"),
                    "cost": r.cost, "roi": r.roi.get("estimate"), "design": r.design})
    return out
