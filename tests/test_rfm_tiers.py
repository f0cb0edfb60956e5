"""RFM, the eight classes, tiers and Pareto on the demo company, against an independent pandas
recomputation over the same warehouse rows."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import date
from typing import Any

import ibis
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import ENGINES, make_engine
from kehu import Workspace
from kehu.analytics.rfm import RfmClassScheme, class_summary, rfm, rfm_classes
from kehu.analytics.tiers import (
    Tier,
    TierScheme,
    pareto,
    tier_changes,
    tiers_as_of,
    trailing_value,
)
from kehu.demo import generate
from kehu.ingest.manifest import load_manifest

AS_OF = date(2025, 6, 30)


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    base = tmp_path_factory.mktemp("rfm")
    s = generate("retail", 2500, seed=21, out=base / "src")
    w = Workspace.init(base / "ws")
    load_manifest(w, s.manifest)
    return w


@pytest.fixture(scope="module", params=ENGINES)
def engine(request: pytest.FixtureRequest, ws: Workspace) -> Iterator[Any]:
    """Each test that takes ``engine`` runs on DuckDB and on Spark."""
    e = make_engine(request.param, ws.warehouse, request)
    yield e
    e.close()


@pytest.fixture(scope="module")
def tx(ws: Workspace) -> pd.DataFrame:
    df = ws.warehouse.read("transactions", ["customer_id", "transaction_time", "amount",
                                            "cost", "kind"]).to_pandas()
    df["day"] = df.transaction_time.dt.normalize()
    return df


def expected_rfm(tx: pd.DataFrame, as_of: date, window: int = 180) -> pd.DataFrame:
    d = pd.Timestamp(as_of)
    t = tx[(tx.day <= d) & (tx.kind.isna() | (tx.kind != "refund"))]
    days = t.groupby(["customer_id", "day"]).amount.sum().reset_index()
    g = days.groupby("customer_id")
    out = pd.DataFrame({
        "recency_days": (d - g.day.max()).dt.days, "tenure_days": (d - g.day.min()).dt.days,
        "frequency": g.size(), "monetary_total": g.amount.sum(),
        "recent": g.day.apply(lambda s: (s > d - pd.Timedelta(days=window)).sum()),
        "prior": g.day.apply(lambda s: ((s > d - pd.Timedelta(days=2 * window))
                                        & (s <= d - pd.Timedelta(days=window))).sum()),
    })
    n = len(out)
    # score = 1 + floor(5 * min-rank / n), rank 0-based
    out["r_score"] = 1 + np.floor(5 * ((-out.recency_days).rank(method="min") - 1) / n)
    out["f_score"] = 1 + np.floor(5 * (out.frequency.rank(method="min") - 1) / n)
    out["m_score"] = 1 + np.floor(5 * (out.monetary_total.rank(method="min") - 1) / n)
    ratio = out.recent / out.prior.replace(0, np.nan)
    out["trend"] = np.where((out.prior == 0) & (out.recent > 0), "rising",
                            np.where(ratio >= 1.25, "rising",
                                     np.where(ratio <= 0.8, "falling", "stable")))
    return out


def test_rfm_equals_pandas(engine: Any, tx: pd.DataFrame) -> None:
    got = rfm(engine.table("transactions"), AS_OF).to_pandas().set_index("customer_id")
    exp = expected_rfm(tx, AS_OF)
    assert set(got.index) == set(exp.index)
    got = got.loc[exp.index]
    for col in ("recency_days", "tenure_days", "frequency", "r_score", "f_score", "m_score"):
        np.testing.assert_array_equal(got[col].to_numpy(), exp[col].to_numpy().astype(int),
                                      err_msg=col)
    np.testing.assert_allclose(got.monetary_total, exp.monetary_total, rtol=1e-9)
    assert (got.trend.to_numpy() == exp.trend.to_numpy()).all()
    # scores spread over the quintiles
    assert set(got.r_score) == {1, 2, 3, 4, 5}


@pytest.mark.parametrize("reference", ["mean", "median"])
def test_eight_classes_equal_pandas_and_partition(engine: Any, tx: pd.DataFrame,
                                                  reference: str) -> None:
    scheme = RfmClassScheme(reference=reference)
    got = rfm_classes(rfm(engine.table("transactions"), AS_OF), scheme).to_pandas() \
        .set_index("customer_id")
    exp = expected_rfm(tx, AS_OF).loc[got.index]
    ref = (lambda s: s.mean()) if reference == "mean" else (lambda s: s.median())
    hi_r = exp.recency_days < ref(exp.recency_days)
    hi_f = exp.frequency > ref(exp.frequency)
    hi_m = exp.monetary_total > ref(exp.monetary_total)
    lookup = {(c.r == "high", c.f == "high", c.m == "high"): c.code for c in scheme.classes}
    expected = [lookup[k] for k in zip(hi_r, hi_f, hi_m, strict=True)]
    assert list(got.rfm_class) == expected
    assert got.rfm_class.notna().all()
    summ = class_summary(rfm_classes(rfm(engine.table("transactions"), AS_OF), scheme)) \
        .to_pandas()
    assert summ.customers.sum() == len(got)
    assert summ.customer_share.sum() == pytest.approx(1.0)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 400),
                          st.floats(1, 10_000, allow_nan=False)), min_size=1, max_size=60),
       st.sampled_from(["mean", "median"]))
def test_classes_always_partition(rows: list[tuple[int, int, float]], reference: str) -> None:
    t = ibis.memtable(pd.DataFrame({
        "customer_id": [f"C{c}" for c, _, _ in rows],
        "transaction_time": [pd.Timestamp("2024-01-01") + pd.Timedelta(days=d) for _, d, _ in rows],
        "amount": [a for _, _, a in rows], "kind": [None] * len(rows)}))
    out = rfm_classes(rfm(t, date(2025, 6, 1)), RfmClassScheme(reference=reference)).to_pandas()
    assert out.customer_id.is_unique and len(out) == len({c for c, _, _ in rows})
    assert out.rfm_class.notna().all()
    assert out.r_score.between(1, 5).all() and (out.recency_days >= 0).all()
    assert (out.recency_days <= out.tenure_days).all()


def _trailing(tx: pd.DataFrame, customers: list[str], as_of: date) -> pd.DataFrame:
    d = pd.Timestamp(as_of)
    w = tx[(tx.day <= d) & (tx.day > d - pd.Timedelta(days=365))]
    spend = w.groupby("customer_id").amount.sum()
    margin = (w.amount - w.cost.fillna(0)).groupby(w.customer_id).sum()
    return pd.DataFrame({"spend": spend.reindex(customers).fillna(0.0),
                         "margin": margin.reindex(customers).fillna(0.0)})


def test_tiers_and_changes_equal_pandas(ws: Workspace, engine: Any, tx: pd.DataFrame) -> None:
    customers = ws.warehouse.read("customers", ["customer_id"]).column(0).to_pylist()
    scheme = TierScheme()
    cuts = [(t.code, t.cut) for t in scheme.tiers]

    def tier_of(v: float) -> str:
        return next(code for code, cut in cuts if v >= cut)

    eng = engine
    for as_of in (date(2024, 12, 31), AS_OF):
        got = tiers_as_of(eng.table("transactions"), eng.table("customers"), as_of) \
            .to_pandas().set_index("customer_id")
        exp = _trailing(tx, customers, as_of)
        assert len(got) == len(customers)
        np.testing.assert_allclose(got.loc[exp.index].spend, exp.spend, rtol=1e-9)
        assert list(got.loc[exp.index].tier) == [tier_of(v) for v in exp.spend]
    ch = tier_changes(eng.table("transactions"), eng.table("customers"), date(2024, 12, 31),
                      AS_OF).to_pandas().set_index("customer_id")
    a = _trailing(tx, customers, date(2024, 12, 31)).spend.map(tier_of)
    b = _trailing(tx, customers, AS_OF).spend.map(tier_of)
    order = {code: i for i, (code, _) in enumerate(cuts)}
    exp_move = np.where(b.map(order) < a.map(order), "up",
                        np.where(b.map(order) > a.map(order), "down", "same"))
    assert list(ch.loc[a.index].move) == list(exp_move)


def test_percentile_tiers_and_pareto(engine: Any, tx: pd.DataFrame) -> None:
    eng = engine
    scheme = TierScheme(method="percentiles", tiers=[
        Tier(code="top", name_zh="顶级", name_en="Top", cut=0.9),
        Tier(code="rest", name_zh="其他", name_en="Rest", cut=0)])
    got = tiers_as_of(eng.table("transactions"), eng.table("customers"), AS_OF, scheme) \
        .to_pandas()
    buyers = (got.spend > 0).sum()
    n = len(got)
    # percent_rank >= 0.9 among all customers, and a positive spend
    assert (got.tier == "top").sum() == pytest.approx(
        min(buyers, n - math.ceil(0.9 * (n - 1))), abs=2)
    vals = trailing_value(eng.table("transactions"), eng.table("customers"), AS_OF)
    rep = pareto(vals)
    spend = got.spend.sort_values(ascending=False).to_numpy()
    for key, share in (("1%", 0.01), ("20%", 0.2)):
        k = math.ceil(len(spend) * share)
        assert rep.top_share[key]["revenue"] == pytest.approx(spend[:k].sum() / spend.sum())
    cum = np.cumsum(spend) - spend
    assert rep.abc["A"]["customers"] == int((cum < 0.8 * spend.sum()).sum())
    assert sum(v["customers"] for v in rep.abc.values()) == len(spend)


def test_tier_scheme_validation() -> None:
    with pytest.raises(ValueError, match="strictly decreasing"):
        TierScheme(tiers=[Tier(code="a", name_zh="a", name_en="a", cut=1),
                          Tier(code="b", name_zh="b", name_en="b", cut=5)])

