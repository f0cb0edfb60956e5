"""Forecast (预测): expected purchases, purchasing customers and revenue per month for the next
months, from the fitted BG/NBD and Gamma-Gamma models, overall or by a group (tier, RFM class,
lifecycle stage), with approximate 95 % intervals.

For customer *i* and month *m* (30-day months after the as-of date):

- purchases  E[P_im] = E[X_i(30m)] − E[X_i(30(m−1))]   (BG/NBD, conditional on the history);
- purchasing customers: Σ_i (1 − exp(−E[P_im])), treating a customer's purchases within a
  month as Poisson;
- revenue = E[P_im] × E[spend_i] (Gamma-Gamma).

Intervals treat purchases as independent Poisson counts (variance = mean) and revenue's
variance as Σ E[P_im]·E[spend_i]²: they reflect the randomness of purchases, not the
uncertainty of the parameters, and are labelled approximate.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

import ibis
import numpy as np
import pandas as pd

from kehu.analytics import clv_scores
from kehu.analytics.clv_scores import FittedClv
from kehu.analytics.summary import customer_summary
from kehu.errors import KehuInputError
from kehu.i18n import _

if TYPE_CHECKING:
    from ibis.expr.types import Table

    from kehu.warehouse import Engine

GROUPS = ("tier", "rfm_class", "lifecycle_stage", "segment")

__all__ = ["GROUPS", "FittedClv", "forecast"]


def forecast(engine: Engine, as_of: date, months: int = 12, by: str | None = None,
             fitted: FittedClv | None = None) -> pd.DataFrame:
    """One row per month (and group): purchases, purchasing customers, revenue, with
    ``*_low`` / ``*_high`` 95 % bounds.

    Per-customer expectations are computed where the data lives
    (:func:`kehu.analytics.clv_scores.monthly`) and summed per group by the engine; only the
    sums reach this process."""
    from kehu.analytics.run import SCORES_TABLE

    if by is not None and by not in GROUPS:
        raise KehuInputError(_("Unknown dimension(s) {d}. Dimensions: {all}.").format(
            d=by, all=", ".join(GROUPS)))
    if months < 1:
        raise KehuInputError(_("The '{name}' parameter must be an int >= 1. Got {v} instead.")
                             .format(name="months", v=months))
    if fitted is None:
        tx = engine.table("transactions")
        purchases = tx.filter(tx.kind.isnull() | (tx.kind != "refund"))
        summary = engine.materialize(customer_summary(purchases, as_of, "D"))
        fitted = clv_scores.fit(engine, summary)
    per = clv_scores.monthly(engine, fitted, months)
    if by == "segment":
        per = per.join(_segment_members(engine), "customer_id")
        key: Any = per.segment
    elif by is not None:
        if not engine.warehouse.exists(SCORES_TABLE):
            raise KehuInputError(_("Grouping by {by} needs the scores of an analysis run: run "
                                   "'kehu run' first.").format(by=by))
        sc = engine.table(SCORES_TABLE)
        last = sc.aggregate(r=sc.run_id.max()).r.as_scalar()
        g = sc.filter(sc.run_id == last).select("customer_id", grp=sc[by].cast("string"))
        per = per.left_join(g, "customer_id")
        key = per.grp.fill_null("-")
    else:
        key = ibis.literal("all")
    aggs: dict[str, Any] = {}
    for m in range(1, months + 1):
        p = per[f"p{m}"]
        buy = 1.0 - (-p).exp()
        aggs.update({f"p{m}": p.sum(), f"b{m}": buy.sum(), f"r{m}": (p * per.spend).sum(),
                     f"vr{m}": (p * per.spend * per.spend).sum(),
                     f"vb{m}": (buy * (1.0 - buy)).sum()})
    sums = engine.execute_arrow(per.group_by(g=key).aggregate(**aggs).order_by("g")) \
        .to_pylist()
    rows = []
    for m in range(1, months + 1):
        start = as_of + timedelta(days=30 * (m - 1) + 1)
        for row in sums:
            mean_p, mean_b, mean_r = (float(row[f"{c}{m}"] or 0.0) for c in ("p", "b", "r"))
            sd_p = np.sqrt(mean_p)
            sd_b = np.sqrt(float(row[f"vb{m}"] or 0.0))
            sd_r = np.sqrt(float(row[f"vr{m}"] or 0.0))
            rows.append({
                "month": m, "from": start, "to": as_of + timedelta(days=30 * m),
                **({by: row["g"]} if by else {}),
                "purchases": mean_p, "purchases_low": max(0.0, mean_p - 1.96 * sd_p),
                "purchases_high": mean_p + 1.96 * sd_p,
                "purchasing_customers": mean_b,
                "purchasing_customers_low": max(0.0, mean_b - 1.96 * sd_b),
                "purchasing_customers_high": mean_b + 1.96 * sd_b,
                "revenue": mean_r, "revenue_low": max(0.0, mean_r - 1.96 * sd_r),
                "revenue_high": mean_r + 1.96 * sd_r,
            })
    return pd.DataFrame(rows)


def _segment_members(engine: Engine) -> Table:
    """(segment, customer_id) of every segment in its latest snapshot (segments may
    overlap)."""
    if not engine.warehouse.exists("segment_members"):
        raise KehuInputError(_("Grouping by {by} needs the scores of an analysis run: run "
                               "'kehu run' first.").format(by="segment"))
    m = engine.table("segment_members")
    latest = m.group_by("segment").aggregate(at=m.snapshot_at.max())
    return m.join(latest, [m.segment == latest.segment, m.snapshot_at == latest.at]).select(
        m.segment, m.customer_id).distinct()
