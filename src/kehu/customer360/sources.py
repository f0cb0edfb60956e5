"""Timeline sources: each turns one warehouse table into timeline events of one customer.

A source is data plus one Ibis projection of *all* its rows; :func:`register_timeline_source`
adds one the way a third party would. Every source projects to the same columns::

    customer_id · time (timestamp) · kind (string code) · channel · title · amount (float64)
    · ref (row id)

Because a projection covers every customer, the customer lookup file
(:mod:`kehu.customer360.lookup`) materialises the union of all sources once, sorted by
customer, and a 360 page reads one customer's events with one indexed query.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import ibis
from ibis.expr.types import Table

COLUMNS = ("time", "kind", "channel", "title", "amount", "ref")


@dataclass(frozen=True)
class TimelineSource:
    """``project(table)`` returns every row of ``table`` as events: ``customer_id`` plus the
    timeline columns (use :func:`event`)."""

    name: str
    table: str
    project: Callable[[Table], Table]


_SOURCES: dict[str, TimelineSource] = {}


def register_timeline_source(source: TimelineSource) -> None:
    _SOURCES[source.name] = source


def timeline_sources() -> list[TimelineSource]:
    return list(_SOURCES.values())


def _s(v: Any) -> Any:
    return ibis.literal(v, type="string") if isinstance(v, str) or v is None else v.cast("string")


def _f(v: Any) -> Any:
    return ibis.literal(None, type="float64") if v is None else v.cast("float64")


def event(t: Table, *, time: Any, kind: Any, channel: Any = None, title: Any = None,
          amount: Any = None, ref: Any, customer: Any = None) -> Table:
    """Project ``t`` to the timeline columns (helper for sources); ``customer`` is the column
    naming whose event a row is (default ``t.customer_id``)."""
    who = t.customer_id if customer is None else customer
    return t.select(customer_id=who.cast("string"), time=time.cast("timestamp"),
                    kind=_s(kind), channel=_s(channel), title=_s(title), amount=_f(amount),
                    ref=_s(ref))


def _join(*parts: Any) -> Any:
    """Concatenate non-null string parts with ' · '."""
    out = None
    for p in parts:
        p = p.cast("string")
        if out is None:
            out = p.fill_null("")
        else:
            out = ibis.cases((p.isnull() | (p == ""), out),
                             (out == "", p), else_=out.concat(" · ", p))
    return out


def _builtin() -> list[TimelineSource]:
    def tx(t: Table) -> Table:
        return event(t, time=t.transaction_time, kind=t.kind.fill_null("purchase"),
                     channel=t.channel, title=_join(t.product_id, t.quantity.cast("string")),
                     amount=t.amount, ref=t.transaction_id)

    def contract_start(t: Table) -> Table:
        return event(t, time=t.start_date, kind="contract_start",
                     title=_join(t.product_id, t.status), amount=t.monthly_fee,
                     ref=t.contract_id)

    def contract_end(t: Table) -> Table:
        t = t.filter(t.end_date.notnull())
        return event(t, time=t.end_date, kind="contract_end",
                     title=_join(t.product_id, t.status), ref=t.contract_id)

    def interaction(t: Table) -> Table:
        return event(t, time=t.interaction_time, kind="interaction", channel=t.channel,
                     title=_join(t.type, t.direction, t.outcome, t.text), ref=t.interaction_id)

    def ticket_opened(t: Table) -> Table:
        return event(t, time=t.opened_time, kind=t.kind.fill_null("ticket").concat("_opened"),
                     channel=t.channel, title=_join(t.category, t.status), ref=t.ticket_id)

    def ticket_resolved(t: Table) -> Table:
        t = t.filter(t.resolved_time.notnull())
        return event(t, time=t.resolved_time,
                     kind=t.kind.fill_null("ticket").concat("_resolved"), channel=t.channel,
                     title=_join(t.category, t.satisfaction.cast("string")), ref=t.ticket_id)

    def invoice(t: Table) -> Table:
        return event(t, time=t.invoice_date, kind="invoice", title=t.due_date.cast("string"),
                     amount=t.amount_due, ref=t.payment_id)

    def paid(t: Table) -> Table:
        t = t.filter(t.paid_date.notnull())
        return event(t, time=t.paid_date, kind="payment", title=t.method,
                     amount=t.amount_paid, ref=t.payment_id)

    def contact(t: Table) -> Table:
        return event(t, time=t.contact_time, kind=ibis.literal("campaign_").concat(t.group),
                     channel=t.channel, title=_join(t.campaign_id, t.offer), ref=t.contact_id)

    def response(t: Table) -> Table:
        return event(t, time=t.response_time, kind="campaign_response",
                     title=_join(t.campaign_id, t.response_type), amount=t.revenue,
                     ref=t.response_id)

    def survey(t: Table) -> Table:
        return event(t, time=t.survey_time, kind=t.kind.concat("_survey"),
                     title=_join(t.score.cast("string"), t.comment), ref=t.survey_response_id)

    def referred_someone(t: Table) -> Table:
        return event(t, customer=t.referrer_id, time=t.referral_date, kind="referred_someone",
                     channel=t.channel, title=t.referred_id, ref=t.referral_id)

    def was_referred(t: Table) -> Table:
        return event(t, customer=t.referred_id, time=t.referral_date, kind="was_referred",
                     channel=t.channel, title=t.referrer_id, ref=t.referral_id)

    def churn(t: Table) -> Table:
        return event(t, time=t.churn_date, kind="churned",
                     title=_join(t.reason, t.destination), ref=t.churn_event_id)

    return [
        TimelineSource("transactions", "transactions", tx),
        TimelineSource("contract_start", "contracts", contract_start),
        TimelineSource("contract_end", "contracts", contract_end),
        TimelineSource("interactions", "interactions", interaction),
        TimelineSource("ticket_opened", "tickets", ticket_opened),
        TimelineSource("ticket_resolved", "tickets", ticket_resolved),
        TimelineSource("invoices", "payments", invoice),
        TimelineSource("payments", "payments", paid),
        TimelineSource("campaign_contacts", "campaign_contacts", contact),
        TimelineSource("responses", "responses", response),
        TimelineSource("surveys", "surveys", survey),
        TimelineSource("referred_someone", "referrals", referred_someone),
        TimelineSource("was_referred", "referrals", was_referred),
        TimelineSource("churn_events", "churn_events", churn),
    ]


for _src in _builtin():
    register_timeline_source(_src)
