"""Differentiated treatment (差异化服务, MISSION C6): a service-level table by value tier —
dedicated account manager, response-time target, maximum discount authority, priority queue
and the contact channels allowed — applied to offers, shown with the customer and checked
against the service tickets.

The table is data people author (YAML or JSON), keyed by the tier codes the tier scheme of
:mod:`kehu.analytics.tiers` produces (``diamond``, ``gold``, ``silver``, ``regular``); the
tier names (``钻石卡``, ``Gold`` …) are accepted as keys and read as their codes::

    tiers:
      diamond: {dedicated_manager: true, response_hours: 2, max_discount: 0.30,
                priority_queue: true}
      金卡:     {dedicated_manager: true, response_hours: 8, max_discount: 0.20}
      silver:  {response_hours: 24, max_discount: 0.10}
      regular: {response_hours: 48, max_discount: 0.05, channels: [sms, app, web]}

It is kept in the app store as the definition of kind ``service_levels`` named ``default``
(versioned, audited); until one is saved, :meth:`ServiceLevels.default` applies.

>>> levels = ServiceLevels.default()
>>> levels.apply_to_offer("gold", 0.30)
(0.2, True, 'The discount of 30% is capped at 20%, the most the Gold tier allows.')
>>> levels.apply_to_offer("金卡", 0.10)
(0.1, False, '')
>>> levels.level("钻石卡").response_hours
2.0
>>> ServiceLevels.parse({"tiers": {**levels.model_dump()["tiers"],
...     "gold": {"response_hours": 8, "max_discount": 1.5}}})  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
kehu.errors.KehuInputError: service levels: invalid service levels: tiers.gold.max_discount: ...
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ibis
import pandas as pd
from ibis.expr.types import Table
from pydantic import BaseModel, ConfigDict, Field, field_validator

from kehu.analytics.tiers import TierScheme
from kehu.errors import KehuInputError, NotFoundError
from kehu.i18n import _, get_locale
from kehu.model.entities import CHANNELS
from kehu.specfiles import read_yaml, validated

if TYPE_CHECKING:
    from kehu.store.db import AppStore
    from kehu.store.models import Definition
    from kehu.workspace import Workspace

#: the app-store definition that holds the workspace's table
KIND = "service_levels"
NAME = "default"
#: contact channels a service level may allow (the warehouse's channel vocabulary)
CHANNEL_CODES = tuple(dict.fromkeys(CHANNELS.values()))


def tier_scheme(ws_or_store: Workspace | AppStore | None = None) -> TierScheme:
    """The tier scheme the analysis run uses (the tiers the service levels are keyed by):
    the workspace's saved one (Settings), else the built-in one — also when no workspace is
    given (the codes are the same in every scheme, only names and cuts differ)."""
    from kehu.analytics.schemes import tier_scheme as in_force

    return in_force(ws_or_store)


def tier_code(value: str, scheme: TierScheme | None = None) -> str | None:
    """The tier code for a code or a tier name in either language (case-insensitive).

    >>> tier_code("钻石卡"), tier_code("Gold"), tier_code("silver"), tier_code("platinum")
    ('diamond', 'gold', 'silver', None)
    """
    v = value.strip().casefold()
    for t in (scheme or tier_scheme()).tiers:
        if v in (t.code.casefold(), t.name_zh.casefold(), t.name_en.casefold()):
            return t.code
    return None


def tier_name(code: str, scheme: TierScheme | None = None) -> str:
    """The tier's name in the current language (the code itself when unknown)."""
    for t in (scheme or tier_scheme()).tiers:
        if t.code == code:
            return t.name_zh if get_locale() == "zh_CN" else t.name_en
    return code


def _tier_list(scheme: TierScheme) -> str:
    return ", ".join(f"{t.code} ({t.name_zh}, {t.name_en})" for t in scheme.tiers)


class ServiceLevel(BaseModel):
    """What customers of one tier are entitled to."""

    model_config = ConfigDict(extra="forbid")

    dedicated_manager: bool = Field(False, description="A named account manager (客户经理) "
                                    "looks after each customer of the tier.")
    response_hours: float = Field(gt=0, le=24 * 90, description="Hours within which a "
                                  "ticket of the tier must be answered and resolved.")
    max_discount: float = Field(ge=0, le=1, description="The largest discount (a fraction "
                                "of the price) an offer may give the tier.")
    priority_queue: bool = Field(False, description="Tickets and calls of the tier jump "
                                 "the queue.")
    channels: list[str] | None = Field(None, description="Contact channels allowed for the "
                                       "tier; empty means every channel.")

    @field_validator("channels")
    @classmethod
    def _known_channels(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return None
        out = []
        for c in v:
            code = CHANNELS.get(str(c).strip().lower())
            if code is None:
                raise ValueError(_("unknown channel {c!r}; channels: {all}").format(
                    c=c, all=", ".join(CHANNEL_CODES)))
            out.append(code)
        return list(dict.fromkeys(out)) or None

    def allows_channel(self, channel: str) -> bool:
        """Whether the tier may be contacted on ``channel`` (any spelling the warehouse
        accepts: ``短信``, ``sms`` …).

        >>> ServiceLevel(response_hours=4, max_discount=0, channels=["sms"]).allows_channel("短信")
        True
        """
        if self.channels is None:
            return True
        return CHANNELS.get(channel.strip().lower(), channel) in self.channels


class ServiceLevels(BaseModel):
    """The service-level table: one :class:`ServiceLevel` per tier of the tier scheme."""

    model_config = ConfigDict(extra="forbid")

    tiers: dict[str, ServiceLevel]

    @field_validator("tiers", mode="before")
    @classmethod
    def _tier_codes(cls, v: Any) -> Any:
        if not isinstance(v, dict):
            return v
        scheme = tier_scheme()
        out: dict[str, Any] = {}
        for key, level in v.items():
            code = tier_code(str(key), scheme)
            if code is None:
                raise ValueError(_("unknown tier {tier!r}; the tiers are {tiers}").format(
                    tier=key, tiers=_tier_list(scheme)))
            if code in out:
                raise ValueError(_("tier {tier!r} is given twice").format(tier=code))
            out[code] = level
        missing = [t.code for t in scheme.tiers if t.code not in out]
        if missing:
            raise ValueError(_("no service level for tier(s) {tiers}; give one for every "
                               "tier").format(tiers=", ".join(missing)))
        return {t.code: out[t.code] for t in scheme.tiers}  # best tier first

    @classmethod
    def default(cls) -> ServiceLevels:
        """Built-in table: managers and priority for the top tiers, discount authority
        falling with the tier."""
        return cls(tiers={
            "diamond": ServiceLevel(dedicated_manager=True, response_hours=2, max_discount=0.30,
                                    priority_queue=True),
            "gold": ServiceLevel(dedicated_manager=True, response_hours=8, max_discount=0.20,
                                 priority_queue=True),
            "silver": ServiceLevel(response_hours=24, max_discount=0.10),
            "regular": ServiceLevel(response_hours=48, max_discount=0.05),
        })

    @classmethod
    def parse(cls, data: Any, where: str = "service levels") -> ServiceLevels:
        """Validate ``data``; a :class:`KehuInputError` names the tier and field otherwise."""
        return validated(cls, data, where, _("service levels"))

    @classmethod
    def load(cls, path: str | Path) -> ServiceLevels:
        """Read a YAML or JSON file."""
        data = read_yaml(path, _("Service-level file not found: {path}."))
        return cls.parse(data, str(path))

    def level(self, tier: str) -> ServiceLevel:
        """The level of ``tier`` (a code or a tier name)."""
        code = tier_code(tier)
        if code is None or code not in self.tiers:
            raise KehuInputError(_("Unknown tier {tier!r}. Tiers: {tiers}.").format(
                tier=tier, tiers=_tier_list(tier_scheme())))
        return self.tiers[code]

    def apply_to_offer(self, tier: str, discount: float) -> tuple[float, bool, str]:
        """``(allowed_discount, capped, reason)``: the offer's discount capped at the tier's
        discount authority; ``reason`` is empty when nothing was capped."""
        if isinstance(discount, bool) or not isinstance(discount, int | float) \
                or not 0 <= discount <= 1:
            raise KehuInputError(_("The 'discount' parameter must be a fraction between 0 "
                                   "and 1. Got {v!r} instead.").format(v=discount))
        lvl = self.level(tier)
        if discount <= lvl.max_discount:
            return float(discount), False, ""
        return lvl.max_discount, True, _(
            "The discount of {asked:.0%} is capped at {cap:.0%}, the most the {tier} tier "
            "allows.").format(asked=discount, cap=lvl.max_discount,
                              tier=tier_name(tier_code(tier) or tier))


def apply_to_offer(tier: str, discount: float, levels: ServiceLevels | None = None
                   ) -> tuple[float, bool, str]:
    """Cap an offer's discount by the tier's discount authority (``levels`` default: the
    built-in table; pass :func:`load_service_levels` of the workspace).

    >>> apply_to_offer("regular", 0.15)[:2]
    (0.05, True)
    """
    return (levels or ServiceLevels.default()).apply_to_offer(tier, discount)


# -- the app store --------------------------------------------------------------------------


def get_service_levels(store: AppStore) -> tuple[ServiceLevels, int | None]:
    """The saved table and its version, or the built-in default and ``None`` (reused for a
    second: :func:`kehu.store.services.definition_in_force`)."""
    from kehu.store.services import definition_in_force

    return definition_in_force(store, KIND, NAME, ServiceLevels.default, ServiceLevels.parse,
                               _("saved service levels (version {v})"))


def load_service_levels(store: AppStore) -> ServiceLevels:
    """The table in force: the saved one, else :meth:`ServiceLevels.default`.

    >>> from kehu.store.db import AppStore
    >>> store = AppStore("sqlite://"); store.upgrade()
    >>> load_service_levels(store).tiers["gold"].max_discount
    0.2
    >>> t = ServiceLevels.default().model_dump()
    >>> t["tiers"]["gold"]["max_discount"] = 0.25
    >>> save_service_levels(store, ServiceLevels.parse(t), actor="admin").version
    1
    >>> load_service_levels(store).tiers["gold"].max_discount
    0.25
    """
    return get_service_levels(store)[0]


def save_service_levels(store: AppStore, levels: ServiceLevels, actor: str) -> Definition:
    """Save the table as the workspace's (a new version when one exists; audited)."""
    from kehu.store.services import DefinitionIn, save_definition

    d = DefinitionIn(kind="service_levels", name=NAME, spec=levels.model_dump(mode="json"),
                     description=_("Service levels by tier"))
    return save_definition(store, d, actor)


# -- customers and tickets ------------------------------------------------------------------


class CustomerServiceLevel(BaseModel):
    customer_id: str
    tier: str
    tier_name: str
    #: where the tier comes from: ``run`` (the latest analysis run) or ``computed``
    tier_source: str
    level: ServiceLevel


def run_scores(ws: Workspace, as_of: date | None = None) -> Table | None:
    """The per-customer results of the latest analysis run (with as-of on or before
    ``as_of`` when given); ``None`` when there is none."""
    from kehu.analytics.run import SCORES_TABLE

    if not ws.warehouse.exists(SCORES_TABLE):
        return None
    sc = ws.engine.table(SCORES_TABLE)
    runs = sc if as_of is None else sc.filter(sc.as_of <= ibis.literal(as_of))
    last = runs.select("as_of", "run_id").distinct().order_by(
        [ibis.desc("as_of"), ibis.desc("run_id")]).limit(1).to_pyarrow().to_pylist()
    if not last:
        return None
    return sc.filter(sc.run_id == last[0]["run_id"])


def customer_tiers(ws: Workspace, as_of: date | None = None) -> Table:
    """``customer_id, tier``: from the latest run on or before ``as_of``, else computed by
    the tier scheme as of ``as_of`` (default: the last transaction day)."""
    from kehu.analytics.summary import last_transaction_day
    from kehu.analytics.tiers import tiers_as_of

    sc = run_scores(ws, as_of)
    if sc is not None:
        return sc.select("customer_id", "tier")
    eng = ws.engine
    day = as_of or last_transaction_day(eng)
    return tiers_as_of(eng.table("transactions"), eng.table("customers"), day,
                       tier_scheme(ws)).select("customer_id", "tier")


def service_level_for(ws: Workspace, customer_id: str, as_of: date | None = None,
                      tier: str | None = None, levels: ServiceLevels | None = None
                      ) -> CustomerServiceLevel:
    """The customer's tier and the service level it entitles them to. ``tier`` may be passed
    when the caller already knows it (the customer 360 has the run's scores)."""
    source = "run"
    if tier is None:
        sc = run_scores(ws, as_of)
        rows = [] if sc is None else sc.filter(sc.customer_id == customer_id).select(
            "tier").to_pyarrow().to_pylist()
        if rows and rows[0]["tier"]:
            tier = rows[0]["tier"]
        else:
            tier, source = _computed_tier(ws, customer_id, as_of), "computed"
    levels = levels or load_service_levels(ws.store)
    code = tier_code(tier) or tier
    return CustomerServiceLevel(customer_id=customer_id, tier=code,
                                tier_name=tier_name(code, tier_scheme(ws)),
                                tier_source=source, level=levels.level(code))


def _computed_tier(ws: Workspace, customer_id: str, as_of: date | None) -> str:
    from kehu.analytics.summary import last_transaction_day
    from kehu.analytics.tiers import tiers_as_of

    eng = ws.engine
    cust = eng.table("customers")
    cust = cust.filter(cust.customer_id == customer_id)
    if cust.count().to_pyarrow().as_py() == 0:
        raise NotFoundError(_("No customer with id '{id}'. Check the id (ids are "
                              "case-sensitive, e.g. C00000123).").format(id=customer_id))
    tx = eng.table("transactions")
    try:
        day = as_of or last_transaction_day(eng)
    except KehuInputError:
        return tier_scheme(ws).tiers[-1].code  # no transactions at all: the lowest tier
    rows = tiers_as_of(tx.filter(tx.customer_id == customer_id), cust, day,
                       tier_scheme(ws)).to_pyarrow().to_pylist()
    return str(rows[0]["tier"])


def service_level_breaches(ws: Workspace, as_of: date | None = None, days: int = 90,
                           levels: ServiceLevels | None = None) -> pd.DataFrame:
    """Tickets opened in the ``days`` up to ``as_of`` (default: the last transaction day)
    that took longer than their tier's ``response_hours``, longest over first.

    The warehouse records when a ticket was opened and resolved, not a first reply, so the
    target is measured to the resolution; a ticket still open at the end of ``as_of`` counts
    its hours so far (``open`` is true). The tier is the customer's in the latest analysis
    run on or before ``as_of`` (computed by the tier scheme when there is none).

    Columns: ticket_id, customer_id, tier, kind, category, opened_time, resolved_time, open,
    hours, target_hours, hours_over.
    """
    from kehu.analytics.summary import last_transaction_day

    if days < 1:
        raise KehuInputError(_("The 'days' parameter must be an int >= 1. Got {v} instead.")
                             .format(v=days))
    eng = ws.engine
    as_of = as_of or last_transaction_day(eng)
    levels = levels or load_service_levels(ws.store)
    return breaches_expr(eng.table("tickets"), customer_tiers(ws, as_of), levels, as_of,
                         days).to_pandas()


def breaches_expr(tickets: Table, tiers: Table, levels: ServiceLevels, as_of: date,
                  days: int = 90) -> Table:
    """The expression behind :func:`service_level_breaches` (``tiers``: customer_id, tier)."""
    end = ibis.literal(datetime.combine(as_of + timedelta(days=1), time()))
    start = ibis.literal(datetime.combine(as_of - timedelta(days=days - 1), time()))
    t = tickets.filter((tickets.opened_time >= start) & (tickets.opened_time < end))
    done = t.resolved_time.notnull() & (t.resolved_time < end)
    finish = ibis.cases((done, t.resolved_time), else_=end)
    hours = (finish.epoch_seconds() - t.opened_time.epoch_seconds()) / 3600.0
    t = t.select("ticket_id", "customer_id", "kind", "category", "opened_time",
                 resolved_time=ibis.cases((done, t.resolved_time),
                                          else_=ibis.null("timestamp")),
                 open=~done, hours=hours.cast("float64"))
    targets = ibis.memtable(pd.DataFrame({
        "tier": list(levels.tiers),
        "target_hours": [lv.response_hours for lv in levels.tiers.values()]}))
    lowest = list(levels.tiers)[-1]
    tt = tiers.select("customer_id", "tier").join(targets, "tier")
    j = t.left_join(tt, "customer_id")
    j = j.select(*[t[c] for c in t.columns], tier=j.tier.fill_null(lowest),
                 target_hours=j.target_hours.fill_null(levels.tiers[lowest].response_hours))
    j = j.filter(j.hours > j.target_hours)
    out = j.select("ticket_id", "customer_id", "tier", "kind", "category", "opened_time",
                   "resolved_time", "open", "hours", "target_hours",
                   hours_over=j.hours - j.target_hours)
    return out.order_by([ibis.desc("hours_over"), "ticket_id"])
