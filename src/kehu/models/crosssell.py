"""Cross-sell and up-sell: per-customer product propensity, the next best offers, products a
segment is starting to favour, and a time hold-out evaluation against a popularity baseline.

As of day ``d``, for each customer:

- **held** products are those bought in the ``lookback_days`` up to ``d`` or held under an active
  contract (started by ``d``; status active or renewed; not ended before ``d`` unless renewed) —
  they are never offered;
- **rule evidence** for a candidate ``j``: the association rules ``i → j``
  (:func:`kehu.analytics.basket.association_rules` over baskets up to ``d``, lift ≥ ``min_lift``)
  whose antecedent ``i`` the customer bought in the lookback window. The customer's ``n_i``
  baskets with ``i`` there suggest ``n_i · horizon / lookback`` such baskets in the next
  ``horizon_days``, each carrying ``j`` with probability confidence(i → j), so
  ``p_rule = 1 − Π_i (1 − confidence(i → j))^(n_i · horizon / lookback)``; the most confident
  rule is the offer's ``reason``;
- **segment prior**: of the segment's customers (tier, RFM class … as of ``d``) who did not
  hold ``j`` ``horizon_days`` before ``d``, the share who bought it since — shrunk towards the
  whole base's share with the weight of ``prior_strength`` customers;
- ``propensity = 1 − (1 − prior) · (1 − p_rule)``, ``expected_margin = propensity × margin``
  with ``margin`` = unit_price − unit_cost of the product, else its observed average margin per
  line; offers are the ``k`` candidates with the highest expected margin.

Candidates are the consequents of the customer's rules plus the ``prior_candidates`` most
adopted products of the segment, so the work grows with customers × (rules + prior_candidates),
not with the catalogue. Everything is one Ibis expression executed by the engine; only the
``customers × k`` offers leave it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

import ibis
import pyarrow as pa
from ibis.expr.types import Table

from kehu.analytics.basket import association_rules
from kehu.analytics.summary import last_transaction_day as last_day
from kehu.errors import KehuInputError
from kehu.i18n import _

if TYPE_CHECKING:
    from kehu.warehouse import Engine

#: segment dimensions computed as of the date, profile columns of the customer table,
#: and columns of the latest analysis run
AS_OF_SEGMENTS = ("tier", "rfm_class")
PROFILE_SEGMENTS = ("region", "city", "gender", "customer_type", "account_manager_id")
RUN_SEGMENTS = ("lifecycle_stage", "cluster")
SEGMENTS = ("none", *AS_OF_SEGMENTS, *PROFILE_SEGMENTS, *RUN_SEGMENTS)
OFFER_COLUMNS = ("customer_id", "rank", "product_id", "propensity", "expected_margin",
                 "reason", "reason_confidence", "reason_lift", "segment", "prior", "margin")


def purchases(engine: Engine, as_of: date, since: date | None = None) -> Table:
    """Purchase lines (refunds left out, a product given) on days ``since < day <= as_of``."""
    t = engine.table("transactions")
    day = t.transaction_time.cast("date")
    t = t.filter(t.product_id.notnull() & (t.kind.isnull() | (t.kind != "refund"))
                 & (day <= ibis.literal(as_of)))
    if since is not None:
        t = t.filter(day > ibis.literal(since))
    return t


def held_products(engine: Engine, as_of: date, lookback_days: int = 365) -> Table:
    """Distinct (customer_id, product_id) bought in the lookback window or under contract."""
    t = purchases(engine, as_of, as_of - timedelta(days=lookback_days))
    bought = t.select("customer_id", "product_id")
    c = engine.table("contracts")
    d = ibis.literal(as_of)
    active = c.filter(c.product_id.notnull() & (c.start_date <= d)
                      & c.status.isin(["active", "renewed"])
                      & (c.end_date.isnull() | (c.end_date >= d) | (c.status == "renewed")))
    return bought.union(active.select("customer_id", "product_id")).distinct()


def customer_segments(engine: Engine, as_of: date, by: str = "tier") -> Table:
    """(customer_id, segment) for every customer who signed up by ``as_of``; tier and RFM
    class are computed as of the date, profile columns come from the customer table, stage
    and cluster from the latest analysis run; a missing value is ``-``."""
    if by not in SEGMENTS:
        raise KehuInputError(_("The '{name}' parameter must be one of {allowed}. Got {v!r} "
                               "instead.").format(name="by", allowed=", ".join(SEGMENTS), v=by))
    cust = engine.table("customers")
    cust = cust.filter(cust.signup_date.isnull() | (cust.signup_date <= ibis.literal(as_of)))
    if by == "none":
        return cust.select("customer_id", segment=ibis.literal("all"))
    if by in PROFILE_SEGMENTS:
        return cust.select("customer_id", segment=cust[by].cast("string").fill_null("-"))
    tx = engine.table("transactions")
    if by == "tier":
        from kehu.analytics.tiers import tiers_as_of

        src = tiers_as_of(tx, engine.table("customers"), as_of).select("customer_id", "tier")
    elif by == "rfm_class":
        from kehu.analytics.rfm import rfm, rfm_classes

        src = rfm_classes(rfm(tx, as_of)).select("customer_id", "rfm_class")
    else:
        from kehu.analytics.run import SCORES_TABLE

        if not engine.warehouse.exists(SCORES_TABLE):
            raise KehuInputError(_("Segments by {by} come from an analysis run: run 'kehu run' "
                                   "first, or use --by tier.").format(by=by))
        s = engine.table(SCORES_TABLE)
        last = s.aggregate(r=s.run_id.max()).r.as_scalar()
        src = s.filter(s.run_id == last).select("customer_id", by)
    j = cust.select("customer_id").left_join(src, "customer_id")
    # a view ends the join chain, so callers can join the result like any table
    return j.select("customer_id", segment=j[by].cast("string").fill_null("-")).view()


def product_margins(engine: Engine, as_of: date) -> Table:
    """(product_id, margin): unit_price − unit_cost, else the average margin per line."""
    t = purchases(engine, as_of)
    seen = t.group_by("product_id").aggregate(
        observed=(t.amount - t.cost.fill_null(0)).mean())
    p = engine.table("products")
    unit = p.select("product_id", unit=p.unit_price - p.unit_cost)
    j = seen.outer_join(unit, "product_id")
    return j.select(product_id=j.product_id.coalesce(j.product_id_right),
                    margin=j.unit.coalesce(j.observed).cast("float64")).view()


def offer_candidates(engine: Engine, as_of: date, *, lookback_days: int = 365,
                     segment_by: str = "tier", min_support: float = 0.001,
                     min_confidence: float = 0.01, min_lift: float = 1.0,
                     prior_candidates: int = 50, horizon_days: int = 90,
                     prior_strength: float = 20.0,
                     customers: Sequence[str] | None = None) -> Table:
    """Every candidate (customer, product not held) with its propensity and expected margin
    (before ranking); columns as :data:`OFFER_COLUMNS` without ``rank``."""
    _positive("lookback_days", lookback_days)
    _positive("prior_candidates", prior_candidates)
    # parts used more than once are computed once (Engine.reuse: a no-op on DuckDB)
    all_seg = engine.reuse(customer_segments(engine, as_of, segment_by))
    seg = all_seg
    if customers is not None:
        seg = seg.filter(seg.customer_id.isin(list(customers)))
    held = engine.reuse(held_products(engine, as_of, lookback_days))
    lines = purchases(engine, as_of, as_of - timedelta(days=lookback_days))
    lines = lines.mutate(basket=lines.order_id.coalesce(lines.transaction_id))
    # baskets per (customer, product) in the lookback window
    owned = lines.group_by(["customer_id", "product_id"]).aggregate(
        n_baskets=lines.basket.nunique())
    if customers is not None:
        owned = owned.semi_join(seg, "customer_id")
    rules = association_rules(engine.table("transactions"), min_support=min_support,
                              min_confidence=min_confidence, min_lift=min_lift, as_of=as_of)
    rules = engine.reuse(rules).view()
    ev = owned.join(rules, owned.product_id == rules.antecedent).select(
        "customer_id", "n_baskets", product_id="consequent", antecedent="antecedent",
        confidence="confidence", lift="lift")
    ev = ev.anti_join(held.view(), ["customer_id", "product_id"])
    # each of the baskets with i expected in the horizon carries j with P = confidence
    expected = ev.n_baskets.cast("float64") * (horizon_days / lookback_days)
    by_rule = engine.reuse(ev.group_by(["customer_id", "product_id"]).aggregate(
        log_miss=(expected * (1.0 - ev.confidence.clip(upper=0.999999)).ln()).sum(),
        reason=ev.antecedent.argmax(ev.confidence),
        reason_confidence=ev.confidence.max(), reason_lift=ev.lift.argmax(ev.confidence)))
    # segment prior: of the segment's customers who did not hold j ``horizon_days`` ago,
    # the share who bought it since (a probability of adopting j within the horizon)
    t0 = as_of - timedelta(days=horizon_days)
    sizes = all_seg.group_by("segment").aggregate(members=all_seg.count())
    held0 = engine.reuse(held_products(engine, t0, lookback_days))
    h0 = held0.join(all_seg.view(), "customer_id")
    holders = h0.group_by(["segment", "product_id"]).aggregate(holders=h0.count())
    fresh = purchases(engine, as_of, t0).select("customer_id", "product_id").distinct()
    fresh = fresh.anti_join(held0.view(), ["customer_id", "product_id"]).join(
        all_seg.view(), "customer_id")
    adopters = fresh.group_by(["segment", "product_id"]).aggregate(adopters=fresh.count())
    # shrunk towards the whole base's rate, worth ``prior_strength`` customers, so that a
    # small segment's few adopters do not swing it
    base = adopters.group_by("product_id").aggregate(adopters_all=adopters.adopters.sum())
    hold_all = holders.group_by("product_id").aggregate(holders_all=holders.holders.sum())
    base = base.left_join(hold_all.view(), "product_id").drop("product_id_right")
    base = base.cross_join(sizes.aggregate(everyone=sizes.members.sum()))
    base = base.select("product_id", base_rate=base.adopters_all.cast("float64") / (
        base.everyone - base.holders_all.fill_null(0)).clip(lower=1))
    adopt = sizes.cross_join(base.view())
    adopt = adopt.left_join(adopters.view(), ["segment", "product_id"]).drop(
        "segment_right", "product_id_right")
    adopt = adopt.left_join(holders.view(), ["segment", "product_id"]).drop(
        "segment_right", "product_id_right")
    at_risk = (adopt.members - adopt.holders.fill_null(0)).cast("float64")
    adopt = adopt.mutate(prior=(adopt.adopters.fill_null(0) + prior_strength * adopt.base_rate)
                         / (at_risk + prior_strength))
    adopt = engine.reuse(adopt.mutate(prior_rank=ibis.row_number().over(
        group_by="segment", order_by=[ibis.desc("prior"), "product_id"])))
    top = adopt.filter(adopt.prior_rank < prior_candidates).select("segment", "product_id")
    from_prior = seg.join(top.view(), "segment").select("customer_id", "product_id")
    cand = from_prior.union(by_rule.select("customer_id", "product_id")).distinct()
    cand = cand.anti_join(held.view(), ["customer_id", "product_id"])
    cand = cand.join(seg.view(), "customer_id")
    cand = cand.left_join(by_rule.view(), ["customer_id", "product_id"]).drop(
        "customer_id_right", "product_id_right")
    cand = cand.left_join(adopt.select("segment", "product_id", "prior").view(),
                          ["segment", "product_id"]).drop("segment_right", "product_id_right")
    cand = cand.left_join(product_margins(engine, as_of).view(), "product_id").drop(
        "product_id_right")
    prior = cand.prior.fill_null(0.0)
    p_rule = 1.0 - cand.log_miss.fill_null(0.0).exp()
    prop = 1.0 - (1.0 - prior) * (1.0 - p_rule)
    cand = cand.mutate(prior=prior, propensity=prop)
    cand = cand.mutate(expected_margin=cand.propensity * cand.margin.fill_null(0.0))
    return cand.select(*[c for c in OFFER_COLUMNS if c != "rank"])


def offers_expr(engine: Engine, as_of: date, k: int = 5, rank_by: str = "expected_margin",
                **options: Any) -> Table:
    """The top ``k`` candidates per customer by ``rank_by`` (``expected_margin`` or
    ``propensity``), as an Ibis table with :data:`OFFER_COLUMNS`."""
    _positive("k", k)
    if rank_by not in ("expected_margin", "propensity"):
        raise KehuInputError(_("The 'rank_by' parameter must be expected_margin or propensity. "
                               "Got {v!r} instead.").format(v=rank_by))
    other = "propensity" if rank_by == "expected_margin" else "expected_margin"
    c = offer_candidates(engine, as_of, **options)
    c = c.mutate(rank=ibis.row_number().over(
        group_by="customer_id", order_by=[ibis.desc(rank_by), ibis.desc(other), "product_id"]
    ) + 1)
    return c.filter(c["rank"] <= k).select(*OFFER_COLUMNS)


def next_best_offers(engine: Engine, as_of: date | None = None, k: int = 5,
                     **options: Any) -> pa.Table:
    """Up to ``k`` offers per customer, best first (see :func:`offer_candidates` for the
    options: ``lookback_days``, ``segment_by``, ``min_support``, ``min_confidence``,
    ``min_lift``, ``prior_candidates``, ``customers``; and ``rank_by``)."""
    as_of = as_of or last_day(engine)
    expr = offers_expr(engine, as_of, k, **options).order_by(["customer_id", "rank"])
    return engine.execute_arrow(expr)


def popularity_offers(engine: Engine, as_of: date, k: int = 5, lookback_days: int = 365,
                      customers: Table | None = None) -> Table:
    """The baseline: the ``k`` products bought by most customers in the lookback window that
    the customer does not hold yet (columns customer_id, rank, product_id)."""
    held = held_products(engine, as_of, lookback_days)
    most = held.group_by("customer_id").aggregate(n=held.count()).n.max().to_pyarrow().as_py()
    owned = purchases(engine, as_of, as_of - timedelta(days=lookback_days)).select(
        "customer_id", "product_id").distinct()
    pop = owned.group_by("product_id").aggregate(buyers=owned.count())
    pop = pop.mutate(pop_rank=ibis.row_number().over(
        order_by=[ibis.desc("buyers"), "product_id"]))
    pop = pop.filter(pop.pop_rank < k + int(most or 0))  # enough for anyone to get k
    who = customers if customers is not None else customer_segments(engine, as_of, "none")
    c = who.select("customer_id").cross_join(pop.select("product_id", "pop_rank"))
    c = c.anti_join(held, ["customer_id", "product_id"])
    c = c.mutate(rank=ibis.row_number().over(group_by="customer_id", order_by="pop_rank") + 1)
    return c.filter(c["rank"] <= k).select("customer_id", "rank", "product_id")


def evaluate_holdout(engine: Engine, as_of: date | None = None, holdout_days: int = 90,
                     k: int = 5, **options: Any) -> dict[str, Any]:
    """Fit on data up to ``as_of − holdout_days``, offer ``k`` products per customer, and
    score against the new products (not held at the cut-off) customers bought in the
    hold-out window. Metrics over customers with at least one such purchase: ``hit_rate``
    (share with ≥ 1 offer bought), ``precision`` (offers bought / offers made), ``recall``
    (offers bought / new products bought), ``coverage`` (share of the catalogue offered to
    someone) — for kehu, kehu ranked by propensity alone, and the popularity baseline."""
    _positive("holdout_days", holdout_days)
    as_of = as_of or last_day(engine)
    cutoff = as_of - timedelta(days=holdout_days)
    lookback = int(options.get("lookback_days", 365))
    held = held_products(engine, cutoff, lookback)
    new = purchases(engine, as_of, cutoff).select("customer_id", "product_id").distinct()
    new = new.anti_join(held, ["customer_id", "product_id"])
    pool = customer_segments(engine, cutoff, "none").semi_join(new, "customer_id")
    products = engine.table("products").count().to_pyarrow().as_py() or \
        purchases(engine, cutoff).product_id.nunique().to_pyarrow().as_py()
    methods = {
        "kehu": offers_expr(engine, cutoff, k, **options),
        "kehu_propensity": offers_expr(engine, cutoff, k, rank_by="propensity", **options),
        "popularity": popularity_offers(engine, cutoff, k, lookback),
    }
    out: dict[str, Any] = {"as_of": as_of, "cutoff": cutoff, "holdout_days": holdout_days,
                           "k": k}
    new_pool = new.semi_join(pool, "customer_id")
    n_new = new_pool.count().to_pyarrow().as_py()
    out["customers"] = pool.count().to_pyarrow().as_py()
    out["new_purchases"] = n_new
    for name, offers in methods.items():
        o = offers.select("customer_id", "product_id")
        made = o.semi_join(pool, "customer_id")
        hit = made.semi_join(new, ["customer_id", "product_id"])
        row = ibis.memtable({"x": [0]}).select(
            offers=made.count().as_scalar(), hits=hit.count().as_scalar(),
            hit_customers=hit.customer_id.nunique().as_scalar(),
            offered_products=o.product_id.nunique().as_scalar()).to_pyarrow().to_pylist()[0]
        n = out["customers"]
        out[name] = {
            "hit_rate": row["hit_customers"] / n if n else None,
            "precision": row["hits"] / row["offers"] if row["offers"] else None,
            "recall": row["hits"] / n_new if n_new else None,
            "coverage": row["offered_products"] / products if products else None,
            "hits": row["hits"], "offers": row["offers"]}
    base = out["popularity"]["hit_rate"]
    out["lift_over_baseline"] = (out["kehu"]["hit_rate"] / base) if base else None
    return out


def rising_products(engine: Engine, as_of: date | None = None, by: str = "tier",
                    window_days: int = 90, min_buyers: int = 5,
                    top: int | None = None) -> pa.Table:
    """Per segment (membership as of ``as_of``) and product: the share of the segment that
    bought it in the last ``window_days`` (``rate_recent``) and in the window before
    (``rate_prior``), their ``ratio`` (empty when nobody bought before) and ``change``;
    products with at least ``min_buyers`` recent buyers, fastest risers first."""
    _positive("window_days", window_days)
    as_of = as_of or last_day(engine)
    seg = customer_segments(engine, as_of, by)
    sizes = seg.group_by("segment").aggregate(customers=seg.count())
    mid, start = as_of - timedelta(days=window_days), as_of - timedelta(days=2 * window_days)
    t = purchases(engine, as_of, start)
    t = t.mutate(recent=t.transaction_time.cast("date") > ibis.literal(mid))
    cp = t.group_by(["customer_id", "product_id"]).aggregate(
        r=t.recent.any(), p=(~t.recent).any()).join(seg, "customer_id")
    g = cp.group_by(["segment", "product_id"]).aggregate(
        buyers_recent=cp.r.cast("int64").sum(), buyers_prior=cp.p.cast("int64").sum())
    g = g.join(sizes, "segment")
    g = g.mutate(rate_recent=g.buyers_recent.cast("float64") / g.customers,
                 rate_prior=g.buyers_prior.cast("float64") / g.customers)
    g = g.mutate(ratio=ibis.cases((g.buyers_prior > 0, g.rate_recent / g.rate_prior),
                                  else_=ibis.null("float64")),
                 change=g.rate_recent - g.rate_prior)
    g = g.filter(g.buyers_recent >= min_buyers)
    g = g.mutate(rise=ibis.row_number().over(
        group_by="segment", order_by=[ibis.desc(g.ratio.fill_null(float("inf"))),
                                      ibis.desc("change"), "product_id"]) + 1)
    if top is not None:
        _positive("top", top)
        g = g.filter(g.rise <= top)
    g = g.select("segment", "rise", "product_id", "customers", "buyers_recent", "buyers_prior",
                 "rate_recent", "rate_prior", "ratio", "change")
    return engine.execute_arrow(g.order_by(["segment", "rise"]))


def _positive(name: str, value: int) -> None:
    if not isinstance(value, int) or value < 1:
        raise KehuInputError(_("The '{name}' parameter must be an int >= 1. Got {v!r} instead."
                               ).format(name=name, v=value))


def register_evaluation(ws: Any, result: dict[str, Any], options: dict[str, Any]) -> str:
    """Store a hold-out evaluation in the model registry (kind ``crosssell``): the options
    the offers were made with and the metrics of kehu and the popularity baseline, so every
    evaluation is kept and comparable. Returns the model id."""
    from kehu.models import registry

    details = {"params": options, "holdout": {
        k: v for k, v in result.items() if k not in ("as_of", "cutoff")},
        "cutoffs": {"offers": str(result["cutoff"]), "holdout": f"{result['cutoff']} .. "
                                                                f"{result['as_of']}"}}
    rec = registry.register(ws, "crosssell", {"options": options}, result["as_of"],
                            "rules+segment prior", details)
    return rec.model_id
