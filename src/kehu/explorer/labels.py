"""What the cube offers, in words: translated names of its measures, dimensions and the codes
some dimensions hold (tiers, RFM classes, lifecycle stages, channels), how each measure is
formatted, and the schema the API publishes.

The measures and dimensions themselves are :mod:`kehu.analytics.cube`'s; this module only
names them.

>>> from kehu.i18n import set_locale
>>> set_locale("zh_CN")
>>> measure_label("revenue"), dimension_label("region")
('收入', '地区')
>>> set_locale("en")
>>> measure_label("avg_order_value"), value_label("tier", "diamond", "en")
('Average order value', 'Diamond')
"""

from __future__ import annotations

from contextvars import ContextVar
from functools import cache
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field

from kehu.analytics.cube import (
    CUSTOMER_MEASURES,
    DIMENSIONS,
    HIERARCHIES,
    TX_MEASURES,
    drill_down,
)
from kehu.i18n import N_, _

if TYPE_CHECKING:
    from kehu.analytics.tiers import TierScheme

Grain = Literal["transaction", "customer"]
Format = Literal["money", "count", "percent", "score"]

MEASURES: tuple[str, ...] = TX_MEASURES + CUSTOMER_MEASURES

MEASURE_LABELS = {
    "revenue": N_("Revenue"), "margin": N_("Margin"), "orders": N_("Orders"),
    "transactions": N_("Transactions"), "buyers": N_("Buyers"),
    "avg_order_value": N_("Average order value"), "customers": N_("Customers"),
    "clv": N_("CLV"), "churn_risk": N_("Churn risk"), "nps": N_("NPS"),
    "historical_value": N_("Historical value"), "current_value": N_("Current value"),
    "potential_value": N_("Potential value"), "profit": N_("Profit"),
    "loyalty_index": N_("Loyalty index"),
}
MEASURE_HELP = {
    "revenue": N_("Sum of transaction amounts."),
    "margin": N_("Sum of amount minus cost."),
    "orders": N_("Distinct orders (a line without an order id is one order)."),
    "transactions": N_("Transaction lines."),
    "buyers": N_("Distinct customers who bought."),
    "avg_order_value": N_("Revenue per order."),
    "customers": N_("Customers in the latest analysis run."),
    "clv": N_("Sum of customer lifetime values."),
    "churn_risk": N_("Mean churn risk."),
    "nps": N_("Net promoter score: % promoters minus % detractors."),
    "historical_value": N_("Sum of historical values."),
    "current_value": N_("Sum of current values."),
    "potential_value": N_("Sum of potential values."),
    "profit": N_("Sum of profits."),
    "loyalty_index": N_("Mean loyalty index."),
}
MEASURE_FORMATS: dict[str, Format] = {
    "revenue": "money", "margin": "money", "orders": "count", "transactions": "count",
    "buyers": "count", "avg_order_value": "money", "customers": "count", "clv": "money",
    "churn_risk": "percent", "nps": "score", "historical_value": "money",
    "current_value": "money", "potential_value": "money", "profit": "money",
    "loyalty_index": "score",
}
#: measures whose cells add up to their total (a stacked chart shows them honestly); distinct
#: counts, means and ratios do not
ADDITIVE = frozenset({"revenue", "margin", "transactions", "customers", "clv",
                      "historical_value", "current_value", "potential_value", "profit"})

DIMENSION_LABELS = {
    "year": N_("Year"), "quarter": N_("Quarter"), "month": N_("Month"),
    "category": N_("Category"), "subcategory": N_("Subcategory"), "product_id": N_("Product"),
    "channel": N_("Channel"), "region": N_("Region"), "city": N_("City"), "tier": N_("Tier"),
    "rfm_class": N_("RFM class"), "lifecycle_stage": N_("Lifecycle stage"),
    "account_manager_id": N_("Account manager"), "gender": N_("Gender"),
    "customer_type": N_("Customer type"),
}
#: time levels sort by their value; the others by the measure, largest first
TIME_DIMENSIONS = ("year", "quarter", "month")

CHANNEL_LABELS = {
    "store": N_("Store"), "hotline": N_("Hotline"), "sms": N_("SMS"), "web": N_("Web"),
    "app": N_("App"), "visit": N_("Visit"), "email": N_("Email"), "wechat": N_("WeChat"),
    "mail": N_("Direct mail"), "push": N_("Push"), "partner": N_("Partner"),
    "other": N_("Other"),
}
GENDER_LABELS = {"M": N_("Male"), "F": N_("Female"), "O": N_("Other")}
CUSTOMER_TYPE_LABELS = {"person": N_("Person"), "company": N_("Company")}


def measure_label(name: str) -> str:
    return _(MEASURE_LABELS.get(name, name))


def dimension_label(name: str) -> str:
    return _(DIMENSION_LABELS.get(name, name))


def grain_of(measure: str) -> Grain:
    return "customer" if measure in CUSTOMER_MEASURES else "transaction"


@cache
def _coded() -> dict[str, tuple[dict[str, tuple[str, str]], tuple[str, ...]]]:
    """dimension -> ({code: (English, Chinese)}, codes in their natural order) for the
    dimensions whose values are codes of a scheme."""
    from kehu.accounts.service_levels import tier_scheme
    from kehu.analytics.lifecycle import STAGES
    from kehu.analytics.rfm import RfmClassScheme

    tiers = tier_scheme().tiers
    rfm = RfmClassScheme().classes
    return {
        "tier": ({t.code: (t.name_en, t.name_zh) for t in tiers}, tuple(t.code for t in tiers)),
        "rfm_class": ({c.code: (c.name_en, c.name_zh) for c in rfm},
                      tuple(c.code for c in rfm)),
        "lifecycle_stage": ({}, STAGES),
    }


#: the workspace's tier scheme for this request (:func:`use_tier_scheme`); None: built-in
_TIER_SCHEME: ContextVar[TierScheme | None] = ContextVar("kehu_tier_scheme", default=None)


def use_tier_scheme(scheme: TierScheme | None) -> None:
    """Name tiers by ``scheme`` (the workspace's saved one) in this context — a request,
    like its language; the codes are the same in every scheme, only the names differ.

    >>> from kehu.analytics.tiers import TierScheme
    >>> s = TierScheme.model_validate({"tiers": [
    ...     {"code": t.code, "name_en": t.name_en.upper(), "name_zh": t.name_zh, "cut": t.cut}
    ...     for t in TierScheme().tiers]})
    >>> use_tier_scheme(s); value_label("tier", "gold", "en")
    'GOLD'
    >>> use_tier_scheme(None); value_label("tier", "gold", "en")
    'Gold'
    """
    _TIER_SCHEME.set(scheme)


def value_label(dimension: str, value: str | None, locale: str) -> str:
    """The name of one value of ``dimension`` in ``locale`` (codes of tiers, RFM classes,
    stages, channels, genders and customer types are named; other values are themselves)."""
    if value is None:
        return _("(none)")
    if dimension == "lifecycle_stage":
        from kehu.dashboard.service import STAGE_LABELS

        return _(STAGE_LABELS[value]) if value in STAGE_LABELS else value
    if dimension == "tier" and (scheme := _TIER_SCHEME.get()) is not None:
        for t in scheme.tiers:
            if t.code == value:
                return t.name_zh if locale.startswith("zh") else t.name_en
    if dimension in ("tier", "rfm_class"):
        names = _coded()[dimension][0].get(value)
        return value if names is None else names[1] if locale.startswith("zh") else names[0]
    table = {"channel": CHANNEL_LABELS, "gender": GENDER_LABELS,
             "customer_type": CUSTOMER_TYPE_LABELS}.get(dimension)
    if table and value in table:
        return _(table[value])
    return value


def natural_order(dimension: str) -> tuple[str, ...] | None:
    """The order of a coded dimension's values (tiers from the top, RFM classes and lifecycle
    stages as their schemes list them), or None when values sort otherwise."""
    coded = _coded().get(dimension)
    return coded[1] if coded else None


# -- the schema the API publishes ---------------------------------------------------------------


class MeasureOut(BaseModel):
    name: str
    label: str
    description: str
    grain: Grain = Field(description="transaction measures can be cut by every dimension, "
                                     "customer measures by customer dimensions only")
    format: Format
    additive: bool = Field(description="whether cells add up to the total")


class DimensionOut(BaseModel):
    name: str
    label: str
    grain: Grain
    parent: str | None = Field(description="the level above in its hierarchy (drill up)")
    child: str | None = Field(description="the level below in its hierarchy (drill down)")


class HierarchyOut(BaseModel):
    levels: list[str] = Field(description="top level first")
    labels: list[str]


class CubeSchema(BaseModel):
    measures: list[MeasureOut]
    dimensions: list[DimensionOut]
    hierarchies: list[HierarchyOut]


def cube_schema() -> CubeSchema:
    """Every measure, dimension and hierarchy of the cube, labelled in the current locale."""
    return CubeSchema(
        measures=[MeasureOut(name=m, label=measure_label(m), description=_(MEASURE_HELP[m]),
                             grain=grain_of(m), format=MEASURE_FORMATS[m],
                             additive=m in ADDITIVE) for m in MEASURES],
        dimensions=[DimensionOut(name=d.name, label=dimension_label(d.name),
                                 grain="customer" if d.grain == "customer" else "transaction",
                                 parent=d.parent, child=drill_down(d.name))
                    for d in DIMENSIONS.values()],
        hierarchies=[HierarchyOut(levels=list(h), labels=[dimension_label(d) for d in h])
                     for h in HIERARCHIES])
