"""Fraud and arrears rules: what a user authors — plain, validated data (pydantic), loadable
from YAML. A rule never contains SQL; it is compiled to an Ibis expression when it runs
(:mod:`kehu.risk.compile`).

Condition types (one key each, combined with ``all`` / ``any`` / ``not``):

- ``threshold``: amount or count of transactions in the last ``window_days`` ≥ ``at_least``;
- ``spike``: the last window's amount (or count) ≥ ``factor`` × the customer's own median over
  the ``trailing_periods`` windows before it;
- ``shared_key``: at least ``min_customers`` customers share this customer's ID number, phone
  or e-mail;
- ``time_of_day``: at least ``min_count`` matching transactions in the window whose hour is in
  ``[from, to)`` (wrapping past midnight when from > to);
- ``overdue``: unpaid overdue amount ≥ ``min_amount`` and oldest overdue ≥ ``min_days`` days;
- ``payment``: a payment feature (:mod:`kehu.analytics.payments`) ≥ ``at_least``.

Example (YAML)::

    rules:
      - name: night_international_calls
        severity: high
        when:
          time_of_day: {hours: [0, 6], window_days: 30, min_count: 3,
                        where: {product_id: [IDD]}}

>>> RuleSet.parse({"rules": [{"name": "x", "when": {"spike": {"factor": 3,
...     "window_days": 0}}}]})  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
kehu.errors.KehuInputError: rules: invalid risk rules: rules.0.when.spike.window_days: Input ...
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel as _Base
from pydantic import ConfigDict, Discriminator, Field, Tag, ValidationError, model_validator

from kehu.analytics.payments import Feature
from kehu.errors import KehuInputError
from kehu.i18n import _
from kehu.specfiles import read_yaml

DEFAULT_RULES = "default_rules.yaml"
Measure = Literal["amount", "count"]


class BaseModel(_Base):
    """Rule models refuse unknown keys, so a typo never silently changes what a rule flags."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class TxFilter(BaseModel):
    """Which transactions count: any of the listed kinds, products and channels."""

    kind: list[str] | None = Field(None, min_length=1)
    product_id: list[str] | None = Field(None, min_length=1)
    channel: list[str] | None = Field(None, min_length=1)


class Threshold(BaseModel):
    measure: Measure = "amount"
    window_days: int = Field(ge=1, le=3660)
    at_least: float
    where: TxFilter | None = None


class Spike(BaseModel):
    measure: Measure = "amount"
    window_days: int = Field(30, ge=1, le=366)
    trailing_periods: int = Field(6, ge=2, le=36)
    factor: float = Field(gt=1)
    #: the trailing median must exceed this for a ratio to exist (no spike from nothing)
    min_baseline: float = Field(0.0, ge=0)
    where: TxFilter | None = None


class SharedKey(BaseModel):
    key: Literal["id_number", "phone", "email"]
    min_customers: int = Field(ge=2)


class TimeOfDay(BaseModel):
    hours: tuple[int, int]
    window_days: int = Field(ge=1, le=3660)
    min_count: int = Field(1, ge=1)
    where: TxFilter | None = None

    @model_validator(mode="after")
    def _hours(self) -> TimeOfDay:
        a, b = self.hours
        if not (0 <= a <= 23 and 1 <= b <= 24) or a == b:
            raise ValueError("'hours' must be [from, to) with 0 <= from <= 23, 1 <= to <= 24 "
                             "and from != to")
        return self


class Overdue(BaseModel):
    min_amount: float = Field(0.0, ge=0)
    min_days: int = Field(1, ge=1)


class PaymentFeature(BaseModel):
    feature: Feature
    at_least: float

    @model_validator(mode="after")
    def _not_score(self) -> PaymentFeature:
        if self.feature == "risk_score":
            raise ValueError("use a payment feature; the risk score is not one")
        return self


class ThresholdRule(BaseModel):
    threshold: Threshold


class SpikeRule(BaseModel):
    spike: Spike


class SharedKeyRule(BaseModel):
    shared_key: SharedKey


class TimeOfDayRule(BaseModel):
    time_of_day: TimeOfDay


class OverdueRule(BaseModel):
    overdue: Overdue


class PaymentRule(BaseModel):
    payment: PaymentFeature


class AllOf(BaseModel):
    all: list[Condition] = Field(min_length=1)


class AnyOf(BaseModel):
    any: list[Condition] = Field(min_length=1)


class NotCondition(BaseModel):
    not_: Condition = Field(alias="not")


_KINDS: dict[str, type[BaseModel]] = {
    "threshold": ThresholdRule, "spike": SpikeRule, "shared_key": SharedKeyRule,
    "time_of_day": TimeOfDayRule, "overdue": OverdueRule, "payment": PaymentRule,
    "all": AllOf, "any": AnyOf, "not": NotCondition}


def _kind(v: Any) -> str | None:
    if isinstance(v, dict):
        return next((k for k in _KINDS if k in v), None)
    return next((k for k, t in _KINDS.items() if type(v) is t), None)


Condition = Annotated[
    Union[  # noqa: UP007
        Annotated[ThresholdRule, Tag("threshold")], Annotated[SpikeRule, Tag("spike")],
        Annotated[SharedKeyRule, Tag("shared_key")],
        Annotated[TimeOfDayRule, Tag("time_of_day")], Annotated[OverdueRule, Tag("overdue")],
        Annotated[PaymentRule, Tag("payment")], Annotated[AllOf, Tag("all")],
        Annotated[AnyOf, Tag("any")], Annotated[NotCondition, Tag("not")],
    ],
    Discriminator(_kind, custom_error_type="condition_kind",
                  custom_error_message="a condition needs one of the keys threshold, spike, "
                                       "shared_key, time_of_day, overdue, payment, all, any, "
                                       "not"),
]
AllOf.model_rebuild()
AnyOf.model_rebuild()
NotCondition.model_rebuild()


def _problems(exc: ValidationError, limit: int = 6) -> str:
    """``loc: message; …`` with the condition tag not repeated (``when.spike.factor``, not
    ``when.spike.spike.factor``)."""
    out = []
    for e in exc.errors()[:limit]:
        loc = [str(x) for x in e["loc"]]
        loc = [x for i, x in enumerate(loc) if i == 0 or x != loc[i - 1] or x not in _KINDS]
        out.append(f"{'.'.join(loc)}: {e['msg']}" if loc else e["msg"])
    return "; ".join(out)


class RiskRule(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    description: str | None = None
    severity: Literal["low", "medium", "high"] = "medium"
    when: Condition


class RuleSet(BaseModel):
    rules: list[RiskRule] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> RuleSet:
        names = [r.name for r in self.rules]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"rule names must be unique; repeated: {', '.join(dup)}")
        return self

    @classmethod
    def load(cls, path: str | Path) -> RuleSet:
        data = read_yaml(path, _("Risk rules file not found: {path}."))
        return cls.parse(data, str(path))

    @classmethod
    def parse(cls, data: Any, where: str = "rules") -> RuleSet:
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise KehuInputError(_("{where}: invalid risk rules: {problems}").format(
                where=where, problems=_problems(exc))) from exc

    @classmethod
    def default(cls) -> RuleSet:
        """The rule set shipped with kehu (``kehu/risk/default_rules.yaml``).

        >>> [r.name for r in RuleSet.default().rules][:3]
        ['usage_spike', 'night_international_calls', 'shared_id_number']
        """
        ref = resources.files("kehu.risk").joinpath(DEFAULT_RULES)
        with resources.as_file(ref) as path:
            return cls.load(path)
