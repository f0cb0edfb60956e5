"""Profitability per customer (赢利性) and the value decomposition (historical / current /
potential), as Ibis expressions.

Profit over a window up to the as-of date::

    revenue        = Σ amount (amounts are what was charged, after discounts)
    product cost   = Σ cost
    service cost   = tickets × cost per ticket kind (complaint / service request)
    marketing cost = campaign contacts (treatment) × the campaign's cost per contact
    profit         = revenue − product cost − service cost − marketing cost

Discounts are reported (what was given away) but not subtracted again. A customer is
unprofitable when profit < 0; ``main_cost`` names the largest cost.
"""

from __future__ import annotations

from datetime import date, timedelta

import ibis
from ibis.expr.types import Table
from pydantic import BaseModel, Field


class CostRules(BaseModel):
    complaint_cost: float = Field(50.0, ge=0, description="Cost of handling one complaint.")
    service_request_cost: float = Field(20.0, ge=0, description="Cost of one service request.")
    other_ticket_cost: float = Field(20.0, ge=0)
    window_days: int | None = Field(None, ge=1, description="None: all history to the date.")


def _since(as_of: date, rules: CostRules) -> date | None:
    return as_of - timedelta(days=rules.window_days) if rules.window_days else None


def _in_window(col: ibis.Value, as_of: date, since: date | None) -> ibis.Value:
    day = col.cast("date")
    cond = day <= ibis.literal(as_of)
    if since is not None:
        cond = cond & (day > ibis.literal(since))
    return cond


def profitability(transactions: Table, tickets: Table, contacts: Table, campaigns: Table,
                  customers: Table, as_of: date, rules: CostRules | None = None) -> Table:
    """Per customer: revenue, product_cost, discounts, service_cost, marketing_cost, profit,
    margin_rate, unprofitable, main_cost."""
    rules = rules or CostRules()
    since = _since(as_of, rules)
    t = transactions.filter(_in_window(transactions.transaction_time, as_of, since))
    rev = t.group_by("customer_id").aggregate(
        revenue=t.amount.sum(), product_cost=t.cost.fill_null(0).sum(),
        discounts=t.discount.fill_null(0).sum())
    k = tickets.filter(_in_window(tickets.opened_time, as_of, since))
    per_ticket = ibis.cases((k.kind == "complaint", rules.complaint_cost),
                            (k.kind == "service_request", rules.service_request_cost),
                            else_=rules.other_ticket_cost)
    svc = k.group_by("customer_id").aggregate(service_cost=per_ticket.sum(),
                                              tickets=k.count())
    c = contacts.filter(_in_window(contacts.contact_time, as_of, since)
                        & (contacts.group == "treatment"))
    cj = c.left_join(campaigns.select("campaign_id", "cost_per_contact"), "campaign_id")
    mkt = cj.group_by("customer_id").aggregate(
        marketing_cost=cj.cost_per_contact.fill_null(0).sum(), contacts=cj.count())
    base = customers.select("customer_id")
    j = (base.left_join(rev, "customer_id").left_join(svc, "customer_id")
         .left_join(mkt, "customer_id"))
    j = j.select(
        base.customer_id,
        revenue=j.revenue.fill_null(0.0), product_cost=j.product_cost.fill_null(0.0),
        discounts=j.discounts.fill_null(0.0), service_cost=j.service_cost.fill_null(0.0),
        marketing_cost=j.marketing_cost.fill_null(0.0),
        tickets=j.tickets.fill_null(0), contacts=j.contacts.fill_null(0))
    j = j.mutate(profit=j.revenue - j.product_cost - j.service_cost - j.marketing_cost)
    return j.mutate(
        margin_rate=ibis.cases((j.revenue > 0, j.profit / j.revenue),
                               else_=ibis.null("float64")),
        unprofitable=j.profit < 0,
        main_cost=ibis.cases(
            ((j.product_cost >= j.service_cost) & (j.product_cost >= j.marketing_cost)
             & (j.product_cost > 0), "product"),
            ((j.service_cost >= j.marketing_cost) & (j.service_cost > 0), "service"),
            (j.marketing_cost > 0, "marketing"), else_=ibis.null("string")))


def value_decomposition(profit: Table, clv: Table, customers: Table, trailing: Table,
                        as_of: date, cross_sell: Table | None = None) -> Table:
    """Historical value (profit realised to date), current value (CLV: expected future margin
    if behaviour stays as it is) and potential value — the value reachable by cross-sell and
    up-sell:

    - with ``cross_sell`` (``customer_id, potential_value``: the expected margin of the
      customer's next best offers over the next 12 months, from the propensity model in
      :mod:`kehu.models.crosssell`), that value, 0 for customers without offers;
    - otherwise the gap between the customer's trailing-12-month margin and the median of
      their peers (same region and tenure band: under 1 year, 1–3 years, 3 years and more),
      when positive.

    ``potential_basis`` says which (``cross_sell`` or ``peer_gap``). ``clv`` has
    ``customer_id, clv``; ``trailing`` has ``customer_id, margin`` (12 months); ``customers``
    the profile with ``region`` and ``signup_date``.
    """
    c = customers.select("customer_id", "region", "signup_date")
    j = (c.left_join(profit.select("customer_id", historical_value="profit"), "customer_id")
         .left_join(clv.select("customer_id", current_value="clv"), "customer_id")
         .left_join(trailing.select("customer_id", margin_12m="margin"), "customer_id"))
    tenure_years = ibis.literal(as_of).delta(j.signup_date, unit="day") / 365.0
    band = ibis.cases((tenure_years < 1, "<1y"), (tenure_years < 3, "1-3y"),
                      (j.signup_date.notnull(), "3y+"), else_="unknown")
    j = j.select(c.customer_id, region=j.region.fill_null("unknown"), tenure_band=band,
                 historical_value=j.historical_value.fill_null(0.0),
                 current_value=j.current_value.fill_null(0.0),
                 margin_12m=j.margin_12m.fill_null(0.0))
    if cross_sell is None:
        peer = j.margin_12m.median().over(group_by=[j.region, j.tenure_band])
        j = j.mutate(potential_value=ibis.greatest(peer - j.margin_12m, 0.0),
                     potential_basis=ibis.literal("peer_gap"))
    else:
        x = cross_sell.select("customer_id", xs="potential_value")
        k = j.left_join(x, "customer_id")
        j = k.select(*[k[c] for c in j.columns],
                     potential_value=k.xs.fill_null(0.0).cast("float64"),
                     potential_basis=ibis.literal("cross_sell"))
    return j.mutate(total_value=j.historical_value + j.current_value + j.potential_value)
