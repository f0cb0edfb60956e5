"""Churn in aggregate: churn rate by any customer dimension or product, the reasons,
destinations (which competitor) and kinds of recorded churn, and the early-warning list of
high-value customers whose risk jumped or whose spending is falling.
"""

from __future__ import annotations

import json
from datetime import date
from typing import TYPE_CHECKING, Any

import ibis
import pandas as pd
from ibis.expr.types import Table

from kehu.errors import KehuInputError
from kehu.i18n import _
from kehu.models.churn.definition import ChurnDefinition, labels

if TYPE_CHECKING:
    from kehu.warehouse import Engine

SCORE_DIMS = ("tier", "rfm_class", "lifecycle_stage")
PROFILE_DIMS = ("region", "city", "account_manager_id", "customer_type", "gender")
RATE_DIMS = (*SCORE_DIMS, *PROFILE_DIMS, "product_id", "segment")


def churn_rates(engine: Engine, start: date, end: date, by: str,
                definition: ChurnDefinition | None = None) -> Table:
    """Customers at risk at ``start`` (the definition's population), how many churned in
    (start, end], and the rate, by ``by``: a score dimension (from the latest run), a
    profile column, ``product_id`` (products held under a contract at ``start``; a
    customer with two products counts in both) or ``segment`` (the latest snapshot of every
    saved segment; segments may overlap)."""
    from kehu.analytics.run import SCORES_TABLE

    if by not in RATE_DIMS:
        raise KehuInputError(_("Unknown dimension(s) {d}. Dimensions: {all}.").format(
            d=by, all=", ".join(RATE_DIMS)))
    if end <= start:
        raise KehuInputError(_("The end date {end} must be after the start date {start}.")
                             .format(end=end, start=start))
    d = (definition or ChurnDefinition()).model_copy(update={"window_days": (end - start).days})
    lab = labels(engine, start, d)
    if by in SCORE_DIMS:
        if not engine.warehouse.exists(SCORES_TABLE):
            raise KehuInputError(_("Grouping by {by} needs the scores of an analysis run: run "
                                   "'kehu run' first.").format(by=by))
        s = engine.table(SCORES_TABLE)
        last = s.aggregate(r=s.run_id.max()).r.as_scalar()
        g = s.filter(s.run_id == last).select("customer_id", by)
    elif by == "segment":
        from kehu.segments.service import MEMBERS_TABLE

        if not engine.warehouse.exists(MEMBERS_TABLE):
            raise KehuInputError(_("Grouping by {by} needs the scores of an analysis run: run "
                                   "'kehu run' first.").format(by="segment"))
        m = engine.table(MEMBERS_TABLE)
        latest = m.group_by("segment").aggregate(at=m.snapshot_at.max())
        g = m.join(latest, [m.segment == latest.segment, m.snapshot_at == latest.at]).select(
            m.customer_id, m.segment).distinct()
    elif by == "product_id":
        k = engine.table("contracts")
        lit = ibis.literal(start)
        g = k.filter((k.start_date <= lit) & (k.end_date.isnull() | (k.end_date > lit))) \
            .select("customer_id", "product_id").distinct()
    else:
        g = engine.table("customers").select("customer_id", by)
    j = lab.join(g, "customer_id")
    out = j.group_by(j[by].cast("string").fill_null("-").name(by)).aggregate(
        customers=j.count(), churned=j.churned.sum())
    return out.mutate(rate=out.churned / out.customers).order_by(ibis.desc("rate"))


def churn_composition(engine: Engine, start: date | None = None, end: date | None = None,
                      ) -> dict[str, pd.DataFrame]:
    """Recorded churn events by reason, destination (competitor) and kind: count and share."""
    ev = engine.table("churn_events")
    if start is not None:
        ev = ev.filter(ev.churn_date > ibis.literal(start))
    if end is not None:
        ev = ev.filter(ev.churn_date <= ibis.literal(end))
    out = {}
    for col in ("reason", "destination", "kind"):
        g = ev.group_by(ev[col].fill_null("-").name(col)).aggregate(events=ev.count())
        df = g.order_by(ibis.desc("events")).to_pandas()
        total = df.events.sum()
        df["share"] = df.events / total if total else 0.0
        out[col] = df
    return out


def early_warnings(engine: Engine, min_risk: float = 0.3, jump: float = 0.15,
                   spend_drop: float = -0.3, value_tiers: tuple[str, ...] = ("diamond", "gold"),
                   top_value_share: float = 0.2, limit: int | None = None) -> pd.DataFrame:
    """High-value customers (a top tier, or the top ``top_value_share`` by CLV) from the latest
    run whose churn risk is at least ``min_risk`` and rose by ``jump`` since the previous run,
    or whose spending fell by at least ``-spend_drop`` — with why, riskiest first."""
    from kehu.analytics.run import SCORES_TABLE

    if not engine.warehouse.exists(SCORES_TABLE):
        raise KehuInputError(_("Grouping by {by} needs the scores of an analysis run: run "
                               "'kehu run' first.").format(by="churn_risk"))
    s = engine.table(SCORES_TABLE)
    if "churn_risk" not in s.columns:
        return pd.DataFrame(columns=["customer_id", "tier", "clv", "churn_risk",
                                     "previous_risk", "risk_change", "spend_trend_90d",
                                     "signals", "churn_reasons"])
    runs = s.select("run_id").distinct().order_by(ibis.desc("run_id")).limit(2).to_pandas()
    ids = list(runs.run_id)
    cols = ["customer_id", "tier", "clv", "churn_risk", "churn_reasons",
            *(["spend_trend_90d"] if "spend_trend_90d" in s.columns else [])]
    cur = s.filter(s.run_id == ids[0]).select(*cols).to_pandas()
    if "spend_trend_90d" not in cur:
        cur["spend_trend_90d"] = float("nan")
    if len(ids) > 1:
        prev = s.filter(s.run_id == ids[1]).select("customer_id", "churn_risk").to_pandas()
        cur = cur.merge(prev.rename(columns={"churn_risk": "previous_risk"}), how="left",
                        on="customer_id")
    else:
        cur["previous_risk"] = float("nan")
    clv_cut = cur.clv.quantile(1 - top_value_share) if cur.clv.notna().any() else float("inf")
    valuable = cur.tier.isin(value_tiers) | (cur.clv >= clv_cut)
    cur["risk_change"] = cur.churn_risk - cur.previous_risk
    jumped = (cur.churn_risk >= min_risk) & (cur.risk_change >= jump)
    falling = cur.spend_trend_90d <= spend_drop
    risky = cur.churn_risk >= min_risk
    hit = valuable & (jumped | falling | risky)
    out = cur[hit].copy()
    out["signals"] = [
        json.dumps([name for name, flag in (("risk_jump", j), ("spend_falling", f),
                                            ("high_risk", r)) if flag])
        for j, f, r in zip(jumped[hit], falling[hit], risky[hit], strict=True)]
    out = out.sort_values("churn_risk", ascending=False)
    cols_out = ["customer_id", "tier", "clv", "churn_risk", "previous_risk", "risk_change",
                "spend_trend_90d", "signals", "churn_reasons"]
    out = out[cols_out].reset_index(drop=True)
    return out.head(limit) if limit else out


def reason_counts(engine: Engine, top: int = 3) -> pd.DataFrame:
    """How often each feature is among the top ``top`` reasons of the latest run's scores."""
    from kehu.analytics.run import SCORES_TABLE

    s = engine.table(SCORES_TABLE)
    last = s.aggregate(r=s.run_id.max()).r.as_scalar()
    rows = s.filter((s.run_id == last) & s.churn_reasons.notnull()).select(
        "churn_reasons").to_pandas()
    counts: dict[str, int] = {}
    for text in rows.churn_reasons:
        for r in json.loads(text)[:top]:
            counts[r["feature"]] = counts.get(r["feature"], 0) + 1
    df = pd.DataFrame(sorted(counts.items(), key=lambda kv: -kv[1]),
                      columns=["feature", "customers"])
    return df


def as_records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """A frame as JSON-ready records (NaN -> None)."""
    return json.loads(df.to_json(orient="records", force_ascii=False, date_format="iso"))
