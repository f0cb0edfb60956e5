"""Compile a :class:`~kehu.risk.rules.RiskRule` into an Ibis expression: values enter as
literals, columns are fixed by the rule type — no SQL text is built.

Each leaf condition measures one or more values per customer (an amount, a count, a ratio);
the compiled table holds, for every customer the rule flags, those values (the evidence)
and whether each comparison was met, so a flag always says why it fired.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import ibis
from ibis.expr.types import BooleanValue, Table

from kehu.analytics.payments import payment_features
from kehu.risk.rules import (
    AllOf,
    AnyOf,
    Condition,
    NotCondition,
    OverdueRule,
    PaymentRule,
    RiskRule,
    SharedKeyRule,
    SpikeRule,
    ThresholdRule,
    TimeOfDayRule,
    TxFilter,
)


@dataclass(frozen=True)
class Evidence:
    """One measured value a flag shows: compared with ``op threshold`` unless ``op`` is None
    (context only, e.g. the baseline a ratio was taken against)."""

    column: str
    measure: str
    op: str | None = None
    threshold: float | None = None


@dataclass
class RiskContext:
    """What rules are evaluated against (tables of one engine) and the day they look from."""

    transactions: Table
    customers: Table
    payments: Table
    as_of: date


@dataclass
class CompiledRule:
    rule: RiskRule
    #: flagged customers: ``customer_id``, one column per evidence and ``met_<column>``
    table: Table
    evidence: list[Evidence] = field(default_factory=list)


Predicate = Callable[[Table], BooleanValue]


def in_window(ts: Any, as_of: date, window_days: int) -> BooleanValue:
    """``ts`` falls on one of the ``window_days`` days ending with ``as_of``."""
    day = ts.cast("date")
    return (day > ibis.literal(as_of - timedelta(days=window_days))) & (
        day <= ibis.literal(as_of))


def filter_tx(tx: Table, where: TxFilter | None) -> Table:
    if where is None:
        return tx
    for col in ("kind", "product_id", "channel"):
        values = getattr(where, col)
        if values:
            tx = tx.filter(tx[col].isin([ibis.literal(v) for v in values]))
    return tx


def period_usage(tx: Table, as_of: date, window_days: int, periods: int) -> Table:
    """Amount and count per customer in ``periods + 1`` consecutive windows ending with
    ``as_of`` (``bucket`` 0 is the latest), with zeros for windows without activity, for every
    customer active in any of them."""
    day = tx.transaction_time.cast("date")
    age = ibis.literal(as_of).delta(day, unit="day")
    t = tx.filter((day <= ibis.literal(as_of)) & (age < window_days * (periods + 1)))
    t = t.mutate(bucket=(age // window_days).cast("int64"))
    sums = t.group_by(["customer_id", "bucket"]).aggregate(amount=t.amount.sum(),
                                                           n=t.count())
    buckets = ibis.memtable({"bucket": list(range(periods + 1))}).cast({"bucket": "int64"})
    grid = sums.select("customer_id").distinct().cross_join(buckets)
    g = grid.left_join(sums, ["customer_id", "bucket"]).drop("customer_id_right",
                                                              "bucket_right")
    return g.mutate(amount=g.amount.fill_null(0.0).cast("float64"),
                    n=g.n.fill_null(0).cast("int64"))


class _Builder:
    """Collects one table per leaf condition while compiling the boolean tree."""

    def __init__(self, ctx: RiskContext) -> None:
        self.ctx = ctx
        self.leaves: list[tuple[Table, dict[str, Any]]] = []
        self.evidence: list[Evidence] = []
        self._payments: Table | None = None

    def leaf(self, table: Table, ev: list[Evidence], fills: dict[str, Any]) -> Predicate:
        self.leaves.append((table, fills))
        self.evidence.extend(ev)
        compared = [e for e in ev if e.op is not None]

        def met(w: Table) -> BooleanValue:
            out: BooleanValue = ibis.literal(True)
            for e in compared:
                out = out & w[f"met_{e.column}"]
            return out

        return met

    def condition(self, c: Condition) -> Predicate:
        if isinstance(c, AllOf | AnyOf):
            parts = [self.condition(x) for x in (c.all if isinstance(c, AllOf) else c.any)]
            both = isinstance(c, AllOf)

            def combine(w: Table) -> BooleanValue:
                out = parts[0](w)
                for p in parts[1:]:
                    out = (out & p(w)) if both else (out | p(w))
                return out

            return combine
        if isinstance(c, NotCondition):
            inner = self.condition(c.not_)
            return lambda w: ~inner(w)
        i = len(self.leaves)
        if isinstance(c, ThresholdRule):
            return self._threshold(c, i)
        if isinstance(c, SpikeRule):
            return self._spike(c, i)
        if isinstance(c, SharedKeyRule):
            return self._shared(c, i)
        if isinstance(c, TimeOfDayRule):
            return self._time_of_day(c, i)
        if isinstance(c, OverdueRule):
            return self._overdue(c, i)
        if isinstance(c, PaymentRule):
            return self._payment(c, i)
        raise AssertionError(c)

    def _tx_window(self, where: TxFilter | None, window_days: int) -> Table:
        tx = filter_tx(self.ctx.transactions, where)
        return tx.filter(in_window(tx.transaction_time, self.ctx.as_of, window_days))

    def _threshold(self, c: ThresholdRule, i: int) -> Predicate:
        s = c.threshold
        t = self._tx_window(s.where, s.window_days)
        col = f"l{i}_{s.measure}_{s.window_days}d"
        value = t.amount.sum() if s.measure == "amount" else t.count()
        agg = t.group_by("customer_id").aggregate(**{col: value.cast("float64")})
        return self.leaf(agg, [Evidence(col, col.split("_", 1)[1], ">=", s.at_least)],
                         {col: 0.0})

    def _spike(self, c: SpikeRule, i: int) -> Predicate:
        s = c.spike
        tx = filter_tx(self.ctx.transactions, s.where)
        u = period_usage(tx, self.ctx.as_of, s.window_days, s.trailing_periods)
        m = u.amount if s.measure == "amount" else u.n.cast("float64")
        g = u.group_by("customer_id").aggregate(cur=m.max(where=u.bucket == 0),
                                                base=m.median(where=u.bucket > 0))
        ratio, cur, base = (f"l{i}_{s.measure}_ratio", f"l{i}_{s.measure}_{s.window_days}d",
                            f"l{i}_trailing_median")
        g = g.select("customer_id", **{
            ratio: ibis.cases((g.base > s.min_baseline, g.cur / g.base),
                              else_=ibis.null("float64")),
            cur: g.cur.cast("float64"), base: g.base.cast("float64")})
        return self.leaf(g, [Evidence(ratio, f"{s.measure}_ratio", ">=", s.factor),
                             Evidence(cur, f"{s.measure}_{s.window_days}d"),
                             Evidence(base, f"trailing_median_{s.trailing_periods}x"
                                            f"{s.window_days}d")],
                         {cur: 0.0})

    def _shared(self, c: SharedKeyRule, i: int) -> Predicate:
        s = c.shared_key
        cust = self.ctx.customers
        raw = cust[s.key].cast("string")
        if s.key == "phone":
            d = raw.re_replace(r"[^0-9]", "")
            key = ibis.cases(((d.length() == 13) & d.startswith("86"), d.substr(2)), else_=d)
        elif s.key == "email":
            key = raw.lower().strip()
        else:
            key = raw.upper().strip()
        t = cust.select("customer_id", k=key)
        t = t.filter(t.k.notnull() & (t.k != ""))
        col = f"l{i}_customers_sharing_{s.key}"
        counts = t.group_by("k").aggregate(_n=t.customer_id.nunique())
        j = t.inner_join(counts, "k")
        out = j.select("customer_id", **{col: j._n.cast("float64")})
        return self.leaf(out, [Evidence(col, f"customers_sharing_{s.key}", ">=",
                                        s.min_customers)], {col: 0.0})

    def _time_of_day(self, c: TimeOfDayRule, i: int) -> Predicate:
        s = c.time_of_day
        t = self._tx_window(s.where, s.window_days)
        h = t.transaction_time.hour()
        a, b = s.hours
        t = t.filter(((h >= a) & (h < b)) if a < b else ((h >= a) | (h < b)))
        col = f"l{i}_count_{a}h_{b}h_{s.window_days}d"
        agg = t.group_by("customer_id").aggregate(**{col: t.count().cast("float64")})
        return self.leaf(agg, [Evidence(col, col.split("_", 1)[1], ">=", s.min_count)],
                         {col: 0.0})

    def _features(self) -> Table:
        if self._payments is None:
            self._payments = payment_features(self.ctx.payments, self.ctx.as_of)
        return self._payments

    def _overdue(self, c: OverdueRule, i: int) -> Predicate:
        s = c.overdue
        f = self._features()
        amt, days = f"l{i}_unpaid_overdue_amount", f"l{i}_oldest_overdue_days"
        t = f.select("customer_id", **{amt: f.unpaid_overdue_amount.cast("float64"),
                                       days: f.oldest_overdue_days.cast("float64")})
        return self.leaf(t, [Evidence(amt, "unpaid_overdue_amount", ">=", s.min_amount),
                             Evidence(days, "oldest_overdue_days", ">=", s.min_days)],
                         {amt: 0.0, days: 0.0})

    def _payment(self, c: PaymentRule, i: int) -> Predicate:
        s = c.payment
        f = self._features()
        col = f"l{i}_{s.feature}"
        t = f.select("customer_id", **{col: f[s.feature].cast("float64")})
        return self.leaf(t, [Evidence(col, s.feature, ">=", s.at_least)], {})


def compile_rule(rule: RiskRule, ctx: RiskContext) -> CompiledRule:
    """The customers ``rule`` flags as of ``ctx.as_of``, with the evidence columns."""
    b = _Builder(ctx)
    predicate = b.condition(rule.when)
    wide = ctx.customers.select("customer_id").distinct()
    for table, _fills in b.leaves:
        wide = wide.left_join(table, "customer_id").drop("customer_id_right")
    fills = {c: wide[c].fill_null(v) for _t, f in b.leaves for c, v in f.items()}
    if fills:
        wide = wide.mutate(**fills)
    ops = {">=": "__ge__", ">": "__gt__", "<=": "__le__", "<": "__lt__"}
    mets = {f"met_{e.column}": getattr(wide[e.column], ops[e.op])(e.threshold).fill_null(False)
            for e in b.evidence if e.op is not None}
    wide = wide.mutate(**mets)
    flagged = wide.filter(predicate(wide))
    cols = [e.column for e in b.evidence] + list(mets)
    return CompiledRule(rule, flagged.select("customer_id", *cols), list(b.evidence))
