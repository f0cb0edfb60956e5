"""Cube answers equal pandas totals over the same warehouse rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kehu import Workspace
from kehu.analytics.cube import CubeQuery, Filter, cube, drill_down
from kehu.analytics.run import SCORES_TABLE, analysis_run
from kehu.demo import generate
from kehu.errors import KehuInputError
from kehu.ingest.manifest import load_manifest


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    base = tmp_path_factory.mktemp("cube")
    s = generate("retail", 2000, seed=17, out=base / "src")
    w = Workspace.init(base / "ws")
    load_manifest(w, s.manifest)
    analysis_run(w)
    return w


@pytest.fixture(scope="module")
def facts(ws: Workspace) -> pd.DataFrame:
    r = ws.warehouse.read
    tx = r("transactions").to_pandas()
    cust = r("customers", ["customer_id", "region", "city"]).to_pandas()
    sc = r(SCORES_TABLE).to_pandas()
    sc = sc[sc.run_id == sc.run_id.max()][["customer_id", "tier", "rfm_class", "clv",
                                           "p_alive"]]
    prods = r("products", ["product_id", "category", "subcategory"]).to_pandas()
    df = tx.merge(cust, on="customer_id", how="left", suffixes=("_tx", "")) \
        .merge(sc, on="customer_id", how="left").merge(prods, on="product_id", how="left")
    df["year"] = df.transaction_time.dt.year.astype(str)
    df["month"] = df.transaction_time.dt.strftime("%Y-%m")
    return df


def test_revenue_margin_orders_by_year_and_region(ws: Workspace, facts: pd.DataFrame) -> None:
    got = cube(ws.engine, CubeQuery(measures=["revenue", "margin", "orders", "buyers"],
                                    by=["year", "region"])).to_pandas()
    g = facts.assign(m=facts.amount - facts.cost.fillna(0),
                     o=facts.order_id.fillna(facts.transaction_id))
    exp = g.groupby(["year", "region"]).agg(revenue=("amount", "sum"), margin=("m", "sum"),
                                            orders=("o", "nunique"),
                                            buyers=("customer_id", "nunique")).reset_index()
    m = got.merge(exp, on=["year", "region"], suffixes=("", "_exp"))
    assert len(m) == len(exp) == len(got)
    for c in ("revenue", "margin"):
        np.testing.assert_allclose(m[c], m[f"{c}_exp"], rtol=1e-9)
    assert (m.orders == m.orders_exp).all() and (m.buyers == m.buyers_exp).all()


def test_filters_dates_and_customer_measures(ws: Workspace, facts: pd.DataFrame) -> None:
    q = CubeQuery(measures=["revenue"], by=["category"],
                  where=[Filter(dimension="tier", values=["gold", "diamond"])],
                  start="2024-01-01", end="2024-12-31")
    got = cube(ws.engine, q).to_pandas().set_index("category").revenue
    f = facts[facts.tier.isin(["gold", "diamond"])
              & (facts.transaction_time >= "2024-01-01")
              & (facts.transaction_time < "2025-01-01")]
    exp = f.groupby("category").amount.sum()
    np.testing.assert_allclose(got.loc[exp.index], exp, rtol=1e-9)
    cm = cube(ws.engine, CubeQuery(measures=["customers", "clv"], by=["tier"])).to_pandas()
    sc = ws.warehouse.read(SCORES_TABLE).to_pandas()
    sc = sc[sc.run_id == sc.run_id.max()]
    assert cm.customers.sum() == ws.warehouse.count("customers")
    np.testing.assert_allclose(cm.set_index("tier").clv.sort_index(),
                               sc.groupby("tier").clv.sum().sort_index(), rtol=1e-9)


def test_guards_and_drill_down() -> None:
    assert drill_down("year") == "quarter" and drill_down("region") == "city"
    assert drill_down("month") is None
    with pytest.raises(KehuInputError, match="cannot be cut by month"):
        _validate_only(CubeQuery(measures=["clv"], by=["month"]))
    with pytest.raises(KehuInputError, match="Unknown measure"):
        _validate_only(CubeQuery(measures=["profitz"]))


def _validate_only(q: CubeQuery) -> None:
    from kehu.analytics.cube import _validate

    _validate(q)


AGG_QUERIES = [
    # (query, answered from the monthly aggregate?)
    (CubeQuery(measures=["revenue", "margin", "transactions", "orders", "buyers"],
               by=["month"]), True),
    (CubeQuery(measures=["buyers", "orders", "avg_order_value"], by=["quarter", "tier"]), True),
    (CubeQuery(measures=["buyers", "revenue"], by=["month", "channel"]), True),
    (CubeQuery(measures=["revenue", "orders"], by=["year", "channel"]), True),
    (CubeQuery(measures=["buyers", "transactions"]), True),
    (CubeQuery(measures=["buyers"], by=["month", "region"],
               where=[Filter(dimension="channel", values=["store"])]), True),
    (CubeQuery(measures=["buyers"], by=["month"],
               where=[Filter(dimension="year", values=["2024"])]), True),
    (CubeQuery(measures=["buyers", "revenue"], by=["year"], start="2024-01-01",
               end="2025-12-31"), True),
    (CubeQuery(measures=["revenue", "margin"], by=["category", "rfm_class"],
               start="2024-03-01", end="2024-08-31"), True),
    # not exact from the aggregate: answered from the lines
    (CubeQuery(measures=["buyers"], by=["year", "channel"]), False),
    (CubeQuery(measures=["buyers"], by=["channel"]), False),
    (CubeQuery(measures=["buyers"], by=["region"],
               where=[Filter(dimension="channel", values=["store"])]), False),
    (CubeQuery(measures=["buyers"], by=["category"]), False),
    (CubeQuery(measures=["buyers"], by=["year"],
               where=[Filter(dimension="month", values=["2024-01", "2024-02"])]), False),
    (CubeQuery(measures=["buyers"], by=["quarter"], start="2024-02-01"), False),
    (CubeQuery(measures=["revenue"], by=["month"], start="2024-02-10"), False),
    (CubeQuery(measures=["buyers"], start="2024-01-01"), False),
    (CubeQuery(measures=["revenue"], by=["subcategory"]), False),
]


def _pandas_answer(facts: pd.DataFrame, q: CubeQuery) -> pd.DataFrame:
    """The query computed independently with pandas over the joined transaction lines."""
    f = facts.assign(m=facts.amount - facts.cost.fillna(0),
                     o=facts.order_id.fillna(facts.transaction_id),
                     quarter=facts.transaction_time.dt.year.astype(str) + "-Q"
                     + facts.transaction_time.dt.quarter.astype(str))
    for flt in q.where:
        f = f[f[flt.dimension].astype(str).isin(flt.values)]
    if q.start:
        f = f[f.transaction_time.dt.date >= q.start]
    if q.end:
        f = f[f.transaction_time.dt.date <= q.end]
    spec = {"revenue": ("amount", "sum"), "margin": ("m", "sum"),
            "transactions": ("amount", "size"), "orders": ("o", "nunique"),
            "buyers": ("customer_id", "nunique")}
    wanted = {m: spec[m] for m in q.measures if m in spec}
    if "avg_order_value" in q.measures:
        wanted.update(revenue=spec["revenue"], orders=spec["orders"])
    if q.by:
        out = f.groupby([f[d].astype(str) for d in q.by]).agg(**wanted).reset_index()
    else:
        out = f.assign(_all=0).groupby("_all").agg(**wanted).reset_index(drop=True)
    if "avg_order_value" in q.measures:
        out["avg_order_value"] = out.revenue / out.orders
    return out


@pytest.mark.parametrize("q,from_aggregate", AGG_QUERIES,
                         ids=[f"q{i}" for i in range(len(AGG_QUERIES))])
def test_monthly_aggregate_answers_exactly(ws: Workspace, facts: pd.DataFrame, q: CubeQuery,
                                           from_aggregate: bool) -> None:
    from kehu.analytics import cube_aggregate

    assert cube_aggregate.is_current(ws.engine, cube_aggregate.table_for(q))
    assert cube_aggregate.can_answer(q) is from_aggregate
    got = cube(ws.engine, q).to_pandas()
    exp = _pandas_answer(facts, q)
    assert len(got) == len(exp)
    if q.by:
        got = got.set_index(q.by).sort_index()
        exp = exp.set_index(q.by).sort_index()
    for m in q.measures:
        np.testing.assert_allclose(got[m].to_numpy(float), exp[m].to_numpy(float), rtol=1e-9,
                                   err_msg=m)


def test_monthly_aggregates_are_smaller_than_the_lines(ws: Workspace) -> None:
    from kehu.analytics.cube_aggregate import AGG_TABLE, COARSE_TABLE

    lines = ws.warehouse.count("transactions")
    # (at 1 M customers the coarse table has ~1 % of the lines: docs/benchmarks.md)
    assert 0 < ws.warehouse.count(COARSE_TABLE) < ws.warehouse.count(AGG_TABLE) < lines


def test_cached_engine_gives_the_same_answers_and_sees_new_versions(ws: Workspace) -> None:
    import pyarrow as pa

    from kehu.warehouse import Engine

    cached = Engine(ws.warehouse, cache=True)
    q = CubeQuery(measures=["revenue", "buyers"], by=["year", "region"])
    a = cube(ws.engine, q).to_pandas()
    b = cube(cached, q).to_pandas()
    pd.testing.assert_frame_equal(a, b)
    before = cube(cached, CubeQuery(measures=["transactions"])).to_pandas().iloc[0, 0]
    tx = ws.warehouse.read("transactions").slice(0, 1)
    tx = tx.set_column(tx.schema.get_field_index("transaction_id"), "transaction_id",
                       pa.array(["NEW-1"]))
    ws.warehouse.append("transactions", tx)
    from kehu.analytics import cube_aggregate

    assert not cube_aggregate.is_current(cached)   # stale: the lines answer
    assert not cube_aggregate.is_current(cached, cube_aggregate.COARSE_TABLE)
    after = cube(cached, CubeQuery(measures=["transactions"])).to_pandas().iloc[0, 0]
    assert after == before + 1


@pytest.mark.parametrize("value", ["广\x00东", "\ud800"])
def test_filter_value_the_engine_cannot_compare_is_refused(value: str) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="NUL or an unpaired surrogate"):
        Filter(dimension="region", values=[value])
