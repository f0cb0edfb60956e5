"""The analysis run keeps history: each run appends a complete, consistent set of scores."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from kehu import Workspace
from kehu.analytics.run import RUNS_TABLE, SCORES_TABLE, analysis_run
from kehu.analytics.tiers import tiers_as_of
from kehu.datasets import load


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    w = Workspace.init(tmp_path_factory.mktemp("run") / "ws")
    load(w, "cdnow")
    return w


def test_runs_append_history(ws: Workspace) -> None:
    first = analysis_run(ws, date(1997, 9, 30))
    second = analysis_run(ws, date(1998, 6, 30))
    runs = sorted(ws.warehouse.read(RUNS_TABLE).to_pylist(), key=lambda r: r["started_at"])
    assert [r["run_id"] for r in runs][-2:] == [first.run_id, second.run_id]
    assert [r["as_of"] for r in runs][-2:] == [date(1997, 9, 30), date(1998, 6, 30)]
    scores = ws.engine.table(SCORES_TABLE)
    counts = {r["run_id"]: r["n"] for r in scores.group_by("run_id").aggregate(
        n=scores.count()).to_pyarrow().to_pylist()}
    assert counts[first.run_id] == counts[second.run_id] == 23570
    a = scores.filter(scores.run_id == first.run_id).to_pandas().set_index("customer_id")
    b = scores.filter(scores.run_id == second.run_id).to_pandas().set_index("customer_id")
    # every customer bought in 1997 Q1, so all have RFM at both dates; classes partition
    assert a.rfm_class.notna().all() and b.rfm_class.notna().all()
    assert (b.frequency >= a.loc[b.index].frequency).all()
    # tiers in the run equal the tier analytic at the same date
    t = tiers_as_of(ws.engine.table("transactions"), ws.engine.table("customers"),
                    date(1998, 6, 30)).to_pandas().set_index("customer_id")
    assert (b.tier == t.loc[b.index].tier).all()
    # CLV: probabilities in [0, 1]; more frequent buyers are worth more on average
    assert b.p_alive.between(0, 1).all()
    assert b[b.frequency >= 5].clv.mean() > b[b.frequency == 1].clv.mean()
    # CDNOW has no products: nothing to cross-sell, so potential value is the peer gap
    assert (b.potential_basis == "peer_gap").all()
    # the calibration-period CLV model is the published one (weeks vs days scale alpha)
    p = first.clv["bgnbd"]
    assert p["r"] == pytest.approx(0.2516, abs=2e-3)  # full CDNOW, days: see test_clv for FHL


def test_run_without_data_is_a_clear_error(tmp_path: Path) -> None:
    w = Workspace.init(tmp_path / "empty")
    with pytest.raises(ValueError, match="No transactions yet"):
        analysis_run(w)


def test_new_score_columns_extend_an_older_history(tmp_path: Path) -> None:
    import pyarrow as pa

    w = Workspace.init(tmp_path / "w")
    load(w, "cdnow_sample")
    old = pa.table({"run_id": ["old"], "as_of": [date(1997, 1, 1)], "customer_id": ["0001"],
                    "tier": ["regular"]})
    w.warehouse.append(SCORES_TABLE, old)  # a history written by an older kehu
    rep = analysis_run(w, date(1997, 9, 30))
    t = w.warehouse.read(SCORES_TABLE).to_pandas()
    assert {"loyalty_index", "clv", "lifecycle_stage"} <= set(t.columns)
    assert t[t.run_id == "old"].clv.isna().all()
    assert t[t.run_id == rep.run_id].clv.notna().any()


def test_run_writes_forecast_and_clusters(ws: Workspace) -> None:
    rep = analysis_run(ws, date(1998, 3, 31))
    f = ws.warehouse.read("forecasts").to_pandas()
    mine = f[f.run_id == rep.run_id]
    assert set(mine.group_by) == {"all", "tier"} and (mine.month.max() == 12)
    overall = mine[mine.group_by == "all"].set_index("month").purchases
    by_tier = mine[mine.group_by == "tier"].groupby("month").purchases.sum()
    assert (overall - by_tier).abs().max() < 1e-6  # tiers partition the customers
    s = ws.warehouse.read(SCORES_TABLE).to_pandas()
    s = s[s.run_id == rep.run_id]
    assert s.cluster.notna().sum() == s.frequency.notna().sum() and rep.clusters


def test_customer_360_shows_the_latest_scores(ws: Workspace) -> None:
    from kehu.customer360 import customer_360

    rep = analysis_run(ws, date(1998, 6, 30))
    c = customer_360(ws, "00001", limit=5)
    s = ws.warehouse.read(SCORES_TABLE).to_pandas()
    row = s[(s.run_id == rep.run_id) & (s.customer_id == "00001")].iloc[0]
    assert c.scores["run_id"] == rep.run_id
    assert c.scores["rfm_class"] == row.rfm_class and c.scores["clv"] == pytest.approx(row.clv)
