"""Lifecycle stages and transitions against an independent pandas implementation of the same
rules on the demo company's warehouse rows."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
import pytest

from conftest import ENGINES, make_engine
from kehu import Workspace
from kehu.analytics.lifecycle import LifecycleRules, lifecycle, transitions
from kehu.demo import generate
from kehu.ingest.manifest import load_manifest


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    base = tmp_path_factory.mktemp("life")
    s = generate("retail", 2000, seed=5, out=base / "src")
    w = Workspace.init(base / "ws")
    load_manifest(w, s.manifest)
    return w


@pytest.fixture(scope="module", params=ENGINES)
def engine(request: pytest.FixtureRequest, ws: Workspace) -> Iterator[Any]:
    """Each test that takes ``engine`` runs on DuckDB and on Spark."""
    e = make_engine(request.param, ws.warehouse, request)
    yield e
    e.close()


def expected(ws: Workspace, as_of: date, r: LifecycleRules) -> pd.Series:
    d = pd.Timestamp(as_of)
    tx = ws.warehouse.read("transactions", ["customer_id", "transaction_time", "kind"]) \
        .to_pandas()
    tx = tx[(tx.transaction_time.dt.normalize() <= d) & (tx.kind != "refund")]
    days = tx.assign(day=tx.transaction_time.dt.normalize())[["customer_id", "day"]] \
        .drop_duplicates().sort_values(["customer_id", "day"])
    days["gap"] = days.groupby("customer_id").day.diff().dt.days
    cust = ws.warehouse.read("customers", ["customer_id", "signup_date"]).to_pandas()
    known = set(cust[cust.signup_date.isna() | (pd.to_datetime(cust.signup_date) <= d)]
                .customer_id) | set(days.customer_id)
    ce = ws.warehouse.read("churn_events", ["customer_id", "churn_date"]).to_pandas()
    ce = ce[pd.to_datetime(ce.churn_date) <= d].groupby("customer_id").churn_date.max()
    out = {}
    for cid in known:
        g = days[days.customer_id == cid]
        if g.empty:
            out[cid] = "prospect"
            continue
        last, first = g.day.max(), g.day.min()
        rec, ten = (d - last).days, (d - first).days
        churn = pd.Timestamp(ce[cid]) if cid in ce.index else None
        after_churn = churn is not None and last > churn
        recent = (g.day > d - pd.Timedelta(days=r.trend_window_days)).sum()
        prior = ((g.day > d - pd.Timedelta(days=2 * r.trend_window_days))
                 & (g.day <= d - pd.Timedelta(days=r.trend_window_days))).sum()
        ratio = recent / prior if prior else np.nan
        trend = "rising" if (prior == 0 and recent > 0) or ratio >= 1.25 else (
            "falling" if ratio <= 0.8 else "stable")
        returned = ((g.day > d - pd.Timedelta(days=r.active_days))
                    & (g.gap > r.dormant_days)).any()
        if (churn is not None and not after_churn) or rec > r.dormant_days:
            out[cid] = "churned"
        elif rec > r.active_days:
            out[cid] = "dormant"
        elif returned or after_churn:
            out[cid] = "won_back"
        elif ten <= r.new_days:
            out[cid] = "new"
        elif trend == "rising":
            out[cid] = "growing"
        elif trend == "falling":
            out[cid] = "declining"
        else:
            out[cid] = "active"
    return pd.Series(out).sort_index()


@pytest.mark.parametrize("as_of", [date(2024, 6, 30), date(2025, 12, 30)])
def test_stages_equal_pandas(ws: Workspace, engine: Any, as_of: date) -> None:
    rules = LifecycleRules()
    e = engine
    got = lifecycle(e.table("transactions"), e.table("customers"), e.table("churn_events"),
                    as_of, rules).to_pandas().set_index("customer_id").stage.sort_index()
    exp = expected(ws, as_of, rules)
    assert list(got.index) == list(exp.index)
    assert (got == exp).all(), (got[got != exp].head(), exp[got != exp].head())
    assert got.nunique() >= 6


def test_transitions_cover_everyone(engine: Any) -> None:
    e = engine
    m = transitions(e.table("transactions"), e.table("customers"), e.table("churn_events"),
                    date(2024, 6, 30), date(2025, 12, 30)).to_pandas()
    end = lifecycle(e.table("transactions"), e.table("customers"), e.table("churn_events"),
                    date(2025, 12, 30)).to_pandas()
    assert m.customers.sum() == len(end)
    assert "not_yet_customer" in set(m.stage_from)
