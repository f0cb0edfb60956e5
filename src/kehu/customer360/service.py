"""Customer 360 (客户全景 / enterprise memory, MISSION D1–D2): one customer's profile and every
fact about them on one timeline, newest first."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import ibis
from pydantic import BaseModel, Field

from kehu.customer360.sources import timeline_sources
from kehu.errors import NotFoundError
from kehu.i18n import _
from kehu.model.types import ATTR_PREFIX, LINEAGE_COLUMNS

if TYPE_CHECKING:
    from collections.abc import Sequence

    from kehu.store.models import Note
    from kehu.workspace import Workspace


class TimelineItem(BaseModel):
    time: datetime
    kind: str
    channel: str | None = None
    title: str | None = None
    amount: float | None = None
    ref: str | None = None
    source: str


class Offer(BaseModel):
    """One of the customer's next best offers from the latest analysis run (the cross-sell
    model, :mod:`kehu.models.crosssell`), best first."""

    rank: int
    product_id: str
    product_name: str | None = None
    propensity: float = Field(description="probability of buying it within 12 months")
    expected_margin: float | None = Field(None, description="propensity × the product's margin")
    reason: str | None = Field(None, description="the product bought that suggests this one "
                                                 "(an association rule), if any")
    reason_name: str | None = None
    reason_confidence: float | None = None
    reason_lift: float | None = None
    segment: str | None = Field(None, description="the customer's tier, whose adoption "
                                                  "rate is the offer's prior")
    prior: float | None = None


class Customer360(BaseModel):
    customer_id: str
    profile: dict[str, Any]
    attributes: dict[str, Any] = Field(default_factory=dict)
    account_manager: dict[str, Any] | None = None
    #: the customer's results in the latest analysis run (RFM class, tier, lifecycle stage,
    #: CLV, P(alive), value decomposition …); empty before the first ``kehu run``
    scores: dict[str, Any] = Field(default_factory=dict)
    #: the customer's tier and the service level it entitles them to (dedicated manager,
    #: response-time target, maximum discount, priority queue, channels; MISSION C6)
    service_level: dict[str, Any] | None = None
    counts: dict[str, int] = Field(default_factory=dict)
    timeline: list[TimelineItem] = Field(default_factory=list)
    timeline_total: int = 0
    #: next best offers from the latest analysis run; empty before the first run
    offers: list[Offer] = Field(default_factory=list)


def customer_360(ws: Workspace, customer_id: str, limit: int | None = 200,
                 notes: Sequence[Note] | None = None) -> Customer360:
    """Profile, custom attributes, account manager and the timeline (newest first);
    ``notes``: the customer's notes when the caller has read them already.

    Raises :class:`NotFoundError` for an unknown id.
    """
    from functools import partial

    from kehu.analytics.run import SCORES_TABLE
    from kehu.customer360.lookup import TIMELINE, lookup
    from kehu.customer360.lookup import rows as all_rows

    # the lookup of the current data, found once for the page's queries
    lookup_rows = partial(all_rows, fast=lookup(ws))

    def one_customer(table: Any, v: dict[str, Any]) -> Any:
        c = table("customers")
        return c.filter(c.customer_id == v["cid"])

    found = lookup_rows(ws, "customer", one_customer, cid=customer_id)
    if not found:
        raise NotFoundError(_("No customer with id '{id}'. Check the id (ids are case-sensitive, "
                              "e.g. C00000123).").format(id=customer_id))
    row = found[0]
    profile = {k: v for k, v in row.items()
               if not k.startswith(ATTR_PREFIX) and k not in LINEAGE_COLUMNS}
    attrs = {k[len(ATTR_PREFIX):]: v for k, v in row.items() if k.startswith(ATTR_PREFIX)}
    manager = None
    if row.get("account_manager_id"):
        def employee(table: Any, v: dict[str, Any]) -> Any:
            e = table("employees")
            return e.filter(e.employee_id == v["emp"])

        got = lookup_rows(ws, "employee", employee, emp=row["account_manager_id"])
        manager = got[0] if got else {"employee_id": row["account_manager_id"]}
        manager = {k: v for k, v in manager.items() if k not in LINEAGE_COLUMNS}
    scores: dict[str, Any] = {}
    if ws.warehouse.head_version(SCORES_TABLE) is not None:
        def latest_scores(table: Any, v: dict[str, Any]) -> Any:
            sc = table(SCORES_TABLE)
            return sc.filter(sc.customer_id == v["cid"])

        # one row per run (the lookup file keeps only the latest): the newest is picked here,
        # as a top-1 in SQL costs DuckDB twice the plain filter
        found_scores = lookup_rows(ws, "scores", latest_scores, cid=customer_id)
        if found_scores:
            latest = max(found_scores, key=lambda r: (r.get("as_of"), r.get("run_id") or ""))
            scores = {k: v for k, v in latest.items() if k != "customer_id"}
    from kehu.accounts.service_levels import service_level_for

    level = service_level_for(ws, customer_id, tier=scores.get("tier") or None)
    service_level = {"tier": level.tier, "tier_name": level.tier_name,
                     "tier_source": level.tier_source, **level.level.model_dump()}
    sources = [src for src in timeline_sources()
               if ws.warehouse.head_version(src.table) is not None]

    def newest(table: Any, v: dict[str, Any]) -> Any:
        # the lookup file holds every source's events as one table sorted by customer; on
        # the warehouse the same name is the union of the sources (the filter is pushed down)
        tl = table(TIMELINE)
        return tl.filter(tl.customer_id == v["cid"]).drop("customer_id") \
            .order_by([ibis.desc("time"), "source", "ref"])

    items: list[TimelineItem] = []
    counts: dict[str, int] = {}
    total = 0
    if sources:
        # one query for the counts and the newest items: one customer's events are few
        events = lookup_rows(ws, TIMELINE, newest, cid=customer_id)
        for e in events:
            counts[e["source"]] = counts.get(e["source"], 0) + 1
        total = len(events)
        items = [TimelineItem(**r) for r in (events[:limit] if limit is not None else events)]
    staff = _store_items(ws, customer_id, notes)
    if staff:
        for it in staff:
            counts[it.source] = counts.get(it.source, 0) + 1
        total += len(staff)
        items = sorted(items + staff, key=lambda i: i.time, reverse=True)
        if limit is not None:
            items = items[:limit]
    return Customer360(customer_id=customer_id, profile=profile, attributes=attrs,
                       account_manager=manager, scores=scores, service_level=service_level,
                       counts=counts, timeline=items,
                       timeline_total=total, offers=_offers(ws, customer_id, lookup_rows))


def _offers(ws: Workspace, customer_id: str, lookup_rows: Any) -> list[Offer]:
    """The customer's offers from the latest run, best first: one query, which names the
    products (offered and reason) when the products table has been imported."""
    from kehu.analytics.run import OFFERS_TABLE

    if ws.warehouse.head_version(OFFERS_TABLE) is None:
        return []
    named = ws.warehouse.head_version("products") is not None
    fields = [c for c in Offer.model_fields if c not in ("product_name", "reason_name")]

    def offers(table: Any, v: dict[str, Any]) -> Any:
        o = table(OFFERS_TABLE)
        if named and "product_name" in o.columns:   # the lookup file names them at build
            return o.filter(o.customer_id == v["cid"]).select(
                *fields, "product_name", "reason_name").order_by("rank")
        o = o.filter(o.customer_id == v["cid"]).select(*fields)
        if named:
            from kehu.customer360.lookup import named_offers

            o = named_offers(o, table("products"))
        return o.order_by("rank")

    return [Offer(**r) for r in lookup_rows(ws, "offers" if named else "offers_unnamed",
                                            offers, cid=customer_id)]


def _local(t: datetime) -> datetime:
    """App-store times (UTC; SQLite returns them without a zone) as local business time."""
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.astimezone().replace(tzinfo=None)


def _store_items(ws: Workspace, customer_id: str, notes: Sequence[Note] | None = None
                 ) -> list[TimelineItem]:
    """Notes and interactions staff logged in kehu (the app store), for the same timeline."""
    from kehu.store import services as sv

    if notes is None:
        notes = sv.list_notes(ws.store, customer_id)
    out = [TimelineItem(time=_local(n.created_at), kind="note", title=n.text, ref=str(n.id),
                        source="notes") for n in notes]
    out += [TimelineItem(time=i.time, kind="interaction", channel=i.channel,
                         title=" · ".join(x for x in (i.type, i.direction, i.outcome, i.text)
                                          if x),
                         ref=f"L{i.id}", source="logged_interactions")
            for i in sv.list_interactions(ws.store, customer_id)]
    return out


#: how each timeline kind reads, for people (translated at display time)
KIND_LABELS = {
    "purchase": lambda: _("purchase"), "refund": lambda: _("refund"), "bill": lambda: _("bill"),
    "contract_start": lambda: _("contract started"),
    "contract_end": lambda: _("contract ends / ended"),
    "interaction": lambda: _("contact"), "complaint_opened": lambda: _("complaint opened"),
    "complaint_resolved": lambda: _("complaint resolved"),
    "service_request_opened": lambda: _("service request opened"),
    "service_request_resolved": lambda: _("service request resolved"),
    "ticket_opened": lambda: _("ticket opened"), "ticket_resolved": lambda: _("ticket resolved"),
    "invoice": lambda: _("invoice"), "payment": lambda: _("payment"),
    "campaign_treatment": lambda: _("campaign contact"),
    "campaign_control": lambda: _("campaign (control group)"),
    "campaign_response": lambda: _("campaign response"),
    "nps_survey": lambda: _("NPS survey"), "csat_survey": lambda: _("CSAT survey"),
    "referred_someone": lambda: _("referred a customer"),
    "was_referred": lambda: _("was referred"), "churned": lambda: _("churned"),
    "note": lambda: _("note"),
}


def kind_label(kind: str) -> str:
    f = KIND_LABELS.get(kind)
    return f() if f else kind


#: timeline sources whose title starts with a product id (named on the customer page)
PRODUCT_SOURCES = frozenset({"transactions", "contract_start", "contract_end"})
_PRODUCT_NAMES: dict[tuple[str, int], dict[str, str]] = {}
_PRODUCT_NAMES_LOCK = threading.Lock()


def product_names(ws: Workspace) -> dict[str, str]:
    """Product id → name from the products table (empty without it), for the customer page's
    timeline and contracts; kept per products table version."""
    version = ws.warehouse.head_version("products")
    if version is None:
        return {}
    key = (str(ws.root), version)
    with _PRODUCT_NAMES_LOCK:
        hit = _PRODUCT_NAMES.get(key)
        if hit is None:
            cols = ws.warehouse.schema("products").names
            if "name" not in cols:
                return {}
            tab = ws.warehouse.read("products", columns=["product_id", "name"])
            hit = {str(i): str(n) for i, n in zip(tab.column("product_id").to_pylist(),
                                                  tab.column("name").to_pylist(), strict=True)
                   if i is not None and n}
            _PRODUCT_NAMES.clear()   # one workspace per process, usually: keep the newest
            _PRODUCT_NAMES[key] = hit
        return hit


def named_title(item: TimelineItem, names: dict[str, str]) -> tuple[str | None, str]:
    """A timeline item's details with its product named: ``(product id or None, text)``.

    >>> it = TimelineItem(time=datetime(2025, 1, 2), kind="purchase", title="P001 · 2",
    ...                   source="transactions")
    >>> named_title(it, {"P001": "咖啡豆"})
    ('P001', '咖啡豆 · 2')
    >>> named_title(it, {})
    (None, 'P001 · 2')
    """
    title = item.title or ""
    if item.source not in PRODUCT_SOURCES:
        return None, title
    first, sep, rest = title.partition(" · ")
    name = names.get(first)
    return (first, name + sep + rest) if name else (None, title)
