"""Project a :class:`Simulation` on the warehouse: baseline and scenarios by segment, computed
by the engine (Ibis) from each customer's purchases in the base window.

The baseline of a customer is their revenue (``amount``) and margin (``amount − cost``) in the
``base_window_days`` up to the as-of date (refunds excluded, as in ``kehu run``), scaled to
the horizon by ``horizon_days / base_window_days``. A scenario adds the changes of its offers
(:mod:`kehu.simulate.offers`); everything else the customer buys stays as it was.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

import ibis
from ibis.expr.types import BooleanValue, Table

from kehu.errors import KehuInputError
from kehu.i18n import _
from kehu.segments.compile import Context, compile_segment
from kehu.segments.spec import SegmentSpec
from kehu.simulate import offers as of
from kehu.simulate.spec import Audience, Bundle, Discount, PricePlan, Simulation

if TYPE_CHECKING:
    from kehu.workspace import Workspace

BASELINE = "baseline"
NO_SEGMENT = "(none)"
MEASURES = ("customers", "affected", "baseline_revenue", "baseline_margin", "revenue",
            "margin", "delta_revenue", "delta_margin", "discount_cost", "incremental_margin")


@dataclass
class SimulationResult:
    """``overall``: one row per scenario (the baseline first); ``by_segment``: one row per
    scenario and segment. Each row carries :data:`MEASURES`."""

    name: str
    as_of: date
    base_start: date
    base_window_days: int
    horizon_days: int
    segment_by: str
    overall: list[dict[str, Any]] = field(default_factory=list)
    by_segment: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def row(self, scenario: str, segment: str | None = None) -> dict[str, Any]:
        """The row of ``scenario`` overall, or for one ``segment``."""
        rows = self.overall if segment is None else [
            r for r in self.by_segment if r["segment"] == segment]
        for r in rows:
            if r["scenario"] == scenario:
                return r
        raise KeyError((scenario, segment))


class Inputs:
    """What offers are projected from: the base-window purchases per customer × product, the
    products, the audience and the contracts — built once per simulation."""

    def __init__(self, ws: Workspace, sim: Simulation, as_of: date | None) -> None:
        self.ws = ws
        self.engine = ws.engine
        self.ctx = Context(ws.engine, as_of)
        self.as_of: date = self.ctx.as_of
        self.start = self.as_of - timedelta(days=sim.base_window_days)
        self.horizon_days = sim.horizon_days
        self.scale = sim.horizon_days / sim.base_window_days
        p = self.engine.table("products")
        self.products = p.select("product_id", "category", "subcategory", "unit_price",
                                 "unit_cost")
        tx = self.engine.table("transactions")
        day = tx.transaction_time.cast("date")
        w = tx.filter((day > ibis.literal(self.start)) & (day <= ibis.literal(self.as_of))
                      & (tx.kind.isnull() | (tx.kind != "refund")))
        w = w.left_join(self.products, "product_id")
        cost = ibis.coalesce(w.cost, w.quantity * w.unit_cost, ibis.literal(0.0))
        self.window: Table = w.select(
            "customer_id", "product_id", "category", "subcategory", "amount",
            order_key=ibis.coalesce(w.order_id, w.transaction_id), cost=cost)
        t = self.window
        self.lines: Table = t.group_by(["customer_id", "product_id", "category",
                                        "subcategory"]).aggregate(
            revenue=t.amount.sum(), margin=(t.amount - t.cost).sum())
        self._names: dict[str, set[str]] = {}
        self._audiences: dict[str, Any] = {}

    # -- names checked against the warehouse ---------------------------------------------
    def names(self, column: str) -> set[str]:
        if column not in self._names:
            if column == "tier":
                b = self.ctx.base
                vals = (b.select(v=b.tier).distinct().to_pyarrow().column(0).to_pylist()
                        if "tier" in b.columns else [])
            elif column == "plan":
                c = self.engine.table("contracts")
                vals = (self.products.select(v=self.products.product_id)
                        .union(c.select(v=c.product_id)).to_pyarrow().column(0).to_pylist())
            else:
                vals = (self.products.select(v=self.products[column]).distinct()
                        .to_pyarrow().column(0).to_pylist())
            self._names[column] = {v for v in vals if v is not None}
        return self._names[column]

    def check(self, column: str, values: list[str], where: str, what: str) -> None:
        known = self.names(column)
        for v in values:
            if v not in known:
                shown = ", ".join(sorted(known)[:20]) or _("none")
                raise KehuInputError(_("{where}: unknown {what} '{v}'. Known: {known}.").format(
                    where=where, what=what, v=v, known=shown))

    def item_condition(self, lines: Table, o: Discount, where: str) -> BooleanValue:
        """Lines of the products the discount applies to (names checked first)."""
        conds = []
        if o.category:
            self.check("category", [o.category], where, _("category"))
            conds.append(lines.category == o.category)
        if o.subcategory:
            self.check("subcategory", [o.subcategory], where, _("subcategory"))
            conds.append(lines.subcategory == o.subcategory)
        if o.products:
            self.check("product_id", o.products, where, _("product"))
            conds.append(lines.product_id.isin(o.products))
        return ibis.or_(*conds).fill_null(False)

    def eligible(self, customer_id: Any, audience: Audience, where: str) -> BooleanValue:
        """Whether a customer is in the offer's audience."""
        if audience.tiers is None and audience.segment is None:
            return ibis.literal(True)
        key = audience.model_dump_json()
        if key not in self._audiences:
            if audience.tiers is not None:
                if "tier" not in self.ctx.base.columns:
                    raise KehuInputError(_("{where}: an audience by tiers needs the scores of "
                                           "an analysis run: run 'kehu run' first.").format(
                        where=where))
                self.check("tier", audience.tiers, where, _("tier"))
                b = self.ctx.base
                members = b.filter(b.tier.isin(audience.tiers)).customer_id
            else:
                spec = audience.segment
                if isinstance(spec, str):
                    from kehu.store import services as sv

                    d = sv.get_definition(self.ws.store, "segment", spec)
                    spec = SegmentSpec.parse(d.spec, f"{where}.audience.segment")
                assert spec is not None
                members = compile_segment(spec, self.ctx).customer_id
            self._audiences[key] = members
        return customer_id.isin(self._audiences[key])

    def contracts(self, product_id: str) -> Table:
        """Contracts on ``product_id`` active at the as-of date, with their monthly fee (the
        plan's list price where the contract has none)."""
        c = self.engine.table("contracts")
        a = ibis.literal(self.as_of)
        c = c.filter((c.product_id == product_id) & (c.start_date <= a)
                     & (c.end_date.isnull() | (c.end_date > a))
                     & (c.status.isnull() | c.status.isin(["active", "renewed"])))
        j = c.left_join(self.products, "product_id")
        return j.select("customer_id", fee=ibis.coalesce(j.monthly_fee, j.unit_price))

    def _product(self, product_id: str) -> dict[str, Any]:
        p = self.products
        rows = p.filter(p.product_id == product_id).limit(1).to_pyarrow().to_pylist()
        return rows[0] if rows else {}

    def plan_economics(self, o: PricePlan, where: str) -> tuple[float, float, float]:
        """New fee, monthly cost of the current plan and of the plan moved to."""
        self.check("plan", [o.product_id, *([o.to_product] if o.to_product else [])],
                   where, _("plan"))
        old = self._product(o.product_id)
        new = self._product(o.to_product) if o.to_product else old
        fee = o.new_monthly_fee if o.new_monthly_fee is not None else new.get("unit_price")
        if fee is None:
            raise KehuInputError(_("{where}: plan '{p}' has no unit_price in products; give "
                                   "new_monthly_fee.").format(where=where, p=o.to_product))
        return float(fee), float(old.get("unit_cost") or 0), float(new.get("unit_cost") or 0)

    def bundle_economics(self, o: Bundle, where: str) -> tuple[float, float]:
        """List price and unit cost of product B."""
        self.check("product_id", [o.product_a, o.product_b], where, _("product"))
        b = self._product(o.product_b)
        if b.get("unit_price") is None:
            raise KehuInputError(_("{where}: product '{p}' has no unit_price in products; a "
                                   "bundle needs the list price of product_b.").format(
                where=where, p=o.product_b))
        return float(b["unit_price"]), float(b.get("unit_cost") or 0)


def scenario_changes(inp: Inputs, sim: Simulation, index: int) -> Table:
    """Per customer: the changes of every offer of scenario ``index`` combined."""
    sc = sim.scenarios[index]
    where = f"scenarios.{index} ({sc.name})"
    parts: list[Table] = []
    disc = [(i, o) for i, o in enumerate(sc.offers) if isinstance(o, Discount)]
    if disc:
        parts.append(of.discounts(inp, disc, where))
    for i, o in enumerate(sc.offers):
        if isinstance(o, PricePlan):
            parts.append(of.price_plan(inp, o, f"{where}.offers.{i}"))
        elif isinstance(o, Bundle):
            parts.append(of.bundle(inp, o, f"{where}.offers.{i}"))
    u = ibis.union(*[p.select(*of.COLUMNS) for p in parts]) if len(parts) > 1 else parts[0]
    return u.group_by("customer_id").aggregate(
        affected=u.affected.max(), **{c: u[c].sum() for c in of.COLUMNS[2:]})


def simulate(ws: Workspace, sim: Simulation, as_of: date | None = None,
             segment_by: str | None = None) -> SimulationResult:
    """Project every scenario of ``sim`` against the baseline, overall and by segment."""
    if segment_by is not None:
        sim = Simulation.parse({**sim.model_dump(mode="json"), "segment_by": segment_by},
                               "--by")
    with ws.engine.cached():
        inp = Inputs(ws, sim, as_of)
        base = inp.ctx.base
        if sim.segment_by not in base.columns:
            raise KehuInputError(_("segment_by '{by}' needs the scores of an analysis run: run "
                                   "'kehu run' first, or break down by region.").format(
                by=sim.segment_by))
        cust = base.select("customer_id", segment=base[sim.segment_by].cast("string")
                           .fill_null(NO_SEGMENT))
        lines = inp.lines
        k = ibis.literal(inp.scale)
        per_cust = lines.group_by("customer_id").aggregate(
            baseline_revenue=lines.revenue.sum() * k, baseline_margin=lines.margin.sum() * k)
        j = cust.left_join(per_cust, "customer_id")
        seg = j.group_by("segment").aggregate(
            customers=j.count(), baseline_revenue=j.baseline_revenue.sum().fill_null(0.0),
            baseline_margin=j.baseline_margin.sum().fill_null(0.0))
        seg_rows = {r["segment"]: r for r in seg.to_pyarrow().to_pylist()}
        changes = []
        for i, sc in enumerate(sim.scenarios):
            ch = scenario_changes(inp, sim, i)
            jj = ch.inner_join(cust, "customer_id")
            changes.append(jj.group_by("segment").aggregate(
                affected=jj.affected.cast("int64").sum(),
                **{c: jj[c].sum() for c in of.COLUMNS[2:]}).mutate(
                scenario=ibis.literal(sc.name)))
        delta = ibis.union(*changes) if len(changes) > 1 else changes[0]
        delta_rows = delta.to_pyarrow().to_pylist()
    return _assemble(sim, inp, seg_rows, delta_rows)


def _assemble(sim: Simulation, inp: Inputs, seg_rows: dict[str, dict[str, Any]],
              delta_rows: list[dict[str, Any]]) -> SimulationResult:
    by_key = {(r["scenario"], r["segment"]): r for r in delta_rows}
    segments = sorted(seg_rows)
    res = SimulationResult(sim.name, inp.as_of, inp.start + timedelta(days=1),
                           sim.base_window_days, sim.horizon_days, sim.segment_by)
    for name in [BASELINE, *[s.name for s in sim.scenarios]]:
        total = dict.fromkeys(MEASURES, 0.0)
        for s in segments:
            b, d = seg_rows[s], by_key.get((name, s), {})
            row = {"customers": int(b["customers"]), "affected": int(d.get("affected") or 0),
                   "baseline_revenue": float(b["baseline_revenue"]),
                   "baseline_margin": float(b["baseline_margin"])}
            for c in ("discount_cost", "incremental_margin"):
                row[c] = float(d.get(c) or 0.0)
            row["delta_revenue"] = float(d.get("d_revenue") or 0.0)
            row["delta_margin"] = float(d.get("d_margin") or 0.0)
            row["revenue"] = row["baseline_revenue"] + row["delta_revenue"]
            row["margin"] = row["baseline_margin"] + row["delta_margin"]
            res.by_segment.append({"scenario": name, "segment": s,
                                   **{m: row[m] for m in MEASURES}})
            for m in MEASURES:
                total[m] += row[m]
        total["customers"], total["affected"] = int(total["customers"]), int(total["affected"])
        res.overall.append({"scenario": name, **total})
    return res
