"""Alert rules: what a user authors — plain, validated data (pydantic), loadable from YAML.
A rule never contains SQL; :mod:`kehu.alerts.evaluate` compiles it to an Ibis expression when
it runs.

Every rule has a ``kind`` (the condition) and the same task settings: ``name`` (unique),
``title`` (a template with ``{placeholders}``, see :data:`FACTS`; default: a translated title
per kind), ``priority``, ``due_in_days``, ``assign_to`` (``account_manager`` or a team
name), ``fallback_team`` (the queue when the account manager has no kehu user),
``notify_email``, ``enabled`` and ``skip_churned`` (customers with a churn event on or before
the as-of day are left out).

Kinds and their conditions, as of day ``d``:

- ``maturity``: a contract ends (``end_date``) within ``days_ahead`` days: 0 <= end − d <=
  days_ahead; status in ``statuses`` (default active; a contract without a status counts),
  product in ``product_ids`` when given;
- ``usage_drop``: the customer's usage per day over the ``recent_days`` ending with d is at
  least ``pct`` % below their own usage per day over the ``baseline_days`` before that
  (amount or count of transactions, refunds left out), for key customers (value tier of d);
- ``churn_risk_up``: churn risk rose by at least ``delta`` between the latest two analysis
  runs (as of d or earlier), and is at least ``min_risk`` now;
- ``tier_change``: the value tier moved ``up``, ``down`` or either way between those runs;
- ``complaint_unresolved``: a ticket (kind ``complaint`` by default) opened at least ``days``
  days before d and not resolved by d;
- ``payment_overdue``: an invoice at least ``days`` days past its due date with at least
  ``min_amount`` still owed on d (same definitions as :mod:`kehu.analytics.payments`);
- ``birthday`` / ``anniversary``: the birthday / the anniversary of the signup date (one year
  or more) falls within ``days_ahead`` days (a 29 February date on 28 February in other
  years).

The first, third, fourth and the last two fire once per occurrence (a contract's end date,
a pair of runs, a year); the others are states that can fire again ``refire_days`` after their
task was closed if they still hold (:mod:`kehu.alerts.service`).

Example (YAML)::

    - name: 存款到期提醒
      kind: maturity
      days_ahead: 30
      product_ids: [D12, D36]
      title: "{customer_name} 的存款 {contract_id} 将于 {days} 天后到期"
      priority: high

>>> rs = AlertRules.parse([{"name": "m", "kind": "maturity", "days_ahead": 30}])
>>> rs.rules[0].statuses, rs.rules[0].occurrence
(['active'], True)
>>> AlertRules.parse([{"name": "m", "kind": "maturity", "days_ahead": -1}])
... # doctest: +ELLIPSIS
Traceback (most recent call last):
...
kehu.errors.KehuInputError: rules: rule 1 'm' (maturity): days_ahead: Input should be ...; got -1
"""

from __future__ import annotations

import string
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel as _Base
from pydantic import ConfigDict, Field, ValidationError, model_validator

from kehu.analytics.tiers import TierScheme
from kehu.errors import KehuInputError
from kehu.i18n import N_, _
from kehu.specfiles import read_yaml

DEFAULT_RULES = "default_rules.yaml"
KINDS = ("maturity", "usage_drop", "churn_risk_up", "tier_change", "complaint_unresolved",
         "payment_overdue", "birthday", "anniversary")
#: what every firing provides to a title template
COMMON_FACTS = ("customer_id", "customer_name", "rule", "as_of")
#: what each kind adds (the values :mod:`kehu.alerts.evaluate` measures)
FACTS: dict[str, tuple[str, ...]] = {
    "maturity": ("contract_id", "product_id", "status", "end_date", "days", "monthly_fee",
                 "balance"),
    "usage_drop": ("recent", "baseline", "drop_pct", "recent_days", "baseline_days", "tier",
                   "days"),
    "churn_risk_up": ("risk", "previous_risk", "change", "run_id", "previous_run_id"),
    "tier_change": ("tier_from", "tier_to", "tier_from_name", "tier_to_name", "direction",
                    "run_id", "previous_run_id"),
    "complaint_unresolved": ("ticket_id", "ticket_kind", "category", "opened", "days"),
    "payment_overdue": ("payment_id", "due_date", "days", "amount_due", "outstanding"),
    "birthday": ("date", "days", "age", "year"),
    "anniversary": ("date", "days", "years", "year", "signup_date"),
}
#: the default title of each kind (translated when a task is created)
DEFAULT_TITLES: dict[str, str] = {
    "maturity": N_("Contract {contract_id} of {customer_name} matures in {days} days "
                   "({end_date})"),
    "usage_drop": N_("Usage of {customer_name} down {drop_pct:.0f}% against their own "
                     "baseline"),
    "churn_risk_up": N_("Churn risk of {customer_name} up from {previous_risk:.0%} to "
                        "{risk:.0%}"),
    "tier_change": N_("{customer_name} moved from {tier_from_name} to {tier_to_name}"),
    "complaint_unresolved": N_("Complaint {ticket_id} of {customer_name} unresolved for "
                               "{days} days"),
    "payment_overdue": N_("Invoice {payment_id} of {customer_name} overdue {days} days "
                          "({outstanding} owed)"),
    "birthday": N_("Birthday of {customer_name} in {days} days ({date})"),
    "anniversary": N_("{years}-year anniversary of {customer_name} in {days} days ({date})"),
}
TIER_CODES = tuple(t.code for t in TierScheme().tiers)


class BaseModel(_Base):
    """Rule models refuse unknown keys, so a typo never silently changes what a rule fires."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def placeholders(template: str) -> list[str]:
    """The field names a title template uses.

    >>> placeholders("{customer_name}: {days} days, {drop_pct:.0f}%")
    ['customer_name', 'days', 'drop_pct']
    """
    return [f for _t, f, _s, _c in string.Formatter().parse(template) if f is not None]


class _Rule(BaseModel):
    #: fires once per occurrence (never again once its task exists, whatever its state)
    occurrence: ClassVar[bool] = True

    name: str = Field(min_length=1, max_length=100, pattern=r"^[^|\x00-\x1f]+$")
    title: str | None = Field(None, min_length=1, max_length=300)
    description: str | None = None
    priority: Literal["low", "normal", "high"] = "normal"
    due_in_days: int = Field(3, ge=0, le=366)
    assign_to: str = Field("account_manager", min_length=1, max_length=80)
    fallback_team: str | None = Field(None, min_length=1, max_length=80)
    notify_email: bool = True
    enabled: bool = True
    skip_churned: bool = True

    @model_validator(mode="after")
    def _title_fields(self) -> _Rule:
        if self.title is None:
            return self
        kind = str(getattr(self, "kind", ""))
        allowed = COMMON_FACTS + FACTS.get(kind, ())
        try:
            used = placeholders(self.title)
        except ValueError as exc:
            raise ValueError(f"title: not a valid template ({exc})") from None
        bad = [f for f in used if f not in allowed]
        if bad:
            raise ValueError(f"title: unknown placeholder {{{bad[0]}}}; a {kind} rule "
                             f"offers {', '.join('{' + a + '}' for a in allowed)}")
        return self

    def default_title(self) -> str:
        return DEFAULT_TITLES[str(getattr(self, "kind", ""))]


class _StateRule(_Rule):
    occurrence: ClassVar[bool] = False
    #: days after its task was closed before a condition still true fires again
    refire_days: int = Field(14, ge=1, le=3660)


class MaturityRule(_Rule):
    kind: Literal["maturity"]
    days_ahead: int = Field(ge=0, le=3660)
    product_ids: list[str] | None = Field(None, min_length=1)
    #: contract statuses that count (None: any); a contract without a status counts
    statuses: list[str] | None = Field(default_factory=lambda: ["active"], min_length=1)


class KeyCustomers(BaseModel):
    """Which customers count as key: the listed value tiers, or ``min_tier`` and better."""

    tiers: list[str] | None = Field(None, min_length=1)
    min_tier: str | None = None

    @model_validator(mode="after")
    def _one(self) -> KeyCustomers:
        if (self.tiers is None) == (self.min_tier is None):
            raise ValueError("give either 'tiers' (a list) or 'min_tier', not both or none")
        for code in self.tiers or [str(self.min_tier)]:
            if code not in TIER_CODES:
                raise ValueError(f"unknown tier {code!r}; expected one of "
                                 f"{', '.join(TIER_CODES)}")
        return self

    def codes(self) -> list[str]:
        """The tier codes that count.

        >>> KeyCustomers(min_tier="gold").codes()
        ['diamond', 'gold']
        """
        if self.tiers is not None:
            return list(self.tiers)
        return list(TIER_CODES[: TIER_CODES.index(str(self.min_tier)) + 1])


class UsageDropRule(_StateRule):
    kind: Literal["usage_drop"]
    pct: float = Field(gt=0, le=100)
    recent_days: int = Field(30, ge=1, le=366)
    baseline_days: int = Field(90, ge=1, le=1096)
    measure: Literal["amount", "count"] = "amount"
    #: the baseline per day must exceed this (no alert from a trickle)
    min_baseline: float = Field(0.0, ge=0)
    key_customers: KeyCustomers | None = None
    refire_days: int = Field(30, ge=1, le=3660)


class ChurnRiskUpRule(_Rule):
    kind: Literal["churn_risk_up"]
    delta: float = Field(gt=0, le=1)
    min_risk: float | None = Field(None, ge=0, le=1)


class TierChangeRule(_Rule):
    kind: Literal["tier_change"]
    direction: Literal["up", "down", "any"] = "any"


class ComplaintUnresolvedRule(_StateRule):
    kind: Literal["complaint_unresolved"]
    days: int = Field(ge=0, le=3660)
    #: ticket kinds that count (None: any)
    ticket_kind: list[str] | None = Field(default_factory=lambda: ["complaint"], min_length=1)
    category: list[str] | None = Field(None, min_length=1)
    refire_days: int = Field(7, ge=1, le=3660)


class PaymentOverdueRule(_StateRule):
    kind: Literal["payment_overdue"]
    days: int = Field(ge=1, le=3660)
    min_amount: float = Field(0.0, ge=0)
    #: due date of an invoice without one: invoice date + this
    default_terms_days: int = Field(30, ge=0, le=366)


class BirthdayRule(_Rule):
    kind: Literal["birthday"]
    days_ahead: int = Field(ge=0, le=180)


class AnniversaryRule(_Rule):
    kind: Literal["anniversary"]
    days_ahead: int = Field(ge=0, le=180)
    min_years: int = Field(1, ge=1, le=200)


AlertRule = Annotated[
    MaturityRule | UsageDropRule | ChurnRiskUpRule | TierChangeRule | ComplaintUnresolvedRule
    | PaymentOverdueRule | BirthdayRule | AnniversaryRule,
    Field(discriminator="kind"),
]


def _name_at(data: Any, i: int) -> str:
    try:
        v = data[i]
        return f" '{v['name']}'" if isinstance(v, dict) and "name" in v else ""
    except (IndexError, KeyError, TypeError):
        return ""


def _kind_at(data: Any, i: int) -> str:
    try:
        v = data[i]
        return f" ({v['kind']})" if isinstance(v, dict) and v.get("kind") in KINDS else ""
    except (IndexError, KeyError, TypeError):
        return ""


def _got(e: Any) -> str:
    if e["type"] == "missing":
        return ""
    v = e.get("input")
    if isinstance(v, dict | list) and len(repr(v)) > 60:
        return ""
    return f"; got {v!r}"


def problems(exc: ValidationError, data: Any, limit: int = 6) -> str:
    """``rule N 'name' (kind): field: message; got value`` for each problem, the rule's own
    position, name and kind first (pydantic's ``rules.0.maturity.days_ahead`` is unreadable)."""
    out = []
    for e in exc.errors()[:limit]:
        loc = list(e["loc"])
        if loc and loc[0] == "rules":
            loc = loc[1:]
        if loc and isinstance(loc[0], int):
            i = loc[0]
            rest = [str(x) for x in loc[1:]]
            if rest and rest[0] in KINDS:
                rest = rest[1:]
            head = f"rule {i + 1}{_name_at(data, i)}{_kind_at(data, i)}"
            field = ".".join(rest)
            msg, got = str(e["msg"]).removeprefix("Value error, "), _got(e)
            if e["type"] in ("union_tag_invalid", "union_tag_not_found"):
                field, msg = "kind", f"expected one of {', '.join(KINDS)}"
                got = f"; got {data[i].get('kind')!r}" if e["type"] == "union_tag_invalid" \
                    else "; got nothing"
            out.append(f"{head}: {field + ': ' if field else ''}{msg}{got}")
        else:
            field = ".".join(str(x) for x in loc)
            msg = str(e["msg"]).removeprefix("Value error, ")
            out.append(f"{field + ': ' if field else ''}{msg}")
    return "; ".join(out)


class AlertRules(BaseModel):
    rules: list[AlertRule] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> AlertRules:
        names = [r.name for r in self.rules]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"rule names must be unique; repeated: {', '.join(dup)}")
        return self

    @classmethod
    def parse(cls, data: Any, where: str = "rules") -> AlertRules:
        """Rules from a list of mappings (or ``{"rules": [...]}``), with errors that name the
        rule, the field, what was expected and what arrived."""
        items = data.get("rules") if isinstance(data, dict) and "rules" in data else data
        try:
            return cls.model_validate({"rules": items})
        except ValidationError as exc:
            raise KehuInputError(_("{where}: {problems}").format(
                where=where, problems=problems(exc, items))) from exc

    @classmethod
    def load(cls, path: str | Path) -> AlertRules:
        data = read_yaml(path, _("Alert rules file not found: {path}."))
        return cls.parse(data, str(path))

    @classmethod
    def default(cls) -> AlertRules:
        """The rules shipped with kehu (``kehu/alerts/default_rules.yaml``).

        >>> [r.kind for r in AlertRules.default().rules][:3]
        ['maturity', 'usage_drop', 'churn_risk_up']
        """
        ref = resources.files("kehu.alerts").joinpath(DEFAULT_RULES)
        with resources.as_file(ref) as path:
            return cls.load(path)

    def enabled(self) -> list[AlertRule]:
        return [r for r in self.rules if r.enabled]

    def dump(self) -> list[dict[str, Any]]:
        """The rules as plain data (defaults left out), as saved in the app store."""
        return [r.model_dump(mode="json", exclude_defaults=True) | {"kind": r.kind}
                for r in self.rules]
