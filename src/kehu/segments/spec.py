"""Segment specs: what a user authors — plain, serialisable, validated data (pydantic).

A spec never contains SQL; it is compiled to an Ibis expression when it is evaluated
(:mod:`kehu.segments.compile`).

Example (YAML)::

    name: 高价值流失风险
    description: important customers who stopped buying
    rule:
      all:
        - {field: rfm_class, op: in, value: [important_retention, important_winback]}
        - {field: clv, op: ">=", value: 500}
        - {no_contact: {within_days: 60}}
        - any:
            - {field: city, op: "=", value: 上海}
            - {bought: {category: 母婴, within_days: 365}}
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel as _Base
from pydantic import ConfigDict, Discriminator, Field, Tag, model_validator

from kehu.i18n import _
from kehu.specfiles import read_yaml, validated


class BaseModel(_Base):
    """Spec models refuse unknown keys, so a typo never silently widens a segment."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


Op = Literal["=", "!=", "<", "<=", ">", ">=", "in", "not_in", "between", "is_null",
             "not_null", "contains"]


class FieldRule(BaseModel):
    """A comparison on a customer field: profile, custom attribute or a score of the latest
    analysis run (rfm_class, tier, lifecycle_stage, clv, p_alive, r_score …)."""

    field: str = Field(min_length=1)
    op: Op
    value: Any = None

    @model_validator(mode="after")
    def _value_fits_op(self) -> FieldRule:
        if self.op in ("is_null", "not_null"):
            return self
        if self.op in ("in", "not_in") and not isinstance(self.value, list):
            raise ValueError(f"'{self.op}' needs a list of values")
        if self.op == "between" and not (isinstance(self.value, list) and len(self.value) == 2):
            raise ValueError("'between' needs [low, high]")
        if self.value is None:
            raise ValueError(f"'{self.op}' needs a value")
        return self


class Bought(BaseModel):
    """Bought (a product, or anything in a category) at least ``min_times`` times in the last
    ``within_days`` days."""

    product_id: str | None = None
    category: str | None = None
    within_days: int = Field(ge=1, le=36_600)  # a century: beyond it dates overflow
    min_times: int = Field(1, ge=1)


class BoughtRule(BaseModel):
    bought: Bought


class NotBoughtRule(BaseModel):
    not_bought: Bought


class NoContact(BaseModel):
    """No interaction and no campaign contact in the last ``within_days`` days (optionally on
    one channel)."""

    within_days: int = Field(ge=1, le=36_600)  # a century: beyond it dates overflow
    channel: str | None = None


class NoContactRule(BaseModel):
    no_contact: NoContact


class AllOf(BaseModel):
    all: list[Rule] = Field(min_length=1)


class AnyOf(BaseModel):
    any: list[Rule] = Field(min_length=1)


class NotRule(BaseModel):
    not_: Rule = Field(alias="not")


def _rule_kind(v: Any) -> str | None:
    """Which rule a mapping is, by its key (gives precise validation errors)."""
    if isinstance(v, dict):
        for key in ("field", "bought", "not_bought", "no_contact", "all", "any", "not"):
            if key in v:
                return key
        return None
    kinds: dict[type, str] = {FieldRule: "field", BoughtRule: "bought",
                              NotBoughtRule: "not_bought", NoContactRule: "no_contact",
                              AllOf: "all", AnyOf: "any", NotRule: "not"}
    return kinds.get(type(v))


Rule = Annotated[
    Union[  # noqa: UP007
        Annotated[FieldRule, Tag("field")], Annotated[BoughtRule, Tag("bought")],
        Annotated[NotBoughtRule, Tag("not_bought")], Annotated[NoContactRule, Tag("no_contact")],
        Annotated[AllOf, Tag("all")], Annotated[AnyOf, Tag("any")],
        Annotated[NotRule, Tag("not")],
    ],
    Discriminator(_rule_kind, custom_error_type="rule_kind",
                  custom_error_message="a rule needs one of the keys field, bought, "
                                       "not_bought, no_contact, all, any, not"),
]
AllOf.model_rebuild()
AnyOf.model_rebuild()
NotRule.model_rebuild()


class SegmentSpec(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    description: str | None = None
    rule: Rule
    as_of: date | None = None

    @classmethod
    def load(cls, path: str | Path) -> SegmentSpec:
        data = read_yaml(path, _("Segment file not found: {path}."))
        return cls.parse(data, str(path))

    @classmethod
    def parse(cls, data: Any, where: str = "segment") -> SegmentSpec:
        return validated(cls, data, where, _("segment"))
