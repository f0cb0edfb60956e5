"""Value tiers on trailing-12-month spend or margin (fixed thresholds or percentiles), tier
changes between two dates, and the Pareto / ABC report — Ibis expressions.

A tier scheme is data::

    TierScheme(basis="spend", method="thresholds",
               tiers=[Tier(code="diamond", name_zh="钻石卡", name_en="Diamond", cut=20000),
                      Tier(code="gold", ..., cut=5000), Tier(code="silver", ..., cut=1000),
                      Tier(code="regular", ..., cut=0)])

With ``method="percentiles"`` each ``cut`` is a share of customers ranked by value: a cut of
0.99 puts the top 1 % in that tier. Customers without purchases in the window are ``regular``
(the last tier).
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Literal

import ibis
from ibis.expr.types import Table
from pydantic import BaseModel, ConfigDict, Field, model_validator

from kehu.i18n import _


class Tier(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(min_length=1, max_length=40)
    name_zh: str = Field(min_length=1, max_length=40)
    name_en: str = Field(min_length=1, max_length=40)
    cut: float = Field(ge=0)


class TierScheme(BaseModel):
    model_config = ConfigDict(extra="forbid")

    basis: Literal["spend", "margin"] = "spend"
    method: Literal["thresholds", "percentiles"] = "thresholds"
    window_days: int = Field(365, ge=1)
    tiers: list[Tier] = Field(default_factory=lambda: [
        Tier(code="diamond", name_zh="钻石卡", name_en="Diamond", cut=20_000),
        Tier(code="gold", name_zh="金卡", name_en="Gold", cut=5_000),
        Tier(code="silver", name_zh="银卡", name_en="Silver", cut=1_000),
        Tier(code="regular", name_zh="普通", name_en="Regular", cut=0),
    ])

    @model_validator(mode="after")
    def _ordered(self) -> TierScheme:
        if len(self.tiers) < 2:
            raise ValueError(_("tiers: give at least two tiers, best first, the last one "
                               "for everyone else"))
        codes = [t.code for t in self.tiers]
        twice = sorted({c for c in codes if codes.count(c) > 1})
        if twice:
            raise ValueError(_("tiers: each tier code must be unique; given more than once: "
                               "{codes}").format(codes=", ".join(twice)))
        cuts = [t.cut for t in self.tiers]
        if cuts != sorted(cuts, reverse=True) or len(set(cuts)) != len(cuts):
            raise ValueError(_("tiers.cut: tier cuts must be strictly decreasing, best tier "
                               "first; got {cuts}").format(cuts=", ".join(f"{c:g}" for c in cuts)))
        if self.method == "percentiles" and any(c > 1 for c in cuts):
            raise ValueError(_("tiers.cut: percentile cuts are shares between 0 and 1"))
        return self


def trailing_value(transactions: Table, customers: Table, as_of: date,
                   window_days: int = 365) -> Table:
    """Per customer (all customers): spend and margin in the ``window_days`` up to ``as_of``."""
    t = transactions
    day = t.transaction_time.cast("date")
    w = t.filter((day <= ibis.literal(as_of))
                 & (day > ibis.literal(as_of - timedelta(days=window_days))))
    v = w.group_by("customer_id").aggregate(
        spend=w.amount.sum(),
        margin=(w.amount - w.cost.fill_null(0)).sum())
    c = customers.select("customer_id")
    j = c.left_join(v, "customer_id")
    return j.select(customer_id=c.customer_id, spend=j.spend.fill_null(0.0),
                    margin=j.margin.fill_null(0.0))


def assign_tiers(values: Table, scheme: TierScheme | None = None) -> Table:
    """Add ``tier`` to a :func:`trailing_value` table."""
    scheme = scheme or TierScheme()
    v = values[scheme.basis]
    if scheme.method == "thresholds":
        branches = [(v >= t.cut, t.code) for t in scheme.tiers[:-1]]
    else:
        share = ibis.percent_rank().over(order_by=v)  # 0 for the lowest value
        branches = [((share >= t.cut) & (v > 0), t.code) for t in scheme.tiers[:-1]]
    return values.mutate(tier=ibis.cases(*branches, else_=scheme.tiers[-1].code))


def tiers_as_of(transactions: Table, customers: Table, as_of: date,
                scheme: TierScheme | None = None) -> Table:
    scheme = scheme or TierScheme()
    return assign_tiers(trailing_value(transactions, customers, as_of, scheme.window_days),
                        scheme)


def tier_changes(transactions: Table, customers: Table, start: date, end: date,
                 scheme: TierScheme | None = None) -> Table:
    """Per customer: tier at ``start`` and at ``end`` and the move (up, down, same)."""
    scheme = scheme or TierScheme()
    rank = {t.code: i for i, t in enumerate(scheme.tiers)}  # 0 = best
    a = tiers_as_of(transactions, customers, start, scheme).select("customer_id",
                                                                  tier_from="tier")
    b = tiers_as_of(transactions, customers, end, scheme).select("customer_id",
                                                                tier_to="tier")
    j = a.join(b, "customer_id")
    ra = ibis.cases(*[(j.tier_from == k, v) for k, v in rank.items()], else_=len(rank))
    rb = ibis.cases(*[(j.tier_to == k, v) for k, v in rank.items()], else_=len(rank))
    return j.mutate(move=ibis.cases((rb < ra, "up"), (rb > ra, "down"), else_="same"))


def transition_matrix(changes: Table) -> Table:
    """Counts of customers from each tier to each tier."""
    return changes.group_by(["tier_from", "tier_to"]).aggregate(customers=changes.count())


class ParetoReport(BaseModel):
    customers: int
    revenue: float
    margin: float
    top_share: dict[str, dict[str, float]]  # "1%" -> {"revenue": share, "margin": share}
    abc: dict[str, dict[str, float]]        # "A" -> {"customers": n, "revenue_share": s}


def pareto(values: Table, shares: tuple[float, ...] = (0.01, 0.05, 0.1, 0.2, 0.5)
           ) -> ParetoReport:
    """Share of revenue and margin held by the top x % of customers (ranked by revenue), and
    ABC classes: A = customers making the first 80 % of revenue, B = the next 15 %, C = rest."""
    v = values
    ranked = v.mutate(rank=ibis.row_number().over(order_by=[ibis.desc(v.spend),
                                                            v.customer_id]),
                      cum=v.spend.sum().over(order_by=[ibis.desc(v.spend), v.customer_id],
                                             rows=(None, 0)),
                      n=v.count().over(), total=v.spend.sum().over())
    ranked = ranked.mutate(abc=ibis.cases(
        (ranked.cum - ranked.spend < 0.80 * ranked.total, "A"),
        (ranked.cum - ranked.spend < 0.95 * ranked.total, "B"), else_="C"))
    aggs = {f"r{i}": ranked.spend.sum(where=ranked["rank"] < (ranked.n * s).ceil())
            for i, s in enumerate(shares)}
    aggs.update({f"m{i}": ranked.margin.sum(where=ranked["rank"] < (ranked.n * s).ceil())
                 for i, s in enumerate(shares)})
    row = ranked.aggregate(n=ranked.count(), rev=ranked.spend.sum(), mar=ranked.margin.sum(),
                           **aggs).to_pyarrow().to_pylist()[0]
    abc_rows = ranked.group_by("abc").aggregate(customers=ranked.count(),
                                                revenue=ranked.spend.sum()).to_pyarrow() \
        .to_pylist()
    rev, mar = row["rev"] or 0.0, row["mar"] or 0.0
    top = {f"{s:.0%}": {"revenue": (row[f"r{i}"] or 0.0) / rev if rev else 0.0,
                        "margin": (row[f"m{i}"] or 0.0) / mar if mar else 0.0}
           for i, s in enumerate(shares)}
    abc = {r["abc"]: {"customers": r["customers"],
                      "revenue_share": (r["revenue"] or 0.0) / rev if rev else 0.0}
           for r in abc_rows}
    return ParetoReport(customers=row["n"], revenue=rev, margin=mar, top_share=top, abc=abc)
