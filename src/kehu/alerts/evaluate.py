"""Compile an alert rule into an Ibis expression over the warehouse as of a day and read its
firings: one row per condition that holds, with the customer, the object it is about and the
facts measured (what a task title and description show).

Engine-agnostic: only Ibis operations, values enter as literals, no SQL text.

>>> import tempfile
>>> from datetime import date
>>> import pyarrow as pa
>>> from kehu.warehouse import Engine, Warehouse
>>> from kehu.model import ENTITIES
>>> wh = Warehouse(tempfile.mkdtemp())
>>> s = ENTITIES["customers"].arrow_schema()
>>> rows = {"customer_id": ["A", "B"], "name": ["张三", "李四"],
...         "birth_date": [date(1990, 1, 2), date(1985, 6, 1)]}
>>> _ = wh.append("customers", pa.table({f.name: rows.get(f.name, [None] * 2) for f in s},
...                                     schema=s))
>>> rule = AlertRules.parse([{"name": "bd", "kind": "birthday", "days_ahead": 5}]).rules[0]
>>> [(f.customer_id, f.object_key, f.facts["days"]) for f in
...  evaluate(Engine(wh), rule, date(2025, 12, 30)).firings]
[('A', '2026', 3)]
"""

from __future__ import annotations

import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import ibis
from ibis.expr.types import Table

from kehu.alerts.spec import (
    COMMON_FACTS,
    FACTS,
    AlertRule,
    AlertRules,
    AnniversaryRule,
    BirthdayRule,
    ChurnRiskUpRule,
    ComplaintUnresolvedRule,
    MaturityRule,
    PaymentOverdueRule,
    TierChangeRule,
    UsageDropRule,
)
from kehu.analytics.tiers import TierScheme, tiers_as_of
from kehu.i18n import _, get_locale

if TYPE_CHECKING:
    from kehu.warehouse import Engine

__all__ = ["AlertRules", "Compiled", "Firing", "Outcome", "compile_rule", "evaluate",
           "latest_runs", "render"]

#: the columns whose values identify the object a firing is about (with the customer)
OBJECT_KEY: dict[str, tuple[str, ...]] = {
    "maturity": ("contract_id", "end_date"), "usage_drop": (),
    "churn_risk_up": ("previous_run_id", "run_id"),
    "tier_change": ("previous_run_id", "run_id"),
    "complaint_unresolved": ("ticket_id",), "payment_overdue": ("payment_id",),
    "birthday": ("year",), "anniversary": ("year",),
}
#: facts added when a firing is shown (localised), not measured by the expression
DISPLAY_FACTS = frozenset({"tier_from_name", "tier_to_name"})
SCHEME = TierScheme()


@dataclass(frozen=True)
class Firing:
    """One condition that holds: a customer and the object it is about."""

    rule: str
    kind: str
    customer_id: str
    object_key: str
    facts: dict[str, Any]
    customer_name: str | None = None
    account_manager_id: str | None = None

    @property
    def dedup_key(self) -> str:
        """``rule|kind|customer|object``: the identity of the condition.

        >>> Firing("m", "maturity", "C1", "K1@2026-01-31", {}).dedup_key
        'm|maturity|C1|K1@2026-01-31'
        """
        key = f"{self.rule}|{self.kind}|{self.customer_id}|{self.object_key}"
        if len(key) > 400:
            import hashlib

            key = key[:360] + "#" + hashlib.sha1(key.encode()).hexdigest()
        return key


@dataclass
class Compiled:
    """A rule as an expression: ``table`` has ``customer_id``, ``customer_name``,
    ``account_manager_id`` and the kind's facts; None when the rule cannot be evaluated
    (``note`` says why, e.g. fewer than two analysis runs)."""

    rule: AlertRule
    table: Table | None
    note: str | None = None


@dataclass
class Outcome:
    firings: list[Firing] = field(default_factory=list)
    note: str | None = None


def _days(later: Any, earlier: Any) -> Any:
    return later.delta(earlier, unit="day").cast("int64")


def _maturity(r: MaturityRule, eng: Engine, as_of: date) -> Table:
    c = eng.table("contracts")
    d = ibis.literal(as_of)
    days = _days(c.end_date, d)
    c = c.filter(c.end_date.notnull() & (days >= 0) & (days <= r.days_ahead))
    if r.statuses is not None:
        c = c.filter(c.status.isnull() | c.status.isin(r.statuses))
    if r.product_ids is not None:
        c = c.filter(c.product_id.isin(r.product_ids))
    return c.select("customer_id", "contract_id", "product_id", "status", "end_date",
                    days=_days(c.end_date, d), monthly_fee=c.monthly_fee.cast("float64"),
                    balance=c.balance.cast("float64"))


def _usage_drop(r: UsageDropRule, eng: Engine, as_of: date,
                scheme: TierScheme | None = None) -> Table:
    tx = eng.table("transactions")
    day = tx.transaction_time.cast("date")
    recent_start = as_of - timedelta(days=r.recent_days)
    base_start = recent_start - timedelta(days=r.baseline_days)
    w = tx.filter((tx.kind.isnull() | (tx.kind != "refund")) & (day > ibis.literal(base_start))
                  & (day <= ibis.literal(as_of)))
    recent = w.transaction_time.cast("date") > ibis.literal(recent_start)
    if r.measure == "amount":
        g = w.group_by("customer_id").aggregate(rt=w.amount.sum(where=recent),
                                                bt=w.amount.sum(where=~recent))
    else:
        g = w.group_by("customer_id").aggregate(rt=w.count(where=recent),
                                                bt=w.count(where=~recent))
    g = g.select("customer_id",
                 recent=g.rt.cast("float64").fill_null(0.0) / r.recent_days,
                 baseline=g.bt.cast("float64").fill_null(0.0) / r.baseline_days)
    g = g.filter((g.baseline > 0) & (g.baseline > r.min_baseline))
    g = g.mutate(drop_pct=(1 - g.recent / g.baseline) * 100)
    g = g.filter(g.drop_pct >= r.pct)
    tiers = tiers_as_of(tx, eng.table("customers"), as_of, scheme or SCHEME).select(
        "customer_id", "tier")
    if r.key_customers is not None:
        tiers = tiers.filter(tiers.tier.isin(r.key_customers.codes()))
    j = g.inner_join(tiers, "customer_id")
    return j.select("customer_id", "recent", "baseline", "drop_pct", "tier",
                    recent_days=ibis.literal(r.recent_days, "int64"),
                    baseline_days=ibis.literal(r.baseline_days, "int64"),
                    days=ibis.literal(r.recent_days, "int64"))


def latest_runs(eng: Engine, as_of: date) -> list[str]:
    """The ids of the latest two complete analysis runs as of ``as_of`` or earlier, newest
    first (by as-of day, then run id)."""
    from kehu.analytics.run import RUNS_TABLE, SCORES_TABLE

    wh = eng.warehouse
    if not wh.exists(SCORES_TABLE):
        return []
    s = eng.table(SCORES_TABLE)
    runs = s.filter(s.as_of <= ibis.literal(as_of)).select("run_id", "as_of").distinct()
    if wh.exists(RUNS_TABLE):
        runs = runs.semi_join(eng.table(RUNS_TABLE).select("run_id"), "run_id")
    got = eng.execute_arrow(runs.order_by([ibis.desc("as_of"), ibis.desc("run_id")]).limit(2))
    return [str(x) for x in got.column("run_id").to_pylist()]


def _two_runs(eng: Engine, as_of: date, column: str) -> tuple[Table, Table, str, str] | str:
    from kehu.analytics.run import SCORES_TABLE

    ids = latest_runs(eng, as_of)
    if len(ids) < 2:
        return _("needs two analysis runs as of {d} or earlier; found {n}. Run 'kehu run' "
                 "again later.").format(d=as_of, n=len(ids))
    s = eng.table(SCORES_TABLE)
    if column not in s.columns:
        return _("the analysis runs have no {col} column.").format(col=column)
    cur = s.filter(s.run_id == ids[0]).select("customer_id", now=s[column])
    prev = s.filter(s.run_id == ids[1]).select("customer_id", before=s[column])
    return cur, prev, ids[0], ids[1]


def _rank(v: Any) -> Any:
    return ibis.cases(*[(v == t.code, i) for i, t in enumerate(SCHEME.tiers)],
                      else_=len(SCHEME.tiers))


def _churn_risk_up(r: ChurnRiskUpRule, eng: Engine, as_of: date) -> Table | str:
    got = _two_runs(eng, as_of, "churn_risk")
    if isinstance(got, str):
        return got
    cur, prev, run_id, prev_id = got
    j = cur.inner_join(prev, "customer_id")
    j = j.filter(j.now.notnull() & j.before.notnull())
    j = j.select("customer_id", risk=j.now.cast("float64"), previous_risk=j.before.cast(
        "float64"))
    j = j.mutate(change=j.risk - j.previous_risk)
    cond = j.change >= r.delta
    if r.min_risk is not None:
        cond = cond & (j.risk >= r.min_risk)
    return j.filter(cond).mutate(run_id=ibis.literal(run_id),
                                 previous_run_id=ibis.literal(prev_id))


def _tier_change(r: TierChangeRule, eng: Engine, as_of: date) -> Table | str:
    got = _two_runs(eng, as_of, "tier")
    if isinstance(got, str):
        return got
    cur, prev, run_id, prev_id = got
    j = cur.inner_join(prev, "customer_id")
    j = j.filter(j.now.notnull() & j.before.notnull() & (j.now != j.before))
    j = j.select("customer_id", tier_from=j.before.cast("string"), tier_to=j.now.cast("string"),
                 direction=ibis.cases((_rank(j.now) < _rank(j.before), "up"), else_="down"))
    if r.direction != "any":
        j = j.filter(j.direction == r.direction)
    return j.mutate(run_id=ibis.literal(run_id), previous_run_id=ibis.literal(prev_id))


def _complaint(r: ComplaintUnresolvedRule, eng: Engine, as_of: date) -> Table:
    t = eng.table("tickets")
    d = ibis.literal(as_of)
    opened = t.opened_time.cast("date")
    resolved_by = t.resolved_time.notnull() & (t.resolved_time.cast("date") <= d)
    # resolved without a time: the status says so (only the current state is known)
    closed_untimed = (t.resolved_time.isnull() & (t.status == "resolved")).fill_null(False)
    t = t.filter((opened <= d) & ~resolved_by & ~closed_untimed
                 & (_days(d, opened) >= r.days))
    if r.ticket_kind is not None:
        t = t.filter(t.kind.isin(r.ticket_kind))
    if r.category is not None:
        t = t.filter(t.category.isin(r.category))
    return t.select("customer_id", "ticket_id", "category", ticket_kind=t.kind,
                    opened=t.opened_time.cast("date"),
                    days=_days(d, t.opened_time.cast("date")))


def _overdue(r: PaymentOverdueRule, eng: Engine, as_of: date) -> Table:
    p = eng.table("payments")
    d = ibis.literal(as_of)
    p = p.filter(p.invoice_date <= d)
    due = p.due_date.fill_null(p.invoice_date + ibis.interval(days=r.default_terms_days))
    paid_by = p.paid_date.notnull() & (p.paid_date <= d)
    paid = ibis.cases((paid_by, p.amount_paid.fill_null(p.amount_due)), else_=0.0)
    t = p.select("customer_id", "payment_id", due_date=due,
                 amount_due=p.amount_due.cast("float64"),
                 outstanding=(p.amount_due - paid).cast("float64"), days=_days(d, due))
    return t.filter((t.days >= r.days) & (t.outstanding > 0)
                    & (t.outstanding >= r.min_amount))


def _leap(y: int) -> bool:
    return y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)


def _yearly(eng: Engine, as_of: date, column: str, days_ahead: int) -> Table:
    """The next occurrence (this year's or next year's) of the day and month of ``column``
    within ``days_ahead`` days: ``date``, ``days``, ``year`` and ``years`` since."""
    c = eng.table("customers")
    c = c.filter(c[column].notnull())
    d = ibis.literal(as_of)
    parts = []
    for y in (as_of.year, as_of.year + 1):
        m, dd = c[column].month(), c[column].day()
        if not _leap(y):  # 29 February falls on the 28th in other years
            dd = ibis.cases(((m == 2) & (dd == 29), 28), else_=dd)
        when = ibis.date(ibis.literal(y), m, dd)
        parts.append(c.select("customer_id", src=c[column], date=when,
                              year=ibis.literal(y, "int64"),
                              years=(ibis.literal(y) - c[column].year()).cast("int64")))
    u = ibis.union(*parts)
    u = u.mutate(days=_days(u.date, d))
    return u.filter((u.days >= 0) & (u.days <= days_ahead))


def _birthday(r: BirthdayRule, eng: Engine, as_of: date) -> Table:
    t = _yearly(eng, as_of, "birth_date", r.days_ahead)
    return t.filter(t.years >= 0).select("customer_id", "date", "days", "year", age=t.years)


def _anniversary(r: AnniversaryRule, eng: Engine, as_of: date) -> Table:
    t = _yearly(eng, as_of, "signup_date", r.days_ahead)
    return t.filter(t.years >= r.min_years).select("customer_id", "date", "days", "year",
                                                   "years", signup_date=t.src)


_COMPILERS: dict[type, Callable[[Any, Engine, date], Table | str]] = {
    MaturityRule: _maturity, UsageDropRule: _usage_drop, ChurnRiskUpRule: _churn_risk_up,
    TierChangeRule: _tier_change, ComplaintUnresolvedRule: _complaint,
    PaymentOverdueRule: _overdue, BirthdayRule: _birthday, AnniversaryRule: _anniversary,
}


def compile_rule(rule: AlertRule, eng: Engine, as_of: date,
                 scheme: TierScheme | None = None) -> Compiled:
    """The expression of the firings of ``rule`` as of ``as_of``, with the customer's name
    and account manager (customers with a churn event by then left out when
    ``skip_churned``). ``scheme``: the tier scheme for rules that compute tiers (default:
    the built-in one; the alert service passes the workspace's)."""
    if isinstance(rule, UsageDropRule):
        got: Table | str = _usage_drop(rule, eng, as_of, scheme)
    else:
        got = _COMPILERS[type(rule)](rule, eng, as_of)
    if isinstance(got, str):
        return Compiled(rule, None, got)
    t = got
    if rule.skip_churned:
        ch = eng.table("churn_events")
        gone = ch.filter(ch.churn_date <= ibis.literal(as_of)).select("customer_id")
        t = t.anti_join(gone, "customer_id")
    cust = eng.table("customers")
    info = cust.select("customer_id", customer_name=cust.name,
                       account_manager_id=cust.account_manager_id)
    j = t.left_join(info, "customer_id")
    j = j.drop(*[c for c in j.columns if c.endswith("_right")])
    return Compiled(rule, j)


def evaluate(eng: Engine, rule: AlertRule, as_of: date,
             scheme: TierScheme | None = None) -> Outcome:
    """The firings of ``rule`` as of ``as_of``, by customer and object (duplicates, e.g.
    from a customer listed twice, merged)."""
    c = compile_rule(rule, eng, as_of, scheme)
    if c.table is None:
        return Outcome([], c.note)
    rows = eng.execute_arrow(c.table).to_pylist()
    keys = OBJECT_KEY[rule.kind]
    seen: dict[str, Firing] = {}
    for row in rows:
        cid = row.pop("customer_id")
        if cid is None:
            continue
        name = row.pop("customer_name", None)
        am = row.pop("account_manager_id", None)
        obj = "@".join(_key_text(row[k]) for k in keys) if keys else "-"
        f = Firing(rule.name, rule.kind, str(cid), obj, row, name, am)
        seen.setdefault(f.dedup_key, f)
    return Outcome(sorted(seen.values(), key=lambda f: (f.customer_id, f.object_key)))


def _key_text(v: Any) -> str:
    if isinstance(v, datetime):
        return v.date().isoformat()
    if isinstance(v, date):
        return v.isoformat()
    return str(v)


# -- showing a firing -----------------------------------------------------------------------


class _SafeFormatter(string.Formatter):
    """Formats only plain names (no attribute or index access), with readable numbers."""

    def get_field(self, field_name: str, args: Any, kwargs: Any) -> Any:
        return self.get_value(field_name, args, kwargs), field_name

    def format_field(self, value: Any, format_spec: str) -> str:
        if value is None:
            return "-"
        if isinstance(value, datetime):
            value = value.date()
        if isinstance(value, float) and not format_spec:
            return f"{value:,.2f}"
        try:
            return format(value, format_spec)
        except (ValueError, TypeError):
            return str(value)


def display_facts(f: Firing, as_of: date, scheme: TierScheme | None = None
                  ) -> dict[str, Any]:
    """Every value a title can use, tier names in the current language."""
    out: dict[str, Any] = {"customer_id": f.customer_id,
                           "customer_name": f.customer_name or f.customer_id,
                           "rule": f.rule, "as_of": as_of, **f.facts}
    if f.kind == "tier_change":
        zh = get_locale().startswith("zh")
        names = {t.code: (t.name_zh if zh else t.name_en) for t in (scheme or SCHEME).tiers}
        for k in ("tier_from", "tier_to"):
            out[f"{k}_name"] = names.get(str(out.get(k)), out.get(k))
    return out


def render(template: str, values: Mapping[str, Any]) -> str:
    """``template`` with its placeholders filled (unknown ones left as they are).

    >>> render("{customer_name}: {drop_pct:.0f}% ({baseline})", {"customer_name": "张三",
    ...        "drop_pct": 62.4, "baseline": 1234.5})
    '张三: 62% (1,234.50)'
    """
    allowed = set(values) | set(COMMON_FACTS) | {f for v in FACTS.values() for f in v}

    class _Missing(dict[str, Any]):
        def __missing__(self, key: str) -> str:
            return "{" + key + "}"

    vals = _Missing({k: v for k, v in values.items() if k in allowed})
    try:
        return _SafeFormatter().vformat(template, (), vals)
    except (ValueError, IndexError, KeyError):
        return template
