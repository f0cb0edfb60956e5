"""Lead funnel (lead → prospect → customer): counts, conversion rates and days to convert, by
the month leads came in or by source — Ibis over the ``leads`` table."""

from __future__ import annotations

from typing import Literal

from ibis.expr.types import Table


def funnel(leads: Table, by: Literal["month", "source", "channel"] | None = None) -> Table:
    """Leads, prospects, customers, lost; prospect rate, customer rate (of leads), close rate
    (customers of prospects) and median days from lead to customer."""
    t = leads.mutate(month=leads.created_date.strftime("%Y-%m"),
                     source=leads.source.fill_null("-"), channel=leads.channel.fill_null("-"))
    days = t.converted_date.delta(t.created_date, unit="day")
    aggs = {
        "leads": t.count(),
        "prospects": (t.prospect_date.notnull() | t.converted_date.notnull())
        .cast("int64").sum(),
        "customers": t.converted_date.notnull().cast("int64").sum(),
        "lost": t.lost_date.notnull().cast("int64").sum(),
        "median_days_to_customer": days.median(),
    }
    g = t.group_by(by).aggregate(**aggs) if by else t.aggregate(**aggs)
    g = g.mutate(prospect_rate=g.prospects / g.leads, customer_rate=g.customers / g.leads,
                 close_rate=g.customers / g.prospects.nullif(0))
    return g.order_by(by) if by else g
