"""The OLAP cube: any measure by any dimension, with hierarchies for drill-down and filters —
defined as data, compiled to Ibis.

Two grains:

- **transaction measures** (revenue, margin, orders, transactions, buyers, average order
  value) can be cut by every dimension: time (year → quarter → month), geography (region →
  city), product (category → subcategory → product), channel, and the customer dimensions;
- **customer measures** (customers, CLV, churn risk, NPS, historical / current / potential
  value, profit — sums — and the loyalty index — a mean) are cut by customer dimensions only
  (region, city, tier, RFM class, lifecycle stage, account manager, gender, customer type):
  a customer's CLV has no month or product.

Customer dimensions and CLV come from the latest analysis run (``kehu run``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

import ibis
from ibis.expr.types import Table
from pydantic import BaseModel, Field, field_validator

from kehu.analytics.run import SCORES_TABLE
from kehu.errors import KehuInputError
from kehu.i18n import _

if TYPE_CHECKING:
    from kehu.warehouse import Engine


@dataclass(frozen=True)
class Dimension:
    name: str
    grain: str  # "customer" or "transaction"
    parent: str | None = None


DIMENSIONS = {d.name: d for d in (
    Dimension("year", "transaction"), Dimension("quarter", "transaction", "year"),
    Dimension("month", "transaction", "quarter"),
    Dimension("category", "transaction"), Dimension("subcategory", "transaction", "category"),
    Dimension("product_id", "transaction", "subcategory"),
    Dimension("channel", "transaction"),
    Dimension("region", "customer"), Dimension("city", "customer", "region"),
    Dimension("tier", "customer"), Dimension("rfm_class", "customer"),
    Dimension("lifecycle_stage", "customer"), Dimension("account_manager_id", "customer"),
    Dimension("gender", "customer"), Dimension("customer_type", "customer"),
)}
HIERARCHIES = (("year", "quarter", "month"), ("region", "city"),
               ("category", "subcategory", "product_id"))
TX_MEASURES = ("revenue", "margin", "orders", "transactions", "buyers", "avg_order_value")
VALUE_COLUMNS = ("historical_value", "current_value", "potential_value", "profit",
                 "loyalty_index")
CUSTOMER_MEASURES = ("customers", "clv", "churn_risk", "nps", *VALUE_COLUMNS)


class Filter(BaseModel):
    dimension: str
    values: list[str] = Field(min_length=1)

    @field_validator("values")
    @classmethod
    def _printable(cls, values: list[str]) -> list[str]:
        """No NUL or lone surrogate in a value: the engine cannot compare them (a crash, not
        an empty answer)."""
        for v in values:
            if "\x00" in v or any(0xD800 <= ord(ch) <= 0xDFFF for ch in v):
                raise ValueError(f"filter value {v!r} holds a NUL or an unpaired surrogate")
        return values


class CubeQuery(BaseModel):
    measures: list[str] = Field(min_length=1)
    by: list[str] = Field(default_factory=list)
    where: list[Filter] = Field(default_factory=list)
    start: date | None = None
    end: date | None = None


def drill_down(dimension: str) -> str | None:
    """The next level below ``dimension`` in its hierarchy (None at the bottom)."""
    for h in HIERARCHIES:
        if dimension in h and h.index(dimension) + 1 < len(h):
            return h[h.index(dimension) + 1]
    return None


SCORE_DIMENSIONS = ("tier", "rfm_class", "lifecycle_stage")
PROFILE_DIMENSIONS = ("region", "city", "account_manager_id", "gender", "customer_type")


def _customers(engine: Engine, with_scores: bool = True) -> Table:
    cust = engine.table("customers")
    base = cust.select("customer_id", *PROFILE_DIMENSIONS)
    if not with_scores:
        return base
    if engine.warehouse.exists(SCORES_TABLE):
        s = engine.table(SCORES_TABLE)
        last = s.aggregate(r=s.run_id.max()).r.as_scalar()
        wanted = ["tier", "rfm_class", "lifecycle_stage", "clv", "p_alive", "churn_risk",
                  *VALUE_COLUMNS]
        s = s.filter(s.run_id == last).select(
            "customer_id", *[c for c in wanted if c in s.columns])
        j = base.left_join(s, "customer_id")
        return j.drop("customer_id_right")
    return base.mutate(tier=ibis.null("string"), rfm_class=ibis.null("string"),
                       lifecycle_stage=ibis.null("string"), clv=ibis.null("float64"),
                       p_alive=ibis.null("float64"),
                       **{c: ibis.null("float64") for c in VALUE_COLUMNS})


def _facts(engine: Engine, q: CubeQuery) -> Table:
    """Transaction facts with only the joins the query needs (products for product
    dimensions, customers for geography, the latest scores for tier / class / stage)."""
    dims = set(q.by) | {f.dimension for f in q.where}
    t = engine.table("transactions")
    if q.start:
        t = t.filter(t.transaction_time.cast("date") >= ibis.literal(q.start))
    if q.end:
        t = t.filter(t.transaction_time.cast("date") <= ibis.literal(q.end))
    t = t.select("transaction_id", "order_id", "customer_id", "transaction_time", "product_id",
                 "amount", "cost", "channel")  # geography comes from the customer
    if dims & {"category", "subcategory"}:
        p = engine.table("products").select("product_id", "category", "subcategory")
        t = t.left_join(p, "product_id").drop("product_id_right")
    if dims & (set(PROFILE_DIMENSIONS) | set(SCORE_DIMENSIONS)):
        c = _customers(engine, with_scores=bool(dims & set(SCORE_DIMENSIONS)))
        t = t.left_join(c, "customer_id").drop("customer_id_right")
    ts = t.transaction_time
    extra: dict[str, Any] = {"margin_line": t.amount - t.cost.fill_null(0),
                             "order_key": t.order_id.coalesce(t.transaction_id)}
    if dims & {"year", "quarter", "month"}:
        extra.update(year=ts.year().cast("string"),
                     quarter=ts.year().cast("string").concat("-Q", ts.quarter().cast("string")),
                     month=ts.strftime("%Y-%m"))
    return t.mutate(**extra)


def _validate(q: CubeQuery) -> str:
    unknown = [m for m in q.measures if m not in TX_MEASURES + CUSTOMER_MEASURES]
    if unknown:
        raise KehuInputError(_("Unknown measure(s) {m}. Measures: {all}.").format(
            m=", ".join(unknown), all=", ".join(TX_MEASURES + CUSTOMER_MEASURES)))
    dims = q.by + [f.dimension for f in q.where]
    bad = [d for d in dims if d not in DIMENSIONS]
    if bad:
        raise KehuInputError(_("Unknown dimension(s) {d}. Dimensions: {all}.").format(
            d=", ".join(bad), all=", ".join(DIMENSIONS)))
    cust_m = [m for m in q.measures if m in CUSTOMER_MEASURES]
    tx_m = [m for m in q.measures if m in TX_MEASURES]
    if cust_m and tx_m:
        raise KehuInputError(_("Customer measures ({c}) and transaction measures ({t}) cannot "
                               "be asked together; run two queries.").format(
            c=", ".join(cust_m), t=", ".join(tx_m)))
    if cust_m:
        tx_dims = [d for d in dims if DIMENSIONS[d].grain == "transaction"]
        if tx_dims:
            raise KehuInputError(_("Customer measures ({c}) cannot be cut by {d}: those are "
                                   "transaction dimensions.").format(
                c=", ".join(cust_m), d=", ".join(tx_dims)))
        return "customer"
    return "transaction"


def cube(engine: Engine, q: CubeQuery, use_aggregate: bool = True) -> Table:
    """The query's answer: one row per combination of ``by`` values, one column per measure.

    Transaction measures come from the analysis run's monthly aggregate when it is current and
    can answer the query exactly (:mod:`kehu.analytics.cube_aggregate`), otherwise from the
    transaction lines; ``use_aggregate=False`` always reads the lines.
    """
    from kehu.analytics import cube_aggregate

    grain = _validate(q)
    if (grain == "transaction" and use_aggregate and cube_aggregate.can_answer(q)
            and cube_aggregate.is_current(engine, cube_aggregate.table_for(q))):
        return cube_aggregate.answer(engine, q)
    if grain == "customer":
        t = _customers(engine)
        if "nps" in q.measures:
            s = engine.table("surveys")
            s = s.filter(s.kind == "nps")
            n = s.group_by("customer_id").aggregate(
                promoter=(s.score >= 9).cast("int64").sum(),
                detractor=(s.score <= 6).cast("int64").sum(), answers=s.count())
            t = t.left_join(n, "customer_id").drop("customer_id_right")
    else:
        t = _facts(engine, q)
    for f in q.where:
        t = t.filter(t[f.dimension].cast("string").isin(f.values))
    aggs: dict[str, Any] = {}
    for m in q.measures:
        if m == "revenue":
            aggs[m] = t.amount.sum()
        elif m == "margin":
            aggs[m] = t.margin_line.sum()
        elif m == "orders":
            aggs[m] = t.order_key.nunique()
        elif m == "transactions":
            aggs[m] = t.count()
        elif m == "buyers":
            aggs[m] = t.customer_id.nunique()
        elif m == "avg_order_value":
            aggs[m] = t.amount.sum() / t.order_key.nunique()
        elif m == "customers":
            aggs[m] = t.count()
        elif m == "clv":
            aggs[m] = t.clv.sum()
        elif m == "churn_risk":
            # the churn model's risk where a run scored it, else 1 − P(alive) from BG/NBD
            aggs[m] = (t.churn_risk.mean() if "churn_risk" in t.columns
                       else (1 - t.p_alive).mean())
        elif m == "loyalty_index":
            aggs[m] = t.loyalty_index.mean()
        elif m in VALUE_COLUMNS:
            aggs[m] = t[m].sum()
        elif m == "nps":
            answered = t.answers.fill_null(0).sum()
            aggs[m] = ibis.cases((answered > 0, 100.0 * (t.promoter.fill_null(0).sum()
                                                         - t.detractor.fill_null(0).sum())
                                  / answered), else_=ibis.null("float64"))
    if q.by:
        out = t.group_by([t[d].cast("string").name(d) for d in q.by]).aggregate(**aggs)
        return out.order_by(q.by)
    return t.aggregate(**aggs)
