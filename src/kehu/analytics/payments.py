"""Payment behaviour per customer as of a date, a points scorecard for payment risk and credit
terms chosen by rule — Ibis expressions over the ``payments`` table.

Definitions, as of day ``d`` (an invoice exists once ``invoice_date <= d``; a missing due date
is the invoice date + ``default_terms_days``; a payment dated after ``d`` counts as not made
yet, so nothing after ``d`` enters the features):

- *due* invoice: ``due_date < d`` (its payment was expected by ``d``);
- *late*: a due invoice paid after its due date, or not paid by ``d``;
- ``days_late``: paid − due for a late paid invoice, d − due for an unpaid one, else 0;
- ``invoices`` (issued), ``due_invoices``, ``late_invoices``, ``late_share`` = late / due;
- ``mean_days_late`` (over the late invoices), ``max_days_late`` (over the due ones);
- ``partial_payments``: invoices paid by ``d`` with ``amount_paid < amount_due``;
- ``unpaid_overdue_amount``: what is still owed on due invoices (amount due − amount paid by
  ``d``); ``oldest_overdue_days``: d − the oldest due date still owed (0 when nothing is);
- ``*_12m``: the same counts for invoices due in the last 365 days;
- trend: ``late_share_recent`` (due in the last ``recent_days``) vs ``late_share_before``;
  ``late_trend`` = recent − before.

**Why a points scorecard, not a fitted model.** The risk score is the sum of points a
customer earns on a few of these features (:class:`PaymentScorecard`, data, not code), capped
at 100. Every point is traceable to a measured value, so a collector or a customer can be told
why; it needs no labelled history of defaults (a new workspace has none, and a model fitted on
the demo's own planted patterns would only learn the generator); and it does not drift between
runs. Its ranking can be checked against what happened later (the tests do: score at a past
cut-off vs "90+ days overdue in the next 180 days").

>>> import ibis
>>> from datetime import date
>>> p = ibis.memtable({"customer_id": ["a", "a", "b"], "invoice_date": [date(2025, 1, 1),
...     date(2025, 2, 1), date(2025, 1, 1)], "due_date": [date(2025, 1, 21),
...     date(2025, 2, 21), date(2025, 1, 21)], "paid_date": [date(2025, 1, 10), None,
...     date(2025, 3, 1)], "amount_due": [100.0, 80.0, 50.0], "amount_paid": [100.0, None, 50.0]})
>>> f = payment_features(p, date(2025, 3, 31)).order_by("customer_id").to_pandas()
>>> f[["late_invoices", "max_days_late", "unpaid_overdue_amount"]].to_dict("list")
{'late_invoices': [1, 1], 'max_days_late': [38, 39], 'unpaid_overdue_amount': [80.0, 0.0]}
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any, Literal

import ibis
from ibis.expr.types import BooleanValue, Table
from pydantic import BaseModel, ConfigDict, Field, model_validator

from kehu.i18n import _
from kehu.specfiles import read_yaml, validated

FEATURES = ("invoices", "due_invoices", "late_invoices", "late_share", "mean_days_late",
            "max_days_late", "partial_payments", "unpaid_overdue_amount",
            "oldest_overdue_days", "invoices_12m", "late_invoices_12m", "late_share_12m",
            "late_share_recent", "late_share_before", "late_trend")
Feature = Literal["invoices", "due_invoices", "late_invoices", "late_share", "mean_days_late",
                  "max_days_late", "partial_payments", "unpaid_overdue_amount",
                  "oldest_overdue_days", "invoices_12m", "late_invoices_12m", "late_share_12m",
                  "late_share_recent", "late_share_before", "late_trend", "risk_score"]
RISK_CLASSES = ("low", "medium", "high")


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def payment_features(payments: Table, as_of: date, recent_days: int = 180,
                     default_terms_days: int = 30) -> Table:
    """Per customer with an invoice by ``as_of``: the features of the module docstring."""
    d = ibis.literal(as_of)
    p = payments.filter(payments.invoice_date <= d)
    due = p.due_date.fill_null(p.invoice_date + ibis.interval(days=default_terms_days))
    paid_by = p.paid_date.notnull() & (p.paid_date <= d)
    paid_amt = ibis.cases((paid_by, p.amount_paid.fill_null(p.amount_due)), else_=0.0)
    is_due = due < d
    late = is_due & (~paid_by | (p.paid_date > due))
    days_late = ibis.cases(
        (is_due & paid_by & (p.paid_date > due), p.paid_date.delta(due, unit="day")),
        (is_due & ~paid_by, d.delta(due, unit="day")), else_=0).cast("int64")
    owed = ibis.greatest(p.amount_due - paid_amt, 0.0)
    owing = is_due & (owed > 0.005)
    y_ago = ibis.literal(as_of - timedelta(days=365))
    recent = ibis.literal(as_of - timedelta(days=recent_days))
    r = p.mutate(_due=due, _is_due=is_due, _late=late, _days=days_late, _owed=owed,
                 _owing=owing, _12m=is_due & (due >= y_ago), _recent=is_due & (due >= recent),
                 _partial=paid_by & (p.amount_paid < p.amount_due - 0.005))
    g = r.group_by("customer_id").aggregate(
        invoices=r.count(),
        due_invoices=r._is_due.sum(),
        late_invoices=r._late.sum(),
        mean_days_late=r._days.mean(where=r._late),
        max_days_late=r._days.max(where=r._is_due),
        partial_payments=r._partial.sum(),
        unpaid_overdue_amount=r._owed.sum(where=r._owing),
        _oldest_due=r._due.min(where=r._owing),
        invoices_12m=r._12m.sum(),
        late_invoices_12m=(r._12m & r._late).sum(),
        _recent_n=r._recent.sum(),
        _recent_late=(r._recent & r._late).sum(),
    )
    g = g.mutate(
        late_share=_ratio(g.late_invoices, g.due_invoices),
        late_share_12m=_ratio(g.late_invoices_12m, g.invoices_12m),
        late_share_recent=_ratio(g._recent_late, g._recent_n),
        late_share_before=_ratio(g.late_invoices - g._recent_late, g.due_invoices - g._recent_n),
        max_days_late=g.max_days_late.fill_null(0).cast("int64"),
        unpaid_overdue_amount=g.unpaid_overdue_amount.fill_null(0.0).cast("float64"),
        oldest_overdue_days=d.delta(g._oldest_due, unit="day").fill_null(0).cast("int64"),
    )
    g = g.mutate(late_trend=g.late_share_recent - g.late_share_before)
    ints = ("invoices", "due_invoices", "late_invoices", "partial_payments", "invoices_12m",
            "late_invoices_12m")
    g = g.mutate(**{c: g[c].cast("int64") for c in ints})
    return g.select("customer_id", *FEATURES)


def _ratio(num: Any, den: Any) -> Any:
    return ibis.cases((den > 0, num.cast("float64") / den), else_=ibis.null("float64"))


# -- the scorecard ---------------------------------------------------------------------------
class Band(_Spec):
    """``points`` once the feature reaches ``at_least``."""

    at_least: float
    points: int = Field(ge=0, le=100)


class Factor(_Spec):
    """A feature and its bands: a customer earns the points of the highest band reached."""

    feature: Feature
    bands: list[Band] = Field(min_length=1)

    @model_validator(mode="after")
    def _ascending(self) -> Factor:
        cuts = [b.at_least for b in self.bands]
        if cuts != sorted(cuts) or len(set(cuts)) != len(cuts):
            raise ValueError("bands must be listed by increasing 'at_least'")
        return self


def _default_factors() -> list[Factor]:
    def f(feature: Any, *bands: tuple[float, int]) -> Factor:
        return Factor(feature=feature, bands=[Band(at_least=a, points=p) for a, p in bands])

    return [f("late_share_12m", (0.1, 10), (0.25, 20), (0.5, 30)),
            f("max_days_late", (30, 5), (60, 10), (90, 15)),
            f("oldest_overdue_days", (1, 5), (30, 10), (60, 15), (90, 20)),
            f("partial_payments", (1, 5), (3, 10)),
            f("late_trend", (0.2, 10), (0.4, 15))]


class PaymentScorecard(_Spec):
    """Points per factor, summed and capped at 100; the class from two cut-offs."""

    factors: list[Factor] = Field(default_factory=_default_factors, min_length=1)
    medium_from: int = Field(20, ge=1, le=100)
    high_from: int = Field(50, ge=1, le=100)

    @model_validator(mode="after")
    def _consistent(self) -> PaymentScorecard:
        if self.medium_from >= self.high_from:
            raise ValueError("'medium_from' must be below 'high_from'")
        names = [f.feature for f in self.factors]
        if "risk_score" in names:
            raise ValueError("a scorecard factor cannot be the risk score itself")
        if len(set(names)) != len(names):
            raise ValueError("each feature may appear in one factor only")
        return self


def payment_score(features: Table, scorecard: PaymentScorecard | None = None) -> Table:
    """Add ``points_<feature>`` per factor, ``risk_score`` (0–100) and ``risk_class``."""
    sc = scorecard or PaymentScorecard()
    pts = {}
    for f in sc.factors:
        col = features[f.feature]
        branches = [(col >= b.at_least, b.points) for b in reversed(f.bands)]
        pts[f"points_{f.feature}"] = ibis.cases(*branches, else_=0).cast("int64")
    t = features.mutate(**pts)
    total = sum((t[c] for c in pts), ibis.literal(0))
    t = t.mutate(risk_score=ibis.least(total, 100).cast("int64"))
    return t.mutate(risk_class=ibis.cases((t.risk_score >= sc.high_from, "high"),
                                          (t.risk_score >= sc.medium_from, "medium"),
                                          else_="low"))


# -- credit terms by rule --------------------------------------------------------------------
class Condition(_Spec):
    feature: Feature
    op: Literal[">=", ">", "<=", "<", "=", "!="]
    value: float


class Terms(_Spec):
    """What is offered: days to pay, limit relative to the current one, prepayment."""

    due_days: int = Field(ge=0, le=365)
    credit_limit_factor: float = Field(ge=0, le=10)
    prepayment: bool = False


class TermsRule(_Spec):
    """Terms for customers meeting ``all`` of some conditions and at least one of ``any``."""

    name: str = Field(min_length=1, max_length=100)
    all: list[Condition] = Field(default_factory=list)
    any: list[Condition] = Field(default_factory=list)
    terms: Terms

    @model_validator(mode="after")
    def _has_conditions(self) -> TermsRule:
        if not self.all and not self.any:
            raise ValueError("a terms rule needs conditions under 'all' or 'any'")
        return self


def _default_rules() -> list[TermsRule]:
    def c(feature: Any, op: Any, value: float) -> Condition:
        return Condition(feature=feature, op=op, value=value)

    return [
        TermsRule(name="chronic_late_prepay",
                  any=[c("late_share_12m", ">=", 0.3), c("risk_score", ">=", 50)],
                  terms=Terms(due_days=0, credit_limit_factor=0.5, prepayment=True)),
        TermsRule(name="some_late_shorter_terms",
                  any=[c("late_share_12m", ">=", 0.1), c("oldest_overdue_days", ">=", 30)],
                  terms=Terms(due_days=10, credit_limit_factor=0.8)),
        TermsRule(name="good_payer_better_terms",
                  all=[c("late_invoices_12m", "=", 0), c("invoices_12m", ">=", 6),
                       c("unpaid_overdue_amount", "<=", 0)],
                  terms=Terms(due_days=30, credit_limit_factor=1.5)),
    ]


class CreditTermsPolicy(_Spec):
    """Ordered rules (the first that matches decides) and the terms for everyone else.

    >>> CreditTermsPolicy.parse({"rules": [{"name": "x", "terms": {"due_days": 5,
    ...     "credit_limit_factor": 1}}]})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    kehu.errors.KehuInputError: policy: invalid credit-terms policy: rules.0: ...conditions...
    """

    rules: list[TermsRule] = Field(default_factory=_default_rules)
    default_name: str = "standard"
    default: Terms = Field(default_factory=lambda: Terms(due_days=20, credit_limit_factor=1.0))

    @model_validator(mode="after")
    def _unique(self) -> CreditTermsPolicy:
        names = [r.name for r in self.rules] + [self.default_name]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"rule names must be unique; repeated: {', '.join(dup)}")
        return self

    @classmethod
    def load(cls, path: str | Path) -> CreditTermsPolicy:
        data = read_yaml(path, _("Credit-terms policy file not found: {path}."))
        return cls.parse(data, str(path))

    @classmethod
    def parse(cls, data: Any, where: str = "policy") -> CreditTermsPolicy:
        return validated(cls, data, where, _("credit-terms policy"))


def _cond(t: Table, c: Condition) -> BooleanValue:
    col = t[c.feature]
    v = ibis.literal(c.value)
    ops = {">=": col.__ge__, ">": col.__gt__, "<=": col.__le__, "<": col.__lt__,
           "=": col.__eq__, "!=": col.__ne__}
    return ops[c.op](v).fill_null(False)


def credit_terms(scored: Table, policy: CreditTermsPolicy | None = None) -> Table:
    """Add ``terms_rule`` (the rule that decided), ``due_days``, ``credit_limit_factor`` and
    ``prepayment`` to a :func:`payment_score` table."""
    pol = policy or CreditTermsPolicy()
    hits: list[tuple[BooleanValue, TermsRule]] = []
    for r in pol.rules:
        cond: BooleanValue = ibis.literal(True)
        for c in r.all:
            cond = cond & _cond(scored, c)
        if r.any:
            alt = _cond(scored, r.any[0])
            for c in r.any[1:]:
                alt = alt | _cond(scored, c)
            cond = cond & alt
        hits.append((cond, r))

    def pick(value: Any, default: Any, typ: str) -> Any:
        return ibis.cases(*[(h, ibis.literal(value(r), type=typ)) for h, r in hits],
                          else_=ibis.literal(default, type=typ)) if hits else \
            ibis.literal(default, type=typ)

    d = pol.default
    return scored.mutate(
        terms_rule=pick(lambda r: r.name, pol.default_name, "string"),
        due_days=pick(lambda r: r.terms.due_days, d.due_days, "int64"),
        credit_limit_factor=pick(lambda r: r.terms.credit_limit_factor,
                                 d.credit_limit_factor, "float64"),
        prepayment=pick(lambda r: r.terms.prepayment, d.prepayment, "boolean"))


def payment_risk(payments: Table, as_of: date, scorecard: PaymentScorecard | None = None,
                 policy: CreditTermsPolicy | None = None, recent_days: int = 180) -> Table:
    """Features, score, class and recommended terms per customer, riskiest first."""
    t = credit_terms(payment_score(payment_features(payments, as_of, recent_days), scorecard),
                     policy)
    return t.order_by([ibis.desc("risk_score"), ibis.desc("unpaid_overdue_amount"),
                       "customer_id"])


def risk_class_label(code: str) -> str:
    return {"low": _("low"), "medium": _("medium"), "high": _("high")}.get(code, code)
