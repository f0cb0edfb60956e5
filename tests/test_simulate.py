"""Promotion simulation: every number of a discount scenario equals a plain pandas reading of
the documented formulas on the retail demo; bundles and price plans match hand computations
on a tiny warehouse; the identities of the constant-elasticity form hold; bad specs are
refused with the field named."""

from __future__ import annotations

import json
import re
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest
import typer
from typer.testing import CliRunner

from kehu import Workspace
from kehu.analytics.run import SCORES_TABLE, analysis_run
from kehu.demo import generate
from kehu.errors import KehuInputError
from kehu.ingest.manifest import load_manifest
from kehu.model import ENTITIES
from kehu.simulate import Simulation, simulate

EXAMPLE = Path(__file__).resolve().parents[1] / "src/kehu/simulate/examples/retail.yaml"
FOOD, DAIRY = "食品", "乳制品"


def _discount(**kw: Any) -> dict[str, Any]:
    return {"kind": "discount", "category": FOOD, "percent": 10, "price_elasticity": -1.5, **kw}


SIM = {
    "name": "t", "base_window_days": 365, "horizon_days": 180, "segment_by": "tier",
    "scenarios": [
        # first match wins: dairy lines get 15 % (everyone), other food 10 % (gold+diamond)
        {"name": "mixed", "offers": [
            {"kind": "discount", "subcategory": DAIRY, "percent": 15, "price_elasticity": -2},
            _discount(audience={"tiers": ["gold", "diamond"]}, take_up=0.6,
                      cannibalisation=0.25)]},
        {"name": "inelastic", "offers": [_discount(percent=20, price_elasticity=0)]},
        {"name": "unit", "offers": [_discount(percent=20, price_elasticity=-1)]},
        {"name": "nobody", "offers": [_discount(take_up=0)]},
    ],
}


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    base = tmp_path_factory.mktemp("sim")
    s = generate("retail", 2000, seed=21, out=base / "src")
    w = Workspace.init(base / "ws")
    load_manifest(w, s.manifest)
    analysis_run(w)
    return w


@pytest.fixture(scope="module")
def result(ws: Workspace) -> Any:
    return simulate(ws, Simulation.parse(SIM))


def expected(ws: Workspace) -> pd.DataFrame:
    """Per segment and scenario, the documented formulas applied with pandas."""
    r = ws.warehouse.read
    sc = r(SCORES_TABLE).to_pandas()
    sc = sc[sc.run_id == sc.run_id.max()]
    as_of = pd.Timestamp(sc.as_of.iloc[0])
    cust = r("customers").to_pandas()[["customer_id"]].merge(
        sc[["customer_id", "tier"]], how="left")
    cust["tier"] = cust.tier.fillna("(none)")
    p = r("products").to_pandas()
    tx = r("transactions").to_pandas().merge(
        p[["product_id", "category", "subcategory", "unit_cost"]], how="left", on="product_id")
    day = tx.transaction_time.dt.normalize()
    tx = tx[(day > as_of - timedelta(days=365)) & (day <= as_of) & (tx.kind != "refund")]
    tx = tx.assign(cost=tx.cost.fillna(tx.quantity * tx.unit_cost).fillna(0))
    lines = tx.groupby(["customer_id", "product_id", "category", "subcategory"],
                       dropna=False).agg(R=("amount", "sum"), C=("cost", "sum")).reset_index()
    lines["M"] = lines.R - lines.C
    lines = lines.merge(cust, on="customer_id")
    scale = 180 / 365
    top = lines.tier.isin(["gold", "diamond"])
    food = lines.category == FOOD
    dairy = lines.subcategory == DAIRY
    rows = []

    def add(name: str, hit: pd.Series, d: Any, m: Any, u: Any, c: Any) -> None:
        g = (m - 1) * (1 - c)
        x = lines.assign(hit=hit, dr=hit * u * (g - m * d) * lines.R,
                         disc=hit * u * m * d * lines.R, incr=hit * u * g * lines.M)
        per = x.groupby("tier").agg(base_r=("R", "sum"), base_m=("M", "sum"), dr=("dr", "sum"),
                                    disc=("disc", "sum"), incr=("incr", "sum"))
        aff = x[x.hit].groupby("tier").customer_id.nunique()
        per = per.reindex(sorted(cust.tier.unique())).fillna(0) * scale
        per["affected"] = aff.reindex(per.index).fillna(0).astype(int)
        per["customers"] = cust.groupby("tier").size()
        per["scenario"] = name
        rows.append(per)

    fe = (0.9 ** -1.5)
    add("mixed", dairy | (food & top),
        d=dairy * 0.15 + (~dairy) * 0.10, m=dairy * 0.85 ** -2 + (~dairy) * fe,
        u=dairy * 1.0 + (~dairy) * 0.6, c=(~dairy) * 0.25)
    add("inelastic", food, 0.2, 1.0, 1.0, 0.0)
    add("unit", food, 0.2, 1 / 0.8, 1.0, 0.0)
    return pd.concat(rows).reset_index(names="segment")


def test_discounts_equal_pandas(ws: Workspace, result: Any) -> None:
    exp = expected(ws)
    assert result.segment_by == "tier" and {"gold", "silver"} <= {
        r["segment"] for r in result.by_segment}
    for e in exp.itertuples():
        got = result.row(e.scenario, e.segment)
        assert got["customers"] == e.customers
        assert got["affected"] == e.affected, (e.scenario, e.segment)
        assert got["baseline_revenue"] == pytest.approx(e.base_r, rel=1e-9)
        assert got["baseline_margin"] == pytest.approx(e.base_m, rel=1e-9)
        assert got["revenue"] == pytest.approx(e.base_r + e.dr, rel=1e-9)
        assert got["margin"] == pytest.approx(e.base_m + e.incr - e.disc, rel=1e-9)
        assert got["discount_cost"] == pytest.approx(e.disc, rel=1e-9, abs=1e-6)
        assert got["incremental_margin"] == pytest.approx(e.incr, rel=1e-9, abs=1e-6)
    mixed = result.row("mixed")
    assert 0 < mixed["affected"] < mixed["customers"] and mixed["discount_cost"] > 0
    assert result.row("mixed", "regular")["affected"] > 0   # dairy is for everyone


def test_elasticity_identities(result: Any) -> None:
    base = result.row("baseline")
    flat, unit = result.row("inelastic"), result.row("unit")
    # elasticity 0: food revenue × (1 − p); margin lower by exactly the discount
    food_rev = flat["discount_cost"] / 0.2
    assert flat["revenue"] == pytest.approx(base["revenue"] - 0.2 * food_rev)
    assert flat["margin"] == pytest.approx(base["margin"] - flat["discount_cost"])
    assert flat["incremental_margin"] == pytest.approx(0, abs=1e-6)
    # elasticity −1: revenue unchanged, margin lower (more units at the same cost each)
    assert unit["revenue"] == pytest.approx(base["revenue"], rel=1e-12)
    assert unit["margin"] < base["margin"]
    assert unit["discount_cost"] == pytest.approx(food_rev * 0.2 / 0.8)   # m·d·R, m = 1/0.8
    # take-up 0: the baseline
    nobody = result.row("nobody")
    assert nobody["affected"] > 0
    assert (nobody["revenue"], nobody["margin"]) == pytest.approx((base["revenue"],
                                                                   base["margin"]))


def test_example_file_runs(ws: Workspace) -> None:
    res = simulate(ws, Simulation.load(EXAMPLE), segment_by="region")
    top, everyone = res.overall[1], res.overall[2]
    assert res.segment_by == "region" and res.overall[0]["scenario"] == "baseline"
    assert top["affected"] < everyone["affected"]
    assert everyone["discount_cost"] > top["discount_cost"] > 0


@pytest.mark.parametrize("change,needle", [
    ({"category": "不存在"}, "scenarios.0 (s).offers.0: unknown category '不存在'. Known: "),
    ({"products": ["NOPE"]}, "unknown product 'NOPE'"),
    ({"audience": {"tiers": ["platinum"]}}, "unknown tier 'platinum'"),
])
def test_names_checked_against_warehouse(ws: Workspace, change: dict, needle: str) -> None:
    sim = Simulation.parse({"name": "x", "scenarios": [{"name": "s", "offers": [
        _discount(**change)]}]})
    with pytest.raises(KehuInputError, match=re.escape(needle)):
        simulate(ws, sim)


@pytest.mark.parametrize("data,needle", [
    ({"segment_by": "colour"}, "segment_by: Value error, unknown segment_by 'colour'; use one "
                               "of tier, rfm_class"),
    ({"offer": {"percent": 150}}, "offers.0.discount.percent: Value error, percent must be "
                                  "between 0 and 100, exclusive"),
    ({"offer": {"percent": 0}}, "percent must be between 0 and 100"),
    ({"offer": {"category": None}}, "a discount needs category, subcategory or products"),
    ({"offer": {"price_elasticity": 1.2}}, "price_elasticity: Input should be less than or "
                                           "equal to 0"),
    ({"offer": {"sql": "1=1"}}, "Extra inputs are not permitted"),
    ({"offer": {"kind": "coupon"}}, "does not match any of the expected tags: 'discount', "
                                    "'price_plan', 'bundle'"),
])
def test_spec_validation(data: dict, needle: str) -> None:
    offer = _discount(**data.pop("offer", {}))
    spec = {"name": "x", "scenarios": [{"name": "s", "offers": [offer]}], **data}
    with pytest.raises(KehuInputError, match=r"^x\.yaml: invalid simulation: ") as e:
        Simulation.parse(spec, "x.yaml")
    assert needle in str(e.value)


# -- a tiny hand-made warehouse: bundles and price plans ------------------------------------

AS_OF = date(2025, 6, 30)


def _append(w: Workspace, name: str, cols: dict[str, list[Any]]) -> None:
    schema = ENTITIES[name].arrow_schema()
    n = len(next(iter(cols.values())))
    w.warehouse.append(name, pa.table(
        {f.name: pa.array(cols[f.name], f.type) if f.name in cols else pa.nulls(n, f.type)
         for f in schema}, schema=schema))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    w = Workspace.init(tmp_path_factory.mktemp("tiny") / "ws")
    _append(w, "customers", {"customer_id": ["c1", "c2", "c3", "c4"],
                             "region": ["北", "北", "南", "南"]})
    _append(w, "products", {"product_id": ["A", "B", "P1", "P2"],
                            "unit_price": [10.0, 20.0, 100.0, 60.0],
                            "unit_cost": [6.0, 12.0, 30.0, 25.0]})
    t = datetime(2025, 3, 1, 12)
    #  c1: A in two orders, never B (adopter); c2: A + B together (existing bundle);
    #  c3: B only; c4: A and B in separate orders (neither)
    lines = [("c1", "o1", "A", 10.0, 6.0), ("c1", "o2", "A", 10.0, 6.0),
             ("c2", "o3", "A", 10.0, 6.0), ("c2", "o3", "B", 20.0, 12.0),
             ("c3", "o4", "B", 20.0, 12.0), ("c4", "o5", "A", 10.0, 6.0),
             ("c4", "o6", "B", 20.0, 12.0)]
    _append(w, "transactions", {
        "transaction_id": [f"t{i}" for i in range(len(lines))],
        "customer_id": [x[0] for x in lines], "order_id": [x[1] for x in lines],
        "product_id": [x[2] for x in lines], "amount": [x[3] for x in lines],
        "cost": [x[4] for x in lines], "quantity": [1.0] * len(lines),
        "transaction_time": [t] * len(lines)})
    #  P1 holders: c1 at 100 (offered), c2 at 50 (already cheaper: not offered), c3 without a
    #  fee on the contract (list price 100: offered), c4 ended (not offered)
    _append(w, "contracts", {
        "contract_id": ["k1", "k2", "k3", "k4"], "customer_id": ["c1", "c2", "c3", "c4"],
        "product_id": ["P1"] * 4, "start_date": [date(2024, 1, 1)] * 4,
        "end_date": [None, None, None, date(2025, 1, 1)],
        "status": ["active", "active", "active", "ended"],
        "monthly_fee": [100.0, 50.0, None, 100.0]})
    return w


PLAN = {"kind": "price_plan", "product_id": "P1", "to_product": "P2", "switch_rate": 0.5,
        "churn_effect": -0.5, "baseline_churn": 0.2}
TINY = {"name": "tiny", "segment_by": "region", "scenarios": [
    {"name": "bundle", "offers": [{"kind": "bundle", "product_a": "A", "product_b": "B",
                                   "percent": 25, "attach_uplift": 0.5}]},
    {"name": "plan", "offers": [PLAN]},
    {"name": "plan north", "offers": [{**PLAN, "audience": {"segment": {
        "name": "north", "rule": {"field": "region", "op": "=", "value": "北"}}}}]},
]}


def test_bundle_and_price_plan_by_hand(tiny: Workspace) -> None:
    res = simulate(tiny, Simulation.parse(TINY), as_of=AS_OF)
    base = res.row("baseline")
    assert (base["customers"], base["baseline_revenue"], base["baseline_margin"]) == (
        4, 100.0, 40.0)
    # bundle, d = 0.25: c1 adopts with w = 0.5, n_A = 2, R_A = 20, p_B = 20, c_B = 12
    #   Δrev = 0.5·(2·20·0.75 − 0.25·20) = 12.5; cost = 0.5·0.25·(40 + 20) = 7.5;
    #   incremental = 0.5·2·(20 − 12) = 8; c2's existing bundle: 0.25·30 = 7.5 given away
    b = res.row("bundle")
    assert b["affected"] == 2
    assert b["delta_revenue"] == pytest.approx(12.5 - 7.5)
    assert b["discount_cost"] == pytest.approx(7.5 + 7.5)
    assert b["incremental_margin"] == pytest.approx(8.0)
    assert b["delta_margin"] == pytest.approx(8.0 - 15.0)
    assert res.row("bundle", "南")["affected"] == 0
    # price plan, 12 months, k(0.2) = 0.9, k(0.1) = 0.95, per offered contract (f 100 → 60,
    # cost 30 → 25, switch 0.5): Δrev = 6·(57 − 90) = −198, Δmargin = 6·(33.25 − 63) = −178.5,
    # discount = 6·40·0.95 = 228; offered: c1 and c3
    p = res.row("plan")
    assert p["affected"] == 2
    assert p["delta_revenue"] == pytest.approx(-396.0)
    assert p["delta_margin"] == pytest.approx(-357.0)
    assert p["discount_cost"] == pytest.approx(456.0)
    assert p["incremental_margin"] == pytest.approx(99.0)
    north = res.row("plan north")
    assert north["affected"] == 1 and north["delta_revenue"] == pytest.approx(-198.0)
    assert res.row("plan north", "南")["affected"] == 0


def test_tiny_validation_and_cli(tiny: Workspace) -> None:
    bad = {**TINY, "scenarios": [{"name": "s", "offers": [{**PLAN, "to_product": "P9"}]}]}
    with pytest.raises(KehuInputError, match="unknown plan 'P9'"):
        simulate(tiny, Simulation.parse(bad), as_of=AS_OF)
    with pytest.raises(KehuInputError, match="segment_by 'tier' needs the scores"):
        simulate(tiny, Simulation.parse(TINY), as_of=AS_OF, segment_by="tier")
    from kehu.cli.commands import simulate as cmd

    app = typer.Typer()
    cmd.register(app)
    app.command("noop")(lambda: None)   # a second command keeps 'simulate' a subcommand
    f = tiny.root / "tiny.yaml"
    import yaml

    f.write_text(yaml.safe_dump(TINY, allow_unicode=True), encoding="utf-8")
    out = CliRunner().invoke(app, ["simulate", str(f), "-w", str(tiny.root), "--as-of",
                                   AS_OF.isoformat(), "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert [r["scenario"] for r in data["overall"]] == ["baseline", "bundle", "plan",
                                                        "plan north"]
    out = CliRunner().invoke(app, ["simulate", str(f), "-w", str(tiny.root), "--as-of",
                                   AS_OF.isoformat()])
    assert out.exit_code == 0 and "Best margin: bundle (¥-7 against the baseline)" in out.output
