"""Per-customer features as of a cut-off date, built by the engine from every table that
exists — for the predictive models (churn, response, payment risk).

Only facts dated on or before the cut-off enter (no leakage): purchases, usage trend,
contracts and days to maturity, tickets and unresolved complaints, interactions, payments,
campaign contacts, the latest survey answers, the profile and the customers' custom
attributes. Each feature has a name in Chinese and English (:data:`FEATURES`), used in model
reports and in the plain-language reasons of a prediction.

Tables that are empty simply contribute nulls; a model drops columns that carry nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

import ibis
from ibis.expr.types import Table

from kehu.i18n import N_, _
from kehu.model.types import ATTR_PREFIX

if TYPE_CHECKING:
    from kehu.warehouse import Engine


@dataclass(frozen=True)
class Feature:
    code: str
    label: str          # English; translated with _() where shown
    kind: str = "number"  # number, category, flag


def _f(code: str, label: str, kind: str = "number") -> Feature:
    return Feature(code, label, kind)


#: every feature kehu builds, in order; custom attributes are added by name
FEATURES: dict[str, Feature] = {f.code: f for f in (
    _f("days_since_last_purchase", N_("Days since the last purchase")),
    _f("tenure_days", N_("Days since the first purchase")),
    _f("days_since_signup", N_("Days since signup")),
    _f("purchases_90d", N_("Purchase days in the last 90 days")),
    _f("purchases_prev_90d", N_("Purchase days in the 90 days before")),
    _f("purchases_365d", N_("Purchase days in the last 365 days")),
    _f("spend_90d", N_("Spend in the last 90 days")),
    _f("spend_prev_90d", N_("Spend in the 90 days before")),
    _f("spend_365d", N_("Spend in the last 365 days")),
    _f("spend_trend_90d", N_("Change of spend, last 90 days vs the 90 before")),
    _f("frequency_trend_90d", N_("Change of purchase days, last 90 days vs the 90 before")),
    _f("avg_order_value_365d", N_("Average order value, last 365 days")),
    _f("categories_365d", N_("Product categories bought, last 365 days")),
    _f("refunds_365d", N_("Refunds in the last 365 days")),
    _f("active_contracts", N_("Active contracts")),
    _f("days_to_contract_end", N_("Days until the nearest contract ends")),
    _f("monthly_fee", N_("Monthly fees of active contracts")),
    _f("auto_renew", N_("Active contracts renew automatically"), "flag"),
    _f("complaints_180d", N_("Complaints in the last 180 days")),
    _f("tickets_180d", N_("Service tickets in the last 180 days")),
    _f("unresolved_complaints", N_("Unresolved complaints")),
    _f("resolution_hours_365d", N_("Average ticket resolution time (hours), last 365 days")),
    _f("interactions_90d", N_("Interactions in the last 90 days")),
    _f("days_since_last_interaction", N_("Days since the last interaction")),
    _f("late_payments_365d", N_("Late payments in the last 365 days")),
    _f("max_days_late_365d", N_("Most days late on a payment, last 365 days")),
    _f("overdue_amount", N_("Amount overdue")),
    _f("contacts_180d", N_("Campaign contacts in the last 180 days")),
    _f("last_nps", N_("Last NPS answer (0–10)")),
    _f("last_csat", N_("Last CSAT answer")),
    _f("age", N_("Age (years)")),
    _f("gender", N_("Gender"), "category"),
    _f("customer_type", N_("Customer type"), "category"),
    _f("region", N_("Region"), "category"),
    _f("signup_channel", N_("Signup channel"), "category"),
    _f("tier", N_("Value tier (12-month spend)"), "category"),
)}


def feature_label(code: str) -> str:
    """The translated name of a feature (custom attributes keep their own name)."""
    if code in FEATURES:
        return _(FEATURES[code].label)
    return code[len(ATTR_PREFIX):] if code.startswith(ATTR_PREFIX) else code


def _day(col: Any) -> Any:
    return col.cast("date")


def _between(col: Any, start: date, end: date) -> Any:
    """start < day(col) <= end."""
    d = _day(col)
    return (d > ibis.literal(start)) & (d <= ibis.literal(end))


def _days(later: date, col: Any) -> Any:
    return (ibis.literal(later) - _day(col)).cast("int64")


def _ratio_change(new: Any, old: Any) -> Any:
    return ibis.cases((old > 0, new / old - 1.0), else_=ibis.null("float64"))


def customer_features(engine: Engine, cutoff: date, population: Table | None = None) -> Table:
    """One row per customer (or per row of ``population``, a table with ``customer_id``) with
    every feature as of ``cutoff``.

    With a ``population``, only its customers' facts are aggregated (a model fitted on a
    sample of 100 k customers needs the features of those, not of a million); value tiers
    still rank every customer."""
    from kehu.analytics.tiers import TierScheme, assign_tiers, trailing_value

    c = engine.table("customers")
    c = c.filter(c.signup_date.isnull() | (c.signup_date <= ibis.literal(cutoff)))
    attrs = [n for n in c.columns if n.startswith(ATTR_PREFIX)]
    base = c.select(
        "customer_id", "gender", "customer_type", "region", "signup_channel", *attrs,
        days_since_signup=(ibis.literal(cutoff) - c.signup_date).cast("int64"),
        age=((ibis.literal(cutoff) - c.birth_date).cast("int64") / 365.25).floor())
    if population is not None:
        base = population.select("customer_id").join(base, "customer_id")
    keep = None if population is None else engine.reuse(population.select("customer_id"))

    def facts(name: str) -> Table:
        t = engine.table(name)
        return t if keep is None else t.semi_join(keep, "customer_id")

    parts = [_purchases(engine, facts, cutoff), _contracts(facts, cutoff),
             _tickets(facts, cutoff), _interactions(facts, cutoff), _payments(facts, cutoff),
             _contacts(facts, cutoff), _surveys(facts, cutoff)]
    out = base
    for p in parts:
        out = out.left_join(p, "customer_id").drop("customer_id_right")
    tiers = assign_tiers(trailing_value(engine.table("transactions"), c, cutoff), TierScheme())
    out = out.left_join(tiers.select("customer_id", "tier"), "customer_id").drop(
        "customer_id_right")
    counts = ("purchases_90d", "purchases_prev_90d", "purchases_365d", "spend_90d",
              "spend_prev_90d", "spend_365d", "categories_365d", "refunds_365d",
              "active_contracts", "complaints_180d", "tickets_180d", "unresolved_complaints",
              "interactions_90d", "late_payments_365d", "overdue_amount", "contacts_180d")
    out = out.mutate(**{k: out[k].fill_null(0) for k in counts})
    out = out.mutate(spend_trend_90d=_ratio_change(out.spend_90d, out.spend_prev_90d),
                     frequency_trend_90d=_ratio_change(out.purchases_90d.cast("float64"),
                                                       out.purchases_prev_90d))
    order = ["customer_id", *[k for k in FEATURES if k in out.columns], *attrs]
    return out.select(order)


Facts = Callable[[str], Table]


def _purchases(engine: Engine, facts: Facts, d: date) -> Table:
    t = facts("transactions")
    t = t.filter(_day(t.transaction_time) <= ibis.literal(d))
    p = engine.table("products").select("product_id", "category")
    t = t.left_join(p, "product_id").drop("product_id_right")
    refund = t.kind.fill_null("") == "refund"
    buy = ~refund
    day = _day(t.transaction_time)
    y, q, h = d - timedelta(days=365), d - timedelta(days=90), d - timedelta(days=180)
    in90, prev90 = day > ibis.literal(q), (day > ibis.literal(h)) & (day <= ibis.literal(q))
    in365 = day > ibis.literal(y)
    order = t.order_id.coalesce(t.transaction_id)
    agg = t.group_by("customer_id").aggregate(
        last=day.max(where=buy), first=day.min(where=buy),
        purchases_90d=day.nunique(where=buy & in90),
        purchases_prev_90d=day.nunique(where=buy & prev90),
        purchases_365d=day.nunique(where=buy & in365),
        spend_90d=t.amount.sum(where=buy & in90),
        spend_prev_90d=t.amount.sum(where=buy & prev90),
        spend_365d=t.amount.sum(where=buy & in365),
        orders_365d=order.nunique(where=buy & in365),
        categories_365d=t.category.nunique(where=buy & in365),
        refunds_365d=refund.cast("int64").sum(where=in365))
    return agg.select(
        "customer_id", "purchases_90d", "purchases_prev_90d", "purchases_365d", "spend_90d",
        "spend_prev_90d", "spend_365d", "categories_365d", "refunds_365d",
        days_since_last_purchase=(ibis.literal(d) - agg["last"]).cast("int64"),
        tenure_days=(ibis.literal(d) - agg["first"]).cast("int64"),
        avg_order_value_365d=ibis.cases((agg.orders_365d > 0,
                                         agg.spend_365d / agg.orders_365d),
                                        else_=ibis.null("float64")))


def _contracts(facts: Facts, d: date) -> Table:
    k = facts("contracts")
    lit = ibis.literal(d)
    active = (k.start_date <= lit) & (k.end_date.isnull() | (k.end_date > lit)) & \
        (k.status.fill_null("active") != "cancelled")
    a = k.filter(active)
    return a.group_by("customer_id").aggregate(
        active_contracts=a.count(),
        days_to_contract_end=(a.end_date - lit).cast("int64").min(),
        monthly_fee=a.monthly_fee.sum(),
        auto_renew=a.auto_renew.cast("float64").mean())


def _tickets(facts: Facts, d: date) -> Table:
    k = facts("tickets")
    k = k.filter(_day(k.opened_time) <= ibis.literal(d))
    complaint = k.kind == "complaint"
    recent = _between(k.opened_time, d - timedelta(days=180), d)
    year = _between(k.opened_time, d - timedelta(days=365), d)
    # open at the cut-off: not resolved yet, or resolved after it
    open_at = k.resolved_time.isnull() | (_day(k.resolved_time) > ibis.literal(d))
    hours = (k.resolved_time.epoch_seconds() - k.opened_time.epoch_seconds()) / 3600.0
    return k.group_by("customer_id").aggregate(
        complaints_180d=complaint.cast("int64").sum(where=recent),
        tickets_180d=k.count(where=recent),
        unresolved_complaints=(complaint & open_at).cast("int64").sum(),
        resolution_hours_365d=hours.mean(where=year & ~open_at))


def _interactions(facts: Facts, d: date) -> Table:
    k = facts("interactions")
    k = k.filter(_day(k.interaction_time) <= ibis.literal(d))
    return k.group_by("customer_id").aggregate(
        interactions_90d=k.count(where=_between(k.interaction_time, d - timedelta(days=90), d)),
        days_since_last_interaction=_days(d, k.interaction_time.max()))


def _payments(facts: Facts, d: date) -> Table:
    p = facts("payments")
    lit = ibis.literal(d)
    p = p.filter(p.due_date <= lit)
    year = p.due_date > ibis.literal(d - timedelta(days=365))
    paid_by_cutoff = p.paid_date.notnull() & (p.paid_date <= lit)
    late_days = ibis.cases((paid_by_cutoff, (p.paid_date - p.due_date).cast("int64")),
                           else_=(lit - p.due_date).cast("int64"))
    unpaid = (p.amount_due - ibis.cases((paid_by_cutoff, p.amount_paid.fill_null(0)),
                                        else_=0.0))
    return p.group_by("customer_id").aggregate(
        late_payments_365d=(late_days > 0).cast("int64").sum(where=year),
        max_days_late_365d=ibis.greatest(late_days, 0).max(where=year),
        overdue_amount=ibis.greatest(unpaid, 0.0).sum())


def _contacts(facts: Facts, d: date) -> Table:
    k = facts("campaign_contacts")
    k = k.filter(_between(k.contact_time, d - timedelta(days=180), d))
    return k.group_by("customer_id").aggregate(contacts_180d=k.count())


def _surveys(facts: Facts, d: date) -> Table:
    s = facts("surveys")
    s = s.filter(_day(s.survey_time) <= ibis.literal(d))
    w = ibis.window(group_by=[s.customer_id, s.kind], order_by=ibis.desc(s.survey_time))
    s = s.mutate(rn=ibis.row_number().over(w)).filter(lambda x: x.rn == 0)
    return s.group_by("customer_id").aggregate(
        last_nps=s.score.max(where=s.kind == "nps").cast("float64"),
        last_csat=s.score.max(where=s.kind == "csat").cast("float64"))
