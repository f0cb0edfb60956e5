"""Each offer kind as an Ibis expression: per customer, what the offer changes over the horizon.

Every function returns a table of ``customer_id, affected, d_revenue, d_margin,
discount_cost, incremental_margin`` where, for every customer,
``d_margin = incremental_margin - discount_cost``: the margin the extra units earn at the
regular price, less the price given away. The formulas are in ``docs/simulation.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import ibis
from ibis.expr.types import Table

from kehu.simulate.spec import Bundle, Discount, PricePlan

if TYPE_CHECKING:
    from kehu.simulate.engine import Inputs

COLUMNS = ("customer_id", "affected", "d_revenue", "d_margin", "discount_cost",
           "incremental_margin")


def _lit(x: float) -> Any:
    return ibis.literal(float(x), type="float64")


def discounts(inp: Inputs, offers: list[tuple[int, Discount]], where: str) -> Table:
    """All discount offers of a scenario at once. Where several match the same customer and
    product, the first listed applies.

    Per customer × product line with baseline revenue R and margin M (base window), for the
    applying offer with rate d, quantity factor m = (1 − d) ** elasticity, take-up u and
    cannibalisation c, and g = (m − 1)(1 − c):

    - Δrevenue = u · (g − m·d) · R
    - discount cost = u · m · d · R;  incremental margin = u · g · M
    - Δmargin = incremental margin − discount cost

    all scaled from the base window to the horizon.
    """
    lines = inp.lines
    matches = []
    for i, o in offers:
        in_items = inp.item_condition(lines, o, f"{where}.offers.{i}")
        matches.append((in_items & inp.eligible(lines.customer_id, o.audience,
                                                f"{where}.offers.{i}"), o))

    def pick(value: Any) -> Any:
        return ibis.cases(*[(cond, _lit(value(o))) for cond, o in matches], else_=_lit(0.0))

    d = pick(lambda o: o.percent / 100)
    m = pick(lambda o: o.quantity_factor())
    u = pick(lambda o: o.take_up)
    c = pick(lambda o: o.cannibalisation)
    hit = ibis.or_(*[cond for cond, _o in matches])
    g = (m - 1) * (1 - c)
    per_line = lines.mutate(
        affected=hit.cast("int8"),
        d_revenue=u * (g - m * d) * lines.revenue,
        discount_cost=u * m * d * lines.revenue,
        incremental_margin=u * g * lines.margin)
    return _per_customer(per_line, inp.scale)


def price_plan(inp: Inputs, o: PricePlan, where: str) -> Table:
    """Contracts on ``product_id`` active at the as-of date, held by the audience, whose fee f
    is above the new fee f'. With M = horizon months, churn over the horizon
    P(r) = 1 − (1 − r) ** (horizon / 365), paid share k(r) = 1 − P(r) / 2 (leavers go
    mid-horizon on average), s = switch rate, r' = r · (1 + churn effect), monthly cost c:

    - Δrevenue = s · M · (f' · k(r') − f · k(r))
    - Δmargin = s · M · ((f' − c') · k(r') − (f − c) · k(r))
    - discount cost = s · M · (f − f') · k(r')
    """
    months = inp.horizon_days * 12 / 365
    years = inp.horizon_days / 365

    def paid(r: float) -> float:
        return 1 - (1 - (1 - r) ** years) / 2

    k0 = paid(o.baseline_churn)
    k1 = paid(min(1.0, o.baseline_churn * (1 + o.churn_effect)))
    new_fee, cost_old, cost_new = inp.plan_economics(o, where)
    ct = inp.contracts(o.product_id)
    offered = (ct.fee > _lit(new_fee)) & inp.eligible(ct.customer_id, o.audience, where)
    s = ibis.cases((offered, _lit(o.switch_rate * months)), else_=_lit(0.0))
    f = ct.fee
    out = ct.mutate(
        affected=offered.cast("int8"),
        d_revenue=s * (_lit(new_fee * k1) - f * k0),
        d_margin=s * (_lit((new_fee - cost_new) * k1) - (f - cost_old) * k0),
        discount_cost=s * (f - new_fee) * k1)
    out = out.mutate(incremental_margin=out.d_margin + out.discount_cost)
    return out.group_by("customer_id").aggregate(
        affected=out.affected.max(), d_revenue=out.d_revenue.sum(),
        d_margin=out.d_margin.sum(), discount_cost=out.discount_cost.sum(),
        incremental_margin=out.incremental_margin.sum())


def bundle(inp: Inputs, o: Bundle, where: str) -> Table:
    """Per audience customer in the base window: n_A = orders with A, R_A = their A revenue,
    R_AB = A and B revenue in orders holding both; w = take-up · attach uplift for customers
    who bought A and never B (else 0), u = take-up; list price p_B, unit cost c_B, rate d:

    - adopters: Δrevenue = w · (n_A · p_B · (1 − d) − d · R_A),
      discount cost = w · d · (n_A · p_B + R_A), incremental margin = w · n_A · (p_B − c_B)
    - existing bundles: discount cost = u · d · R_AB (revenue and margin lower by as much)
    """
    price_b, cost_b = inp.bundle_economics(o, where)
    t = inp.window
    t = t.filter(t.product_id.isin([o.product_a, o.product_b]))
    is_a = t.product_id == o.product_a
    is_b = t.product_id == o.product_b
    orders = t.group_by(["customer_id", "order_key"]).aggregate(
        has_a=is_a.any(), has_b=is_b.any(),
        ra=ibis.cases((is_a, t.amount), else_=_lit(0.0)).sum(),
        rb=ibis.cases((is_b, t.amount), else_=_lit(0.0)).sum())
    both = orders.has_a & orders.has_b
    cust = orders.group_by("customer_id").aggregate(
        any_b=orders.has_b.any(), n_a=orders.has_a.cast("int64").sum(),
        r_a=orders.ra.sum(), r_ab=ibis.cases((both, orders.ra + orders.rb),
                                             else_=_lit(0.0)).sum())
    cust = cust.filter(inp.eligible(cust.customer_id, o.audience, where))
    d = o.percent / 100
    adopt = (cust.n_a > 0) & ~cust.any_b
    w = ibis.cases((adopt, _lit(o.take_up * o.attach_uplift)), else_=_lit(0.0))
    subsidy = _lit(o.take_up * d) * cust.r_ab
    n_a = cust.n_a.cast("float64")
    out = cust.mutate(
        affected=(adopt | (cust.r_ab != 0)).cast("int8"),
        d_revenue=w * (n_a * (price_b * (1 - d)) - cust.r_a * d) - subsidy,
        discount_cost=w * d * (n_a * price_b + cust.r_a) + subsidy,
        incremental_margin=w * n_a * (price_b - cost_b))
    return _per_customer(out.select("customer_id", "affected", "d_revenue", "discount_cost",
                                    "incremental_margin"), inp.scale, grouped=True)


def _per_customer(t: Table, scale: float, grouped: bool = False) -> Table:
    """Sum lines to customers (unless already one row each) and scale to the horizon."""
    if not grouped:
        t = t.group_by("customer_id").aggregate(
            affected=t.affected.max(), d_revenue=t.d_revenue.sum(),
            discount_cost=t.discount_cost.sum(), incremental_margin=t.incremental_margin.sum())
    k = _lit(scale)
    return t.select(
        "customer_id", "affected", d_revenue=t.d_revenue * k,
        d_margin=(t.incremental_margin - t.discount_cost) * k,
        discount_cost=t.discount_cost * k, incremental_margin=t.incremental_margin * k)
