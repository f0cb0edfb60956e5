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
    sc = sc[sc.run_id == sc.run_id.max()][["customer_id", "tier", "clv", "p_alive"]]
    prods = r("products", ["product_id", "category"]).to_pandas()
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
    after = cube(cached, CubeQuery(measures=["transactions"])).to_pandas().iloc[0, 0]
    assert after == before + 1
