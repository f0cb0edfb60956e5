"""Satisfaction and loyalty (A8): NPS and CSAT by dimension, complaints and resolution time,
a per-customer loyalty index, and the complaint categories that move NPS — Ibis expressions.

Definitions:

- dimensions: the customer's tier, RFM class and lifecycle stage (latest run), region, the
  channel they joined through, and the survey month;
- NPS = % promoters (score 9–10) − % detractors (0–6) of NPS answers (kind ``nps``);
- CSAT = mean score of CSAT answers (kind ``csat``, 1–5) and of ticket satisfaction ratings;
  ``csat_satisfied`` = share of 4–5;
- resolution time = hours from opened to resolved (resolved tickets);
- loyalty index (0–100) = mean of the components a customer has: repeat purchases
  (min(repeat/5, 1)), tenure (min(days/730, 1)), frequency trend (rising 1, stable 0.5,
  falling 0) and, when answered, their latest NPS score / 10;
- NPS drivers: for each complaint category, the mean NPS score of answers given within 180 days
  after a complaint of that category, against answers with no complaint in those 180 days.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Any

import ibis
from ibis.expr.types import Table

if TYPE_CHECKING:
    from kehu.warehouse import Engine

SURVEY_DIMENSIONS = ("tier", "rfm_class", "lifecycle_stage", "region", "month", "channel")


def _scored_surveys(engine: Engine) -> Table:
    """Surveys with the customer's dimensions from the latest run and the profile."""
    from kehu.analytics.run import SCORES_TABLE

    s = engine.table("surveys")
    cust = engine.table("customers").select("customer_id", "region",
                                            channel="signup_channel")
    j = s.left_join(cust, "customer_id").drop("customer_id_right")
    if engine.warehouse.exists(SCORES_TABLE):
        sc = engine.table(SCORES_TABLE)
        last = sc.aggregate(r=sc.run_id.max()).r.as_scalar()
        sc = sc.filter(sc.run_id == last).select("customer_id", "tier", "rfm_class",
                                                 "lifecycle_stage")
        j = j.left_join(sc, "customer_id").drop("customer_id_right")
    else:
        j = j.mutate(tier=ibis.null("string"), rfm_class=ibis.null("string"),
                     lifecycle_stage=ibis.null("string"))
    return j.mutate(month=j.survey_time.strftime("%Y-%m"))


def nps_csat(engine: Engine, by: str | None = None) -> Table:
    """NPS and CSAT overall or by one of :data:`SURVEY_DIMENSIONS`."""
    if by is not None and by not in SURVEY_DIMENSIONS:
        from kehu.errors import KehuInputError
        from kehu.i18n import _

        raise KehuInputError(_("Unknown dimension(s) {d}. Dimensions: {all}.").format(
            d=by, all=", ".join(SURVEY_DIMENSIONS)))
    s = _scored_surveys(engine)
    nps = s.kind == "nps"
    csat = s.kind == "csat"
    aggs: dict[str, Any] = {
        "nps_answers": nps.cast("int64").sum(),
        "promoters": (nps & (s.score >= 9)).cast("int64").sum(),
        "detractors": (nps & (s.score <= 6)).cast("int64").sum(),
        "csat_answers": csat.cast("int64").sum(),
        "csat_mean": s.score.mean(where=csat),
        "csat_satisfied": (csat & (s.score >= 4)).cast("int64").sum(),
    }
    g = s.group_by(s[by].cast("string").name(by)).aggregate(**aggs) if by else s.aggregate(
        **aggs)
    g = g.mutate(
        nps=ibis.cases((g.nps_answers > 0,
                        100.0 * (g.promoters - g.detractors) / g.nps_answers),
                       else_=ibis.null("float64")),
        csat_satisfied_share=ibis.cases((g.csat_answers > 0, g.csat_satisfied / g.csat_answers),
                                        else_=ibis.null("float64")))
    return g.order_by(by) if by else g


def complaints(engine: Engine, start: date | None = None, end: date | None = None) -> Table:
    """Per ticket category: tickets, complaints, resolved share, median and mean resolution
    hours, mean satisfaction rating."""
    t = engine.table("tickets")
    if start:
        t = t.filter(t.opened_time.cast("date") >= ibis.literal(start))
    if end:
        t = t.filter(t.opened_time.cast("date") <= ibis.literal(end))
    hours = (t.resolved_time.epoch_seconds() - t.opened_time.epoch_seconds()) / 3600.0
    g = t.group_by(category=t.category.fill_null("-")).aggregate(
        tickets=t.count(), complaints=(t.kind == "complaint").cast("int64").sum(),
        resolved=t.resolved_time.notnull().cast("int64").sum(),
        median_hours=hours.median(), mean_hours=hours.mean(),
        satisfaction=t.satisfaction.mean())
    return g.mutate(resolved_share=g.resolved / g.tickets).order_by(ibis.desc("tickets"))


def loyalty_index(engine: Engine, scores: Table) -> Table:
    """``customer_id, loyalty_index`` from an :func:`~kehu.analytics.rfm.rfm` table and the
    latest NPS answer of each customer."""
    s = engine.table("surveys")
    s = s.filter(s.kind == "nps")
    w = ibis.window(group_by=s.customer_id, order_by=ibis.desc(s.survey_time))
    last = s.mutate(rn=ibis.row_number().over(w))
    last = last.filter(last.rn == 0).select("customer_id", nps_score="score")
    j = scores.left_join(last, "customer_id").drop("customer_id_right")
    rep = ibis.least(j.repeat_purchases / 5.0, 1.0)
    ten = ibis.least(j.tenure_days / 730.0, 1.0)
    trend = ibis.cases((j.trend == "rising", 1.0), (j.trend == "falling", 0.0), else_=0.5)
    nps = j.nps_score / 10.0
    total = rep + ten + trend + nps.fill_null(0.0)
    n = 3.0 + j.nps_score.notnull().cast("float64")
    return j.select("customer_id", loyalty_index=100.0 * total / n)


def nps_drivers(engine: Engine, window_days: int = 180) -> Table:
    """Mean NPS score after a complaint of each category vs after no complaint."""
    s = engine.table("surveys")
    s = s.filter(s.kind == "nps").select("customer_id", "survey_time", "score",
                                         "survey_response_id")
    t = engine.table("tickets")
    t = t.filter(t.kind == "complaint").select("customer_id", "opened_time",
                                               category=t.category.fill_null("-"))
    j = s.join(t, "customer_id")
    j = j.filter((j.opened_time <= j.survey_time)
                 & (j.opened_time > j.survey_time - ibis.interval(days=window_days)))
    hit = j.select("survey_response_id", "category", "score").distinct()
    by_cat = hit.group_by("category").aggregate(answers=hit.count(), mean_score=hit.score.mean())
    clean = s.filter(~s.survey_response_id.isin(hit.survey_response_id))
    base = clean.aggregate(base_answers=clean.count(), base_score=clean.score.mean())
    out = by_cat.cross_join(base)
    return out.mutate(difference=out.mean_score - out.base_score).order_by("difference")
