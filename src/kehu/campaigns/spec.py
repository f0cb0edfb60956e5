"""Campaign specs and contact policies: what a marketer authors, as validated data.

A campaign names its audience (a saved segment, an inline segment rule and/or a score band,
all evaluated at launch), its channel, the offer per value tier, its costs, its schedule and
attribution window, and its holdout control group. Nothing here touches the warehouse: the
spec is compiled when the campaign is planned or launched (:mod:`kehu.campaigns.launch`).

Example (YAML)::

    id: SPRING-XS
    name: 春季交叉销售
    goal: cross_sell
    channel: sms
    audience:
      segment: 高价值流失风险          # a saved segment, or
      # rule: {field: tier, op: in, value: [钻石, 金卡]}
      score_band: {score: churn_risk, min: 0.3}
    offers:
      default: {text: 满200减30, discount: 0.15}
      by_tier: {钻石: {text: 专属礼包, discount: 0.3}}
    cost_per_contact: 0.1
    cost_fixed: 5000
    schedule: {start: 2026-03-01, end: 2026-03-31}
    attribution_window_days: 30
    holdout: {fraction: 0.1}
    expected_effect: 0.02

>>> spec = CampaignSpec.parse({"id": "C1", "name": "test", "channel": "sms",
...     "audience": {"rule": {"field": "tier", "op": "=", "value": "金卡"}},
...     "schedule": {"start": "2026-03-01"}})
>>> spec.holdout.fraction, spec.attribution_window_days, spec.warehouse_channel
(0.1, 30, 'sms')
>>> CampaignSpec.parse({"id": "C1", "name": "x", "channel": "fax",
...     "audience": {"segment": "s"}, "schedule": {"start": "2026-03-01"}})
... # doctest: +ELLIPSIS
Traceback (most recent call last):
...
kehu.errors.KehuInputError: campaign: invalid campaign: channel: Input should be 'sms', ...
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel as _Base
from pydantic import ConfigDict, Field, field_validator, model_validator

from kehu.i18n import _
from kehu.segments.spec import Rule
from kehu.specfiles import read_yaml, validated

Channel = Literal["sms", "email", "phone", "mail", "push"]
#: the campaign channel as the warehouse's interaction vocabulary names it
WAREHOUSE_CHANNEL = {"sms": "sms", "email": "email", "phone": "hotline", "mail": "mail",
                     "push": "push"}
Goal = Literal["cross_sell", "up_sell", "retention", "reactivation", "winback", "loyalty",
               "referral", "repeat_purchase", "acquisition", "other"]
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,79}$")


class BaseModel(_Base):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ScoreBand(BaseModel):
    """Customers whose score of the latest analysis run lies in ``[min, max]`` (either bound
    may be left open), optionally only the ``top`` N by that score."""

    score: str = Field(min_length=1)
    min: float | None = None
    max: float | None = None
    top: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _bounds(self) -> ScoreBand:
        if self.min is None and self.max is None and self.top is None:
            raise ValueError("give min, max or top")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        return self


class Audience(BaseModel):
    """A saved segment or an inline rule (or neither: everyone), narrowed by a score band."""

    segment: str | None = None
    rule: Rule | None = None
    score_band: ScoreBand | None = None
    #: at most this many customers (the highest scores first when there is a score band)
    limit: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _one_source(self) -> Audience:
        if self.segment and self.rule is not None:
            raise ValueError("give either a saved segment or a rule, not both")
        if not self.segment and self.rule is None and self.score_band is None:
            raise ValueError("give a segment, a rule or a score band")
        return self


class Offer(BaseModel):
    text: str = Field(min_length=1, max_length=200)
    #: the discount it grants, as a fraction (capped by the tier's discount authority)
    discount: float | None = Field(default=None, ge=0, le=1)


class Offers(BaseModel):
    default: Offer | None = None
    by_tier: dict[str, Offer] = Field(default_factory=dict)

    def for_tier(self, tier: str | None) -> Offer | None:
        return self.by_tier.get(tier or "", self.default)


class Schedule(BaseModel):
    start: date
    end: date | None = None
    #: hour of day the contacts are made (contact_time in the warehouse)
    hour: int = Field(default=9, ge=0, le=23)

    @model_validator(mode="after")
    def _order(self) -> Schedule:
        if self.end is not None and self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        return self


class Holdout(BaseModel):
    """The randomised control group: ``fraction`` of the contactable audience, drawn within
    each tier (stratified) with a recorded seed. 0 means no control group: the campaign is
    then measured before/after against a matched comparison group (weaker evidence)."""

    fraction: float = Field(default=0.10, ge=0, le=0.5)
    seed: int | None = Field(default=None, ge=0)
    stratify_by: Literal["tier", "none"] = "tier"


class Message(BaseModel):
    subject: str | None = Field(default=None, max_length=500)
    #: ``{name}``, ``{offer}``, ``{tier}``, ``{customer_id}`` are filled per customer
    body: str = Field(default="{name}，您好：{offer}", max_length=5000)


class CampaignSpec(BaseModel):
    id: str
    name: str = Field(min_length=1, max_length=200)
    description: str | None = None
    goal: Goal = "other"
    channel: Channel
    #: the channel plugin that delivers (``outbox``, ``file``, ``smtp``, ``webhook`` or a
    #: third party's); its settings come from ``[channels.<adapter>]`` in kehu.toml
    adapter: str = "outbox"
    audience: Audience
    offers: Offers = Field(default_factory=Offers)
    message: Message = Field(default_factory=Message)
    cost_per_contact: float = Field(default=0.0, ge=0)
    cost_fixed: float = Field(default=0.0, ge=0)
    schedule: Schedule
    attribution_window_days: int = Field(default=30, ge=1, le=365)
    #: how responses are counted: imported responses, purchases in the window, or
    #: responses when the campaign has any, else purchases
    attribution: Literal["auto", "responses", "transactions"] = "auto"
    holdout: Holdout = Field(default_factory=Holdout)
    #: the response-rate difference the campaign is expected to make (for the power check)
    expected_effect: float | None = Field(default=None, gt=0, le=1)
    #: the control group's expected response rate; default: past campaigns' control groups
    expected_base_rate: float | None = Field(default=None, ge=0, le=1)
    #: between campaigns competing for the same customers, the higher priority goes first
    priority: int = 0
    #: margin as a share of attributed revenue when the revenue has no cost (responses)
    margin_rate: float | None = Field(default=None, ge=0, le=1)

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not _ID.match(v):
            raise ValueError("letters, digits, '_', '.', '-' only, at most 80, e.g. SPRING-XS")
        return v

    @property
    def warehouse_channel(self) -> str:
        return WAREHOUSE_CHANNEL[self.channel]

    @classmethod
    def load(cls, path: str | Path) -> CampaignSpec:
        data = read_yaml(path, _("Campaign file not found: {path}."))
        return cls.parse(data, str(path))

    @classmethod
    def parse(cls, data: Any, where: str = "campaign") -> CampaignSpec:
        return validated(cls, data, where, _("campaign"))


class Cap(BaseModel):
    """At most ``max_contacts`` contacts per customer in any ``window_days`` consecutive
    days — on one channel, or on all channels when ``channel`` is empty."""

    max_contacts: int = Field(ge=1)
    window_days: int = Field(ge=1, le=3660)
    channel: Channel | None = None


class ContactPolicy(BaseModel):
    """Enforced whenever a contact list is built, by every campaign.

    >>> p = ContactPolicy.parse({"caps": [{"max_contacts": 2, "window_days": 30}],
    ...                          "quiet_days": 7})
    >>> p.caps[0].max_contacts, p.quiet_days, p.honour_opt_out_responses
    (2, 7, True)
    """

    caps: list[Cap] = Field(default_factory=lambda: [Cap(max_contacts=4, window_days=30)])
    #: no new contact within this many days of another (before or after it)
    quiet_days: int = Field(default=0, ge=0, le=365)
    #: an imported response of type ``opt_out`` opts the customer out of that channel
    honour_opt_out_responses: bool = True
    #: customers with no address for the channel (phone, e-mail) are suppressed
    require_address: bool = True

    @classmethod
    def load(cls, path: str | Path) -> ContactPolicy:
        data = read_yaml(path, _("Contact policy file not found: {path}."))
        return cls.parse(data, str(path))

    @classmethod
    def parse(cls, data: Any, where: str = "contact policy") -> ContactPolicy:
        return validated(cls, data or {}, where, _("contact policy"))
