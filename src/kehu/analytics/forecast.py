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

from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from kehu.analytics.summary import customer_summary
from kehu.errors import KehuInputError
from kehu.i18n import _
from kehu.models.clv import BetaGeo, GammaGamma

if TYPE_CHECKING:
    from kehu.warehouse import Engine

GROUPS = ("tier", "rfm_class", "lifecycle_stage", "segment")


@dataclass(frozen=True)
class FittedClv:
    """Models already fitted on the customer summary as of the forecast date (the analysis
    run passes its own, so the forecast does not fit them again)."""

    summary: pd.DataFrame          # frequency, recency, T, monetary_value by customer_id
    bgnbd: BetaGeo
    gamma_gamma: GammaGamma


def forecast(engine: Engine, as_of: date, months: int = 12, by: str | None = None,
             fitted: FittedClv | None = None) -> pd.DataFrame:
    """One row per month (and group): purchases, purchasing customers, revenue, with
    ``*_low`` / ``*_high`` 95 % bounds."""
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
        s = customer_summary(purchases, as_of, "D").to_pandas().set_index("customer_id")
    else:
        s = fitted.summary
    x, tx_, t, mv = (s[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T",
                                                           "monetary_value"))
    if fitted is None:
        bg = BetaGeo().fit(x, tx_, t)
        keep = (x > 0) & (mv > 0)
        gg = GammaGamma().fit(x[keep], mv[keep])
    else:
        bg, gg = fitted.bgnbd, fitted.gamma_gamma
    spend = gg.expected_spend(x, mv)
    group = pd.Series("all", index=s.index)
    memberships: dict[str, np.ndarray] | None = None
    if by == "segment":
        memberships = _segment_masks(engine, s.index)
    elif by is not None:
        if not engine.warehouse.exists(SCORES_TABLE):
            raise KehuInputError(_("Grouping by {by} needs the scores of an analysis run: run "
                                   "'kehu run' first.").format(by=by))
        sc = engine.table(SCORES_TABLE)
        last = sc.aggregate(r=sc.run_id.max()).r.as_scalar()
        g = sc.filter(sc.run_id == last).select("customer_id", by).to_pandas() \
            .set_index("customer_id")[by]
        group = g.reindex(s.index).fillna("-")
    rows = []
    prev = np.zeros(len(s))
    for m in range(1, months + 1):
        cum = bg.expected_purchases(30.0 * m, x, tx_, t)
        p = np.clip(cum - prev, 0, None)
        prev = cum
        frame = pd.DataFrame({"g": group.to_numpy(), "p": p, "buy": 1 - np.exp(-p),
                              "rev": p * spend, "var_rev": p * spend ** 2})
        parts = ([(name, frame[mask]) for name, mask in memberships.items()]
                 if memberships is not None else list(frame.groupby("g")))
        for gname, part in parts:
            mean_p, mean_b, mean_r = part.p.sum(), part.buy.sum(), part.rev.sum()
            sd_p = np.sqrt(mean_p)
            sd_b = np.sqrt((part.buy * (1 - part.buy)).sum())
            sd_r = np.sqrt(part.var_rev.sum())
            start = as_of + timedelta(days=30 * (m - 1) + 1)
            rows.append({
                "month": m, "from": start, "to": as_of + timedelta(days=30 * m),
                **({by: gname} if by else {}),
                "purchases": mean_p, "purchases_low": max(0.0, mean_p - 1.96 * sd_p),
                "purchases_high": mean_p + 1.96 * sd_p,
                "purchasing_customers": mean_b,
                "purchasing_customers_low": max(0.0, mean_b - 1.96 * sd_b),
                "purchasing_customers_high": mean_b + 1.96 * sd_b,
                "revenue": mean_r, "revenue_low": max(0.0, mean_r - 1.96 * sd_r),
                "revenue_high": mean_r + 1.96 * sd_r,
            })
    return pd.DataFrame(rows)


def _segment_masks(engine: Engine, index: pd.Index) -> dict[str, np.ndarray]:
    """Members of each segment in its latest snapshot (segments may overlap)."""
    if not engine.warehouse.exists("segment_members"):
        raise KehuInputError(_("Grouping by {by} needs the scores of an analysis run: run "
                               "'kehu run' first.").format(by="segment"))
    m = engine.table("segment_members")
    latest = m.group_by("segment").aggregate(at=m.snapshot_at.max())
    cur = m.join(latest, [m.segment == latest.segment, m.snapshot_at == latest.at]).select(
        m.segment, m.customer_id).to_pandas()
    return {name: index.isin(set(g.customer_id)) for name, g in cur.groupby("segment")}
