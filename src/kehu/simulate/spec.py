"""Simulation specs: proposed offers and the assumptions behind them — plain, validated data.

A spec names products, categories, tiers and segments; it never contains SQL. Names are
checked against the warehouse when the simulation runs (:mod:`kehu.simulate.engine`).

Example (YAML)::

    name: 食品促销
    base_window_days: 365
    horizon_days: 365
    segment_by: tier
    scenarios:
      - name: 金卡钻石卡九折
        offers:
          - kind: discount
            category: 食品
            percent: 10
            audience: {tiers: [gold, diamond]}
            price_elasticity: -1.5

>>> sim = Simulation.parse({"name": "s", "scenarios": [{"name": "a", "offers": [
...     {"kind": "discount", "category": "食品", "percent": 10, "price_elasticity": -1.5}]}]})
>>> sim.scenarios[0].offers[0].kind, sim.segment_by, sim.horizon_days
('discount', 'tier', 365)
>>> round(sim.scenarios[0].offers[0].quantity_factor(), 4)   # 0.9 ** -1.5
1.1712
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel as _Base
from pydantic import ConfigDict, Field, field_validator, model_validator

from kehu.i18n import _
from kehu.segments.spec import SegmentSpec
from kehu.specfiles import read_yaml, validated

#: dimensions a simulation can be broken down by: scores of the latest run, then profile fields
SEGMENT_DIMENSIONS = ("tier", "rfm_class", "lifecycle_stage", "region", "city",
                      "account_manager_id", "gender", "customer_type")


class BaseModel(_Base):
    """Spec models refuse unknown keys: a typo never silently changes an assumption."""

    model_config = ConfigDict(extra="forbid")


def _check_percent(v: float) -> float:
    if not 0 < v < 100:
        raise ValueError(_("percent must be between 0 and 100, exclusive (10 means 10 % off); "
                           "got {v}").format(v=v))
    return v


class Audience(BaseModel):
    """Who is offered the deal: everyone (the default), some value tiers, or a segment — the
    name of a saved segment (``kehu segment save``) or an inline segment spec."""

    tiers: list[str] | None = Field(None, min_length=1)
    segment: str | SegmentSpec | None = None

    @model_validator(mode="after")
    def _one(self) -> Audience:
        if self.tiers is not None and self.segment is not None:
            raise ValueError(_("give either tiers or segment, not both"))
        return self


class Discount(BaseModel):
    """``percent`` off the listed products (a category, subcategory or product list — their
    union) for the audience.

    Quantity follows the constant-elasticity form: units × (1 − percent/100) ** elasticity;
    ``take_up`` is the share of eligible customers who use the offer, ``cannibalisation`` the
    share of the extra units that displace purchases of equal value elsewhere."""

    kind: Literal["discount"]
    category: str | None = None
    subcategory: str | None = None
    products: list[str] | None = Field(None, min_length=1)
    percent: float
    audience: Audience = Field(default_factory=Audience)
    price_elasticity: float = Field(ge=-10, le=0)
    take_up: float = Field(1.0, ge=0, le=1)
    cannibalisation: float = Field(0.0, ge=0, le=1)

    _percent = field_validator("percent")(_check_percent)

    @model_validator(mode="after")
    def _some_products(self) -> Discount:
        if not (self.category or self.subcategory or self.products):
            raise ValueError(_("a discount needs category, subcategory or products"))
        return self

    def quantity_factor(self) -> float:
        """Units sold under the offer relative to the baseline: (1 − p) ** elasticity."""
        return float((1 - self.percent / 100) ** self.price_elasticity)


class PricePlan(BaseModel):
    """A new monthly fee for holders of ``product_id`` (a repricing), or a move to the plan
    ``to_product`` — offered only where it is cheaper than the customer's current fee.

    ``switch_rate`` of the offered contracts take it; among them the annual churn rate
    ``baseline_churn`` changes by ``churn_effect`` (−0.2: a fifth fewer leave)."""

    kind: Literal["price_plan"]
    product_id: str = Field(min_length=1)
    to_product: str | None = None
    new_monthly_fee: float | None = Field(None, ge=0)
    audience: Audience = Field(default_factory=Audience)
    switch_rate: float = Field(1.0, ge=0, le=1)
    churn_effect: float = Field(0.0, ge=-1, le=10)
    baseline_churn: float = Field(0.2, ge=0, le=1)

    @model_validator(mode="after")
    def _fee(self) -> PricePlan:
        if self.new_monthly_fee is None and self.to_product is None:
            raise ValueError(_("a price_plan needs new_monthly_fee or to_product"))
        return self


class Bundle(BaseModel):
    """``product_a`` + ``product_b`` at ``percent`` off when bought in the same order.

    Among customers who bought A but never B in the base window, ``attach_uplift`` add one B
    to each order with A; orders that already hold both get the discount (the subsidy of
    existing behaviour)."""

    kind: Literal["bundle"]
    product_a: str = Field(min_length=1)
    product_b: str = Field(min_length=1)
    percent: float
    audience: Audience = Field(default_factory=Audience)
    attach_uplift: float = Field(ge=0, le=1)
    take_up: float = Field(1.0, ge=0, le=1)

    _percent = field_validator("percent")(_check_percent)

    @model_validator(mode="after")
    def _two(self) -> Bundle:
        if self.product_a == self.product_b:
            raise ValueError(_("a bundle needs two different products"))
        return self


Offer = Annotated[Discount | PricePlan | Bundle, Field(discriminator="kind")]


class Scenario(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    description: str | None = None
    offers: list[Offer] = Field(min_length=1)


class Simulation(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    description: str | None = None
    base_window_days: int = Field(365, ge=7, le=3650)
    horizon_days: int = Field(365, ge=1, le=3650)
    segment_by: str = "tier"
    scenarios: list[Scenario] = Field(min_length=1)

    @field_validator("segment_by")
    @classmethod
    def _known_dimension(cls, v: str) -> str:
        if v not in SEGMENT_DIMENSIONS:
            raise ValueError(_("unknown segment_by '{v}'; use one of {known}").format(
                v=v, known=", ".join(SEGMENT_DIMENSIONS)))
        return v

    @model_validator(mode="after")
    def _unique_names(self) -> Simulation:
        names = [s.name for s in self.scenarios]
        dup = sorted({n for n in names if names.count(n) > 1} | ({"baseline"} & set(names)))
        if dup:
            raise ValueError(_("scenario names must be unique and not 'baseline': {names}")
                             .format(names=", ".join(dup)))
        return self

    @classmethod
    def load(cls, path: str | Path) -> Simulation:
        data = read_yaml(path, _("Scenario file not found: {path}."))
        return cls.parse(data, str(path))

    @classmethod
    def parse(cls, data: Any, where: str = "simulation") -> Simulation:
        return validated(cls, data, where, _("simulation"))
