"""RFM as of a date, quintile scores, the frequency trend, and the eight classic RFM classes
(重要价值客户 …), all as Ibis expressions.

Definitions (as of day ``d``, counting transactions on or before ``d`` that are not refunds):

- ``recency_days`` = d − last purchase day; ``tenure_days`` = d − first purchase day;
- ``frequency`` = distinct purchase days; ``repeat_purchases`` = frequency − 1;
- ``monetary_total`` = amount summed; ``monetary_avg`` = monetary_total / frequency;
- scores 1–5: customers ranked on the measure (ties share the lowest rank), score =
  1 + ⌊5 · rank / n⌋ — more recent, more frequent, higher spend score higher; ties always
  get the same score, so the result does not depend on row order;
- trend: purchase days in the last ``window`` days vs the ``window`` days before; ``rising``
  when the ratio ≥ 1.25, ``falling`` when ≤ 0.8 (no purchases in the earlier window and some
  now count as rising), else ``stable``.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Literal

import ibis
from ibis.expr.types import Table
from pydantic import BaseModel, Field

from kehu.i18n import _

Level = Literal["high", "low"]


class RfmClass(BaseModel):
    """One class: which side of the reference R, F and M fall on."""

    code: str
    name_zh: str
    name_en: str
    r: Level
    f: Level
    m: Level


class RfmClassScheme(BaseModel):
    """The eight classes and how "high" is decided (data, not branches in code)."""

    reference: Literal["mean", "median"] = "mean"
    monetary: Literal["monetary_total", "monetary_avg"] = "monetary_total"
    classes: list[RfmClass] = Field(default_factory=lambda: [
        RfmClass(code="important_value", name_zh="重要价值客户", name_en="Important value",
                 r="high", f="high", m="high"),
        RfmClass(code="important_development", name_zh="重要发展客户",
                 name_en="Important development", r="high", f="low", m="high"),
        RfmClass(code="important_retention", name_zh="重要保持客户",
                 name_en="Important retention", r="low", f="high", m="high"),
        RfmClass(code="important_winback", name_zh="重要挽留客户", name_en="Important win-back",
                 r="low", f="low", m="high"),
        RfmClass(code="general_value", name_zh="一般价值客户", name_en="General value",
                 r="high", f="high", m="low"),
        RfmClass(code="general_development", name_zh="一般发展客户",
                 name_en="General development", r="high", f="low", m="low"),
        RfmClass(code="general_retention", name_zh="一般保持客户", name_en="General retention",
                 r="low", f="high", m="low"),
        RfmClass(code="general_winback", name_zh="一般挽留客户", name_en="General win-back",
                 r="low", f="low", m="low"),
    ])

    def name(self, code: str, locale: str) -> str:
        for c in self.classes:
            if c.code == code:
                return c.name_zh if locale.startswith("zh") else c.name_en
        return code


def _day(t: Table) -> ibis.expr.types.DateValue:
    return t.transaction_time.cast("date")


def rfm(transactions: Table, as_of: date, trend_window_days: int = 180) -> Table:
    """Per customer: recency_days, frequency, repeat_purchases, monetary_total, monetary_avg,
    tenure_days, r_score, f_score, m_score, rfm_score, trend_ratio, trend."""
    d = ibis.literal(as_of)
    t = transactions
    t = t.filter((_day(t) <= d) & (t.kind.isnull() | (t.kind != "refund")))
    recent_start = ibis.literal(as_of - timedelta(days=trend_window_days))
    prior_start = ibis.literal(as_of - timedelta(days=2 * trend_window_days))
    days = t.group_by(customer_id=t.customer_id, day=_day(t)).aggregate(spend=t.amount.sum())
    per = days.group_by("customer_id").aggregate(
        first=days.day.min(), last=days.day.max(), frequency=days.count(),
        monetary_total=days.spend.sum(),
        recent=(days.day > recent_start).sum(),
        prior=((days.day > prior_start) & (days.day <= recent_start)).sum(),
    )
    per = per.mutate(
        recency_days=d.delta(per["last"], unit="day").cast("int64"),
        tenure_days=d.delta(per["first"], unit="day").cast("int64"),
        repeat_purchases=(per.frequency - 1).cast("int64"),
        monetary_avg=per.monetary_total / per.frequency,
        trend_ratio=ibis.cases((per.prior > 0, per.recent.cast("float64") / per.prior),
                               else_=ibis.null("float64")),
    )
    per = per.mutate(trend=ibis.cases(
        ((per.prior == 0) & (per.recent > 0), "rising"),
        (per.trend_ratio >= 1.25, "rising"),
        (per.trend_ratio <= 0.8, "falling"),
        else_="stable"))
    scores = _score(per, "recency_days", "r_score", descending=True)
    scores = _score(scores, "frequency", "f_score")
    scores = _score(scores, "monetary_total", "m_score")
    scores = scores.mutate(rfm_score=scores.r_score * 100 + scores.f_score * 10
                           + scores.m_score)
    return scores.select("customer_id", "recency_days", "frequency", "repeat_purchases",
                         "monetary_total", "monetary_avg", "tenure_days", "r_score", "f_score",
                         "m_score", "rfm_score", "trend_ratio", "trend")


def _score(t: Table, col: str, name: str, descending: bool = False) -> Table:
    """``t`` with ``name`` = 1 + ⌊5 · min-rank / n⌋ of ``col`` (ties share a score).

    The min-rank of a value is the number of customers before it, so it is computed on the
    distinct values with their counts (a running sum) and joined back: a window over the
    whole customer base would put every customer in one task on Spark, while recency and
    frequency have only hundreds of distinct values."""
    counts = t.group_by(_v=t[col]).aggregate(_c=t.count())
    order = ibis.desc(counts._v) if descending else counts._v
    running = counts._c.sum().over(ibis.window(order_by=order, rows=(None, 0)))
    n = counts._c.sum().over()
    counts = counts.select("_v", **{name: (1 + ((running - counts._c) * 5 / n).floor())
                                    .cast("int64")})
    j = t.join(counts, t[col] == counts._v)
    return j.drop("_v")


def rfm_classes(scores: Table, scheme: RfmClassScheme | None = None) -> Table:
    """Add ``rfm_class`` (a code of the scheme) to an :func:`rfm` table. Every customer gets
    exactly one class: the eight classes cover all high/low combinations."""
    scheme = scheme or RfmClassScheme()
    agg = "mean" if scheme.reference == "mean" else "median"
    m_col = scheme.monetary
    # the references as one aggregate row joined to every customer (a window over everyone
    # would be one task on Spark)
    refs = scores.aggregate(_r_ref=getattr(scores.recency_days, agg)(),
                            _f_ref=getattr(scores.frequency, agg)(),
                            _m_ref=getattr(scores[m_col], agg)())
    j = scores.cross_join(refs)
    flags = j.mutate(
        _r=ibis.cases((j.recency_days < j._r_ref, "high"), else_="low"),
        _f=ibis.cases((j.frequency > j._f_ref, "high"), else_="low"),
        _m=ibis.cases((j[m_col] > j._m_ref, "high"), else_="low"),
    ).drop("_r_ref", "_f_ref", "_m_ref")
    branches = [((flags._r == c.r) & (flags._f == c.f) & (flags._m == c.m), c.code)
                for c in scheme.classes]
    return flags.mutate(rfm_class=ibis.cases(*branches, else_=ibis.null("string"))).drop(
        "_r", "_f", "_m")


def class_summary(classified: Table) -> Table:
    """Customers, share, revenue and revenue share per class."""
    g = classified.group_by("rfm_class").aggregate(customers=classified.count(),
                                                   revenue=classified.monetary_total.sum())
    return g.mutate(customer_share=g.customers / g.customers.sum().over(),
                    revenue_share=g.revenue / g.revenue.sum().over()).order_by(
        ibis.desc("revenue"))


def trend_label(code: str) -> str:
    return {"rising": _("rising"), "falling": _("falling"), "stable": _("stable")}.get(code, code)
