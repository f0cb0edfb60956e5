"""Lifecycle stages as of a date, by configurable rules, and the transition matrix between
two dates — Ibis expressions.

Stages, first matching rule wins (the order is part of the rules):

1. ``prospect`` — a customer record without any purchase up to the date;
2. ``churned`` — a churn event on or before the date with no purchase after it, or no
   purchase for more than ``dormant_days``;
3. ``dormant`` — no purchase for more than ``active_days``;
4. ``won_back`` — a purchase within ``active_days`` that came after a gap of more than
   ``dormant_days`` (or after a churn event);
5. ``new`` — first purchase within ``new_days``;
6. ``growing`` / ``declining`` — active, with the RFM frequency trend rising / falling;
7. ``active`` — everyone else who bought within ``active_days``.
"""

from __future__ import annotations

from datetime import date, timedelta

import ibis
from ibis.expr.types import Table
from pydantic import BaseModel, ConfigDict, Field, model_validator

from kehu.analytics.rfm import rfm
from kehu.i18n import _

STAGES = ("prospect", "new", "active", "growing", "declining", "dormant", "churned", "won_back")


class LifecycleRules(BaseModel):
    model_config = ConfigDict(extra="forbid")

    new_days: int = Field(90, ge=1)
    active_days: int = Field(90, ge=1)
    dormant_days: int = Field(365, ge=1)
    trend_window_days: int = Field(180, ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> LifecycleRules:
        if self.dormant_days <= self.active_days:
            raise ValueError(_("dormant_days ({d}) must be greater than active_days ({a}): a "
                               "customer is dormant after active_days without a purchase "
                               "and churned after dormant_days").format(
                d=self.dormant_days, a=self.active_days))
        return self


def lifecycle(transactions: Table, customers: Table, churn_events: Table, as_of: date,
              rules: LifecycleRules | None = None) -> Table:
    """``customer_id, stage`` for every customer known on ``as_of`` (signed up by then, or
    with a purchase by then)."""
    rules = rules or LifecycleRules()
    d = ibis.literal(as_of)
    t = transactions
    t = t.filter((t.transaction_time.cast("date") <= d)
                 & (t.kind.isnull() | (t.kind != "refund")))
    days = t.select(customer_id=t.customer_id, day=t.transaction_time.cast("date")).distinct()
    w = ibis.window(group_by=days.customer_id, order_by=days.day)
    gaps = days.mutate(gap=days.day.delta(days.day.lag().over(w), unit="day"))
    active_start = ibis.literal(as_of - timedelta(days=rules.active_days))
    returns = gaps.filter((gaps.day > active_start) & (gaps.gap > rules.dormant_days))
    returned = returns.group_by("customer_id").aggregate(_returned=returns.count())
    ce = churn_events.filter(churn_events.churn_date <= d)
    last_churn = ce.group_by("customer_id").aggregate(_churn=ce.churn_date.max())
    scores = rfm(transactions, as_of, rules.trend_window_days).select(
        "customer_id", "recency_days", "tenure_days", "trend")
    c = customers.filter(customers.signup_date.isnull()
                         | (customers.signup_date <= d)).select("customer_id")
    c = c.union(scores.select("customer_id"), distinct=True)
    j = (c.left_join(scores, "customer_id")
         .left_join(returned, "customer_id")
         .left_join(last_churn, "customer_id"))
    j = j.select(c.customer_id, j.recency_days, j.tenure_days, j.trend, j._returned, j._churn)
    bought_after_churn = j._churn.notnull() & (j.recency_days.notnull()) & (
        d.delta(j._churn, unit="day") > j.recency_days)
    stage = ibis.cases(
        (j.recency_days.isnull(), "prospect"),
        (j._churn.notnull() & ~bought_after_churn, "churned"),
        (j.recency_days > rules.dormant_days, "churned"),
        (j.recency_days > rules.active_days, "dormant"),
        (j._returned.notnull() | bought_after_churn, "won_back"),
        (j.tenure_days <= rules.new_days, "new"),
        (j.trend == "rising", "growing"),
        (j.trend == "falling", "declining"),
        else_="active")
    return j.select("customer_id", stage=stage)


def transitions(transactions: Table, customers: Table, churn_events: Table, start: date,
                end: date, rules: LifecycleRules | None = None) -> Table:
    """Counts of customers moving from each stage at ``start`` to each stage at ``end``."""
    a = lifecycle(transactions, customers, churn_events, start, rules).rename(
        stage_from="stage")
    b = lifecycle(transactions, customers, churn_events, end, rules).rename(stage_to="stage")
    j = b.left_join(a, "customer_id")
    j = j.select(stage_from=j.stage_from.fill_null("not_yet_customer"), stage_to=j.stage_to)
    return j.group_by(["stage_from", "stage_to"]).aggregate(customers=j.count())
