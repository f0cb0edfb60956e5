"""Compile a :class:`SegmentSpec` into an Ibis expression over the warehouse — values enter
as Ibis literals, fields are checked against the known columns: no SQL text is built."""

from __future__ import annotations

from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

import ibis
from ibis.expr.types import BooleanValue, Table

from kehu.analytics.run import SCORES_TABLE
from kehu.errors import KehuInputError
from kehu.i18n import _
from kehu.segments.spec import (
    AllOf,
    AnyOf,
    Bought,
    BoughtRule,
    FieldRule,
    NoContactRule,
    NotBoughtRule,
    NotRule,
    Rule,
    SegmentSpec,
)

if TYPE_CHECKING:
    from kehu.warehouse import Engine

SCORE_FIELDS = ("tier", "spend", "margin", "recency_days", "frequency", "repeat_purchases",
                "monetary_total", "monetary_avg", "tenure_days", "r_score", "f_score",
                "m_score", "rfm_score", "trend_ratio", "trend", "rfm_class", "lifecycle_stage",
                "p_alive", "expected_purchases_12m", "expected_spend", "clv", "revenue",
                "loyalty_index",
                "profit", "unprofitable", "historical_value", "current_value",
                "potential_value", "total_value", "churn_risk")


class Context:
    """What a segment is evaluated against: customers joined with their latest scores."""

    def __init__(self, engine: Engine, as_of: date | None = None) -> None:
        self.engine = engine
        cust = engine.table("customers")
        scores = None
        if engine.warehouse.exists(SCORES_TABLE):
            s = engine.table(SCORES_TABLE)
            latest = s.filter(s.as_of <= ibis.literal(as_of)) if as_of else s
            last_run = latest.aggregate(r=latest.run_id.max()).r.as_scalar()
            scores = s.filter(s.run_id == last_run).select(
                "customer_id", *[f for f in SCORE_FIELDS if f in s.columns])
        self.base: Table = cust if scores is None else cust.left_join(
            scores, "customer_id").drop("customer_id_right")
        tx = engine.table("transactions")
        self.as_of = as_of or (tx.transaction_time.max().to_pyarrow().as_py() or
                               date.today())
        if hasattr(self.as_of, "date"):
            self.as_of = self.as_of.date()


def compile_segment(spec: SegmentSpec, ctx: Context) -> Table:
    """The segment's members: a table of ``customer_id``."""
    cond = _rule(spec.rule, ctx)
    return ctx.base.filter(cond).select("customer_id")


def _rule(rule: Rule, ctx: Context) -> BooleanValue:
    if isinstance(rule, FieldRule):
        return _field(rule, ctx)
    if isinstance(rule, AllOf):
        out = _rule(rule.all[0], ctx)
        for r in rule.all[1:]:
            out = out & _rule(r, ctx)
        return out
    if isinstance(rule, AnyOf):
        out = _rule(rule.any[0], ctx)
        for r in rule.any[1:]:
            out = out | _rule(r, ctx)
        return out
    if isinstance(rule, NotRule):
        return ~_rule(rule.not_, ctx)
    if isinstance(rule, BoughtRule):
        return ctx.base.customer_id.isin(_buyers(rule.bought, ctx))
    if isinstance(rule, NotBoughtRule):
        return ~ctx.base.customer_id.isin(_buyers(rule.not_bought, ctx))
    if isinstance(rule, NoContactRule):
        return ~ctx.base.customer_id.isin(_contacted(rule, ctx))
    raise AssertionError(rule)


def _field(rule: FieldRule, ctx: Context) -> BooleanValue:
    cols = ctx.base.columns
    if rule.field not in cols:
        raise KehuInputError(_("Unknown segment field '{f}'. Fields: {fields}. Scores such as "
                               "rfm_class, tier or clv exist after 'kehu run'.").format(
            f=rule.field, fields=", ".join(c for c in cols if not c.startswith("_"))))
    col = ctx.base[rule.field]
    typ = col.type()
    v = rule.value

    def lit(x: Any) -> Any:
        """The value as a literal of the field's type, checked here (not in the database)."""
        try:
            if typ.is_date():
                return ibis.literal(date.fromisoformat(str(x)))
            if typ.is_boolean():
                if not isinstance(x, bool):
                    raise TypeError(x)
                return ibis.literal(x)
            if typ.is_integer():
                return ibis.literal(int(x), type=typ)
            if typ.is_numeric():
                return ibis.literal(float(x), type=typ)
            return ibis.literal(str(x), type=typ)
        except (ValueError, TypeError) as exc:
            raise KehuInputError(_("Segment field '{f}' is {t}; {v!r} does not fit.").format(
                f=rule.field, t=typ, v=x)) from exc

    op = rule.op
    expr: Any
    if op == "is_null":
        return col.isnull()
    if op == "not_null":
        return col.notnull()
    if op == "in":
        expr = col.isin([lit(x) for x in v])
    elif op == "not_in":
        expr = ~col.isin([lit(x) for x in v])
    elif op == "between":
        expr = col.between(lit(v[0]), lit(v[1]))
    elif op == "contains":
        if not typ.is_string():
            raise KehuInputError(_("'contains' needs a text field; '{f}' is {t}.").format(
                f=rule.field, t=typ))
        expr = col.contains(str(v))
    else:
        ops = {"=": col.__eq__, "!=": col.__ne__, "<": col.__lt__, "<=": col.__le__,
               ">": col.__gt__, ">=": col.__ge__}
        expr = ops[op](lit(v))
    return expr.fill_null(False)


def _buyers(b: Bought, ctx: Context) -> Any:
    tx = ctx.engine.table("transactions")
    since = ibis.literal(ctx.as_of - timedelta(days=b.within_days))
    day = tx.transaction_time.cast("date")
    t = tx.filter((day > since) & (day <= ibis.literal(ctx.as_of)))
    if b.product_id:
        t = t.filter(t.product_id == ibis.literal(b.product_id))
    if b.category:
        p = ctx.engine.table("products")
        cat = ibis.literal(b.category)
        in_cat = p.filter((p.category == cat) | (p.subcategory == cat) | (p.category3 == cat))
        t = t.filter(t.product_id.isin(in_cat.product_id))
    g = t.group_by("customer_id").aggregate(n=t.count())
    return g.filter(g.n >= b.min_times).customer_id


def _contacted(rule: NoContactRule, ctx: Context) -> Any:
    nc = rule.no_contact
    since = ibis.literal(ctx.as_of - timedelta(days=nc.within_days))
    end = ibis.literal(ctx.as_of)
    it = ctx.engine.table("interactions")
    cc = ctx.engine.table("campaign_contacts")
    i = it.filter((it.interaction_time.cast("date") > since)
                  & (it.interaction_time.cast("date") <= end))
    c = cc.filter((cc.contact_time.cast("date") > since) & (cc.contact_time.cast("date") <= end)
                  & (cc.group == "treatment"))
    if nc.channel:
        i = i.filter(i.channel == ibis.literal(nc.channel))
        c = c.filter(c.channel == ibis.literal(nc.channel))
    return i.select("customer_id").union(c.select("customer_id")).customer_id
