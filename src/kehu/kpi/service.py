"""CRM effectiveness (MISSION C8): the programme's own KPIs, month by month, with a headline
over the whole period.

The period is the ``months`` calendar months ending with the month of ``as_of`` (default:
the last transaction day); the last month ends on ``as_of`` (``partial`` when that is not
its last day). Definitions, per month ``[start, end]``:

- **retention**: ``customers_start`` are the customers *live* on the day before the month
  starts — lifecycle stage (:mod:`kehu.analytics.lifecycle`, default rules) neither
  ``prospect`` nor ``churned``; dormant customers are live, they are not lost yet.
  ``churned`` are those of them whose stage on ``end`` is ``churned`` (a churn event with no
  purchase after it, or no purchase for more than ``dormant_days``); ``retention_rate =
  (customers_start − churned) / customers_start``. ``new_customers``: customers who made
  their first purchase in the month (prospect or unknown before, not after);
  ``customers_end``: live on ``end``. The headline retention is the same over the period:
  live the day before it starts, not churned on ``as_of``.
- **value of each tier** (``tiers``): revenue (``amount``, refunds negative) and margin
  (``amount − cost``) of the month's transactions, attributed to the tier each customer held
  the day before the month started (the run's tier scheme on trailing 12-month spend);
  ``buyers`` bought in the month. ``*_mom`` is the change against the previous month and
  ``*_yoy`` against the same month a year earlier, as a fraction (``None`` when the earlier
  value is not positive; a partial last month is compared with the same days a year
  earlier, but with the whole previous month). The headline compares the period's total
  with the same days a year earlier.
- **campaigns**: from ``campaign_results(ws, start, as_of)`` (campaign measurement), by the
  month each campaign started: ``campaigns``, ``campaign_incremental_margin`` and
  ``campaign_cost`` (sums over the campaigns that have them) and ``campaign_roi = (margin −
  cost) / cost``. Without ``campaign_results`` they are ``None`` and the headline says why.
- **satisfaction**: NPS = % promoters (9–10) − % detractors (0–6) of the NPS answers given in
  the month, CSAT = mean CSAT answer (1–5) — the formulas of
  :func:`kehu.analytics.satisfaction.nps_csat`; ``ticket_satisfaction`` = mean rating of the
  tickets resolved in the month.
- **complaint resolution**: median hours from opened to resolved of the complaints
  (``kind = complaint``) resolved in the month; ``complaints_opened`` in the month.
- **tasks on time** (app store): of the tasks due in the month (up to ``as_of``), not
  cancelled or dismissed, the share done on or before the due date (the day of completion
  in the workspace's business time zone, ``[company] timezone``).
"""

from __future__ import annotations

import calendar
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import ibis
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from kehu.accounts.portfolio import LIVE_STAGES, stages_on
from kehu.analytics.tiers import tiers_as_of
from kehu.errors import KehuInputError
from kehu.i18n import _

if TYPE_CHECKING:
    from kehu.workspace import Workspace

CampaignResults = Callable[["Workspace", date, date], list[dict[str, Any]]]
MAX_MONTHS = 120


@dataclass
class KpiReport:
    """Monthly rows (``months``, oldest first), tier rows (``tiers``: month × tier) and the
    ``headline`` over the period; definitions in the module documentation."""

    as_of: date
    start: date
    months: list[dict[str, Any]] = field(default_factory=list)
    tiers: list[dict[str, Any]] = field(default_factory=list)
    headline: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: dates as ISO strings, NaN as ``None``, numpy scalars as numbers."""
        out: dict[str, Any] = _json_safe(asdict(self))
        return out


def _json_safe(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _json_safe(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_json_safe(x) for x in v]
    if isinstance(v, datetime | date):
        return v.isoformat()
    if hasattr(v, "item") and not isinstance(v, str):  # numpy / pandas scalars
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if v is pd.NaT or v is pd.NA:
        return None
    return v


def month_spans(as_of: date, months: int) -> list[tuple[date, date]]:
    """``(start, end)`` of the ``months`` calendar months ending with ``as_of``'s, oldest
    first; the last ends on ``as_of``.

    >>> month_spans(date(2025, 3, 15), 3)
    [(datetime.date(2025, 1, 1), datetime.date(2025, 1, 31)), (datetime.date(2025, 2, 1), datetime.date(2025, 2, 28)), (datetime.date(2025, 3, 1), datetime.date(2025, 3, 15))]
    """  # noqa: E501
    out = []
    y, m = as_of.year, as_of.month
    for _i in range(months):
        start = date(y, m, 1)
        end = min(date(y, m, calendar.monthrange(y, m)[1]), as_of)
        out.append((start, end))
        y, m = (y, m - 1) if m > 1 else (y - 1, 12)
    return out[::-1]


def _label(d: date) -> str:
    return f"{d.year:04d}-{d.month:02d}"


def _ratio(num: float | None, den: float | None) -> float | None:
    if num is None or den is None or not den or pd.isna(num) or pd.isna(den):
        return None
    return float(num) / float(den)


def _growth(cur: float | None, prev: float | None) -> float | None:
    if cur is None or prev is None or pd.isna(cur) or pd.isna(prev) or prev <= 0:
        return None
    return float(cur) / float(prev) - 1.0


def crm_kpis(ws: Workspace, months: int = 12, as_of: date | None = None,
             campaign_results: CampaignResults | None = None) -> KpiReport:
    """The programme's KPIs for the ``months`` months up to ``as_of``."""
    from kehu.analytics.summary import last_transaction_day

    if isinstance(months, bool) or not isinstance(months, int) or not 1 <= months <= MAX_MONTHS:
        raise KehuInputError(_("The 'months' parameter must be an int between 1 and {max}. "
                               "Got {v!r} instead.").format(max=MAX_MONTHS, v=months))
    with ws.engine.cached():
        as_of = as_of or last_transaction_day(ws.engine)
        spans = month_spans(as_of, months)
        report = KpiReport(as_of=as_of, start=spans[0][0])
        rows = [{"month": _label(s), "start": s, "end": e,
                 "partial": e != date(s.year, s.month, calendar.monthrange(s.year, s.month)[1])}
                for s, e in spans]
        retention_total = _retention(ws, spans, rows)
        tier_rows, growth = _tier_value(ws, as_of, spans, rows)
        sat_total = _satisfaction(ws, spans, rows)
        tickets_total = _complaints(ws, spans, rows)
    tasks_total = _tasks(ws, spans, rows)
    camp_total = _campaigns(ws, spans, rows, campaign_results)
    report.months = rows
    report.tiers = tier_rows
    report.headline = {"period": {"start": spans[0][0], "end": as_of, "months": months},
                       "retention": retention_total,
                       "retention_rate_last_month": rows[-1]["retention_rate"],
                       "value_growth": growth, "campaigns": camp_total,
                       "satisfaction": sat_total, "complaints": tickets_total,
                       "tasks": tasks_total}
    if rows[-1]["partial"]:
        report.notes.append(_("{month} is counted up to {d} only.").format(
            month=rows[-1]["month"], d=as_of))
    if camp_total["reason"]:
        report.notes.append(camp_total["reason"])
    return report


# -- retention ------------------------------------------------------------------------------


def _retention(ws: Workspace, spans: list[tuple[date, date]], rows: list[dict[str, Any]]
               ) -> dict[str, Any]:
    days = [spans[0][0] - timedelta(days=1)] + [e for _s, e in spans]
    live, churned, bought = [], [], []
    for d in days:
        st = stages_on(ws, d)
        t = st.filter(st.stage != "prospect").to_pyarrow()
        stage, ids = t.column("stage"), t.column("customer_id")
        live.append(ids.filter(pc.is_in(stage, pa.array(LIVE_STAGES))))
        churned.append(ids.filter(pc.equal(stage, "churned")))
        bought.append(ids)

    def common(a: pa.ChunkedArray, b: pa.ChunkedArray) -> int:
        """How many ids of ``a`` are in ``b`` (ids are unique in each; Arrow's hash join,
        far cheaper than pandas index set operations at millions of customers)."""
        return int(pc.sum(pc.is_in(a, value_set=b.combine_chunks())).as_py() or 0) \
            if len(a) and len(b) else 0

    for i, row in enumerate(rows, start=1):
        base = live[i - 1]
        lost = common(base, churned[i])
        row.update(customers_start=len(base), churned=lost,
                   retention_rate=_ratio(len(base) - lost, len(base)),
                   new_customers=len(bought[i]) - common(bought[i], bought[i - 1]),
                   customers_end=len(live[i]))
    base = live[0]
    lost = common(base, churned[-1])
    return {"customers_start": len(base), "retained": len(base) - lost, "churned": lost,
            "rate": _ratio(len(base) - lost, len(base))}


# -- value by tier --------------------------------------------------------------------------


def _tier_value(ws: Workspace, as_of: date, spans: list[tuple[date, date]],
                rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    from kehu.accounts.portfolio import year_before
    from kehu.accounts.service_levels import tier_name, tier_scheme

    eng = ws.engine
    scheme = tier_scheme(ws)
    codes = [t.code for t in scheme.tiers]
    n = len(spans)
    all_spans = month_spans(as_of, n + 12)  # a year more, for the comparisons
    labels = [_label(s) for s, _e in all_spans]
    tx = eng.table("transactions")
    cust = eng.table("customers")
    held = ibis.union(*[
        tiers_as_of(tx, cust, s - timedelta(days=1), scheme).select(
            "customer_id", "tier", month=ibis.literal(s))
        for s, _e in all_spans], distinct=False)
    g = _value_by_tier(tx, held, all_spans[0][0], as_of, codes[-1])
    full = pd.MultiIndex.from_product([labels, codes], names=["month", "tier"])
    g = g.set_index(["month", "tier"]).reindex(full).reset_index()
    g[["revenue", "margin"]] = g[["revenue", "margin"]].fillna(0.0).astype("float64")
    g["buyers"] = g.buyers.fillna(0).astype("int64")
    val = {(r.month, r.tier): (r.revenue, r.margin, r.buyers) for r in g.itertuples()}
    # a year before a partial month: the same days of that month only (like for like)
    year_ago = {(labels[k], c): val[(labels[k], c)] for k in range(n) for c in codes}
    if rows[-1]["partial"]:
        s = all_spans[n - 1][0]
        cut = _value_by_tier(tx, held, s, year_before(as_of), codes[-1])
        cut = cut.set_index("tier").reindex(codes).fillna(0.0)
        for c in codes:
            year_ago[(labels[n - 1], c)] = (float(cut.revenue[c]), float(cut.margin[c]), 0)
    out: list[dict[str, Any]] = []
    for i in range(12, n + 12):
        for code in codes:
            r, prev, ly = val[(labels[i], code)], val[(labels[i - 1], code)], \
                year_ago[(labels[i - 12], code)]
            out.append({"month": labels[i], "tier": code, "tier_name": tier_name(code, scheme),
                        "revenue": r[0], "margin": r[1], "buyers": int(r[2]),
                        "revenue_mom": _growth(r[0], prev[0]),
                        "revenue_yoy": _growth(r[0], ly[0]),
                        "margin_mom": _growth(r[1], prev[1]),
                        "margin_yoy": _growth(r[1], ly[1])})
    for row in rows:
        mine = [t for t in out if t["month"] == row["month"]]
        row.update(revenue=sum(t["revenue"] for t in mine), margin=sum(t["margin"] for t in mine))
    growth: dict[str, Any] = {}
    for code in [*codes, "all"]:
        keep = codes if code == "all" else [code]
        a = [val[(labels[i], c)] for i in range(12, n + 12) for c in keep]
        b = [year_ago[(labels[i], c)] for i in range(n) for c in keep]
        rev, mar = sum(x[0] for x in a), sum(x[1] for x in a)
        rev_b, mar_b = sum(x[0] for x in b), sum(x[1] for x in b)
        growth[code] = {"revenue": rev, "revenue_prev_year": rev_b,
                        "revenue_yoy": _growth(rev, rev_b), "margin": mar,
                        "margin_prev_year": mar_b, "margin_yoy": _growth(mar, mar_b)}
    return out, growth


def _value_by_tier(tx: Any, held: Any, start: date, end: date, lowest: str) -> pd.DataFrame:
    """``month (YYYY-MM), tier, revenue, margin, buyers`` of the transactions from ``start``
    to ``end``, by the tier each customer held when the month began (``held``)."""
    day = tx.transaction_time.cast("date")
    w = tx.filter((day >= ibis.literal(start)) & (day <= ibis.literal(end)))
    w = w.mutate(month=w.transaction_time.cast("date").truncate("M"))
    per = w.group_by(["customer_id", "month"]).aggregate(
        revenue=w.amount.sum(), margin=(w.amount - w.cost.fill_null(0)).sum())
    j = per.left_join(held, ["customer_id", "month"])
    j = j.select(month=per.month, tier=j.tier.fill_null(lowest), revenue=per.revenue,
                 margin=per.margin)
    g = j.group_by(["month", "tier"]).aggregate(revenue=j.revenue.sum(), margin=j.margin.sum(),
                                                buyers=j.count()).to_pandas()
    g["month"] = g.month.map(lambda v: _label(pd.Timestamp(v).date()))
    return g


# -- satisfaction and complaints ------------------------------------------------------------


def _window(col: Any, spans: list[tuple[date, date]]) -> Any:
    start = ibis.literal(datetime.combine(spans[0][0], time()))
    end = ibis.literal(datetime.combine(spans[-1][1] + timedelta(days=1), time()))
    return (col >= start) & (col < end)


def _by_month(t: Any, col: Any) -> Any:
    return t.mutate(month=col.cast("date").truncate("M"))


def _frame_by_label(df: pd.DataFrame) -> dict[str, Any]:
    df = df.copy()
    df["month"] = df.month.map(lambda v: _label(pd.Timestamp(v).date()))
    return {r["month"]: r for r in df.to_dict("records")}


def _satisfaction(ws: Workspace, spans: list[tuple[date, date]], rows: list[dict[str, Any]]
                  ) -> dict[str, Any]:
    eng = ws.engine
    s = eng.table("surveys")
    s = _by_month(s.filter(_window(s.survey_time, spans)), s.survey_time)
    nps, csat = s.kind == "nps", s.kind == "csat"
    aggs = {"nps_answers": nps.cast("int64").sum(),
            "promoters": (nps & (s.score >= 9)).cast("int64").sum(),
            "detractors": (nps & (s.score <= 6)).cast("int64").sum(),
            "csat_answers": csat.cast("int64").sum(),
            "csat": s.score.cast("float64").mean(where=csat)}
    by = _frame_by_label(s.group_by("month").aggregate(**aggs).to_pandas())
    tot = s.aggregate(**aggs).to_pandas().iloc[0].to_dict()
    t = eng.table("tickets")
    t = _by_month(t.filter(_window(t.resolved_time, spans)), t.resolved_time)
    sat = _frame_by_label(t.group_by("month").aggregate(
        ticket_satisfaction=t.satisfaction.cast("float64").mean()).to_pandas())
    sat_all = t.aggregate(v=t.satisfaction.cast("float64").mean()).to_pandas().v.iloc[0]
    for row in rows:
        r = by.get(row["month"], {})
        n = int(r.get("nps_answers") or 0)
        row.update(nps_answers=n,
                   nps=100.0 * (r["promoters"] - r["detractors"]) / n if n else None,
                   csat_answers=int(r.get("csat_answers") or 0),
                   csat=r.get("csat") if r.get("csat_answers") else None,
                   ticket_satisfaction=sat.get(row["month"], {}).get("ticket_satisfaction"))
    n = int(tot.get("nps_answers") or 0)
    return {"nps": 100.0 * (tot["promoters"] - tot["detractors"]) / n if n else None,
            "nps_answers": n, "csat": tot.get("csat") if tot.get("csat_answers") else None,
            "csat_answers": int(tot.get("csat_answers") or 0), "ticket_satisfaction": sat_all}


def _complaints(ws: Workspace, spans: list[tuple[date, date]], rows: list[dict[str, Any]]
                ) -> dict[str, Any]:
    t = ws.engine.table("tickets")
    t = t.filter(t.kind == "complaint")
    done = _by_month(t.filter(_window(t.resolved_time, spans)), t.resolved_time)
    hours = (done.resolved_time.epoch_seconds() - done.opened_time.epoch_seconds()) / 3600.0
    done = done.mutate(hours=hours.cast("float64"))
    res = _frame_by_label(done.group_by("month").aggregate(
        complaints_resolved=done.count(), resolution_hours_median=done.hours.median())
        .to_pandas())
    opened = _by_month(t.filter(_window(t.opened_time, spans)), t.opened_time)
    opn = _frame_by_label(opened.group_by("month").aggregate(complaints_opened=opened.count())
                          .to_pandas())
    for row in rows:
        r = res.get(row["month"], {})
        row.update(complaints_opened=int(opn.get(row["month"], {}).get("complaints_opened", 0)),
                   complaints_resolved=int(r.get("complaints_resolved", 0)),
                   resolution_hours_median=r.get("resolution_hours_median"))
    tot = done.aggregate(n=done.count(), med=done.hours.median()).to_pandas().iloc[0]
    return {"resolved": int(tot.n), "resolution_hours_median": tot.med,
            "opened": int(opened.count().to_pyarrow().as_py())}


# -- tasks and campaigns --------------------------------------------------------------------


def local_day(t: datetime, tz: str | None = None) -> date:
    """The business day, in time zone ``tz`` (default: this machine's), of an app-store time
    (UTC; SQLite returns it without a zone).

    >>> local_day(datetime(2025, 3, 31, 17, 0), "Asia/Shanghai")
    datetime.date(2025, 4, 1)
    """
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return (t.astimezone(ZoneInfo(tz)) if tz else t.astimezone()).date()


def _tasks(ws: Workspace, spans: list[tuple[date, date]], rows: list[dict[str, Any]]
           ) -> dict[str, Any]:
    from sqlalchemy import select

    from kehu.store.models import Task

    tz = ws.settings.company.timezone
    with ws.store.session() as s:
        got = s.execute(select(Task.due_date, Task.status, Task.completed_at).where(
            Task.due_date >= spans[0][0], Task.due_date <= spans[-1][1],
            Task.status.not_in(("cancelled", "dismissed")))).all()
    due: dict[str, int] = {}
    on_time: dict[str, int] = {}
    for d, status, done_at in got:
        if d is None:
            continue
        key = _label(d)
        due[key] = due.get(key, 0) + 1
        if status == "done" and done_at is not None and local_day(done_at, tz) <= d:
            on_time[key] = on_time.get(key, 0) + 1
    for row in rows:
        n, k = due.get(row["month"], 0), on_time.get(row["month"], 0)
        row.update(tasks_due=n, tasks_on_time=k, tasks_on_time_share=_ratio(k, n))
    n, k = sum(due.values()), sum(on_time.values())
    return {"due": n, "on_time": k, "share": _ratio(k, n)}


def _campaigns(ws: Workspace, spans: list[tuple[date, date]], rows: list[dict[str, Any]],
               results: CampaignResults | None) -> dict[str, Any]:
    keys = ("campaigns", "campaign_incremental_margin", "campaign_cost", "campaign_roi")
    if results is None:
        for row in rows:
            row.update(dict.fromkeys(keys))
        return {"campaigns": None, "incremental_margin": None, "cost": None, "roi": None,
                "reason": _("Campaign measurement is not available here, so the incremental "
                            "margin and ROI of campaigns are not reported.")}
    by: dict[str, list[dict[str, Any]]] = {row["month"]: [] for row in rows}
    for i, r in enumerate(results(ws, spans[0][0], spans[-1][1])):
        start: Any = r.get("start_date")
        if isinstance(start, str):
            try:
                start = date.fromisoformat(start[:10])
            except ValueError:
                start = None
        if isinstance(start, datetime):
            start = start.date()
        if not isinstance(start, date):
            raise KehuInputError(_("Campaign result {i} ({id}) has no start_date (a date). Got "
                                   "{v!r} instead.").format(i=i, id=r.get("campaign_id"),
                                                            v=r.get("start_date")))
        if _label(start) in by and start <= spans[-1][1]:
            by[_label(start)].append(r)

    def totals(items: list[dict[str, Any]]) -> tuple[int, float | None, float | None,
                                                     float | None]:
        m = [float(x["incremental_margin"]) for x in items
             if x.get("incremental_margin") is not None]
        c = [float(x["cost"]) for x in items if x.get("cost") is not None]
        both = [x for x in items if x.get("incremental_margin") is not None
                and x.get("cost") is not None]
        cost_both = sum(float(x["cost"]) for x in both)
        roi = (sum(float(x["incremental_margin"]) for x in both) - cost_both) / cost_both \
            if cost_both > 0 else None
        return len(items), sum(m) if m else None, sum(c) if c else None, roi

    for row in rows:
        row.update(zip(keys, totals(by[row["month"]]), strict=True))
    n, m, c, roi = totals([x for v in by.values() for x in v])
    return {"campaigns": n, "incremental_margin": m, "cost": c, "roi": roi, "reason": None}
