"""NPS, CSAT, complaints, loyalty and NPS drivers against pandas on the demo company."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from kehu import Workspace
from kehu.analytics.rfm import rfm
from kehu.analytics.run import SCORES_TABLE, analysis_run
from kehu.analytics.satisfaction import complaints, loyalty_index, nps_csat, nps_drivers
from kehu.demo import generate
from kehu.ingest.manifest import load_manifest


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    base = tmp_path_factory.mktemp("sat")
    s = generate("telco", 3000, seed=4, out=base / "src")
    w = Workspace.init(base / "ws")
    load_manifest(w, s.manifest)
    analysis_run(w)
    return w


def _nps(scores: pd.Series) -> float:
    return 100 * ((scores >= 9).mean() - (scores <= 6).mean())


def test_nps_by_tier_equals_pandas(ws: Workspace) -> None:
    got = nps_csat(ws.engine, "tier").to_pandas().set_index("tier")
    sv = ws.warehouse.read("surveys").to_pandas()
    sc = ws.warehouse.read(SCORES_TABLE).to_pandas()
    sc = sc[sc.run_id == sc.run_id.max()][["customer_id", "tier"]]
    df = sv[sv.kind == "nps"].merge(sc, on="customer_id", how="left")
    exp = df.groupby("tier").score.apply(_nps)
    np.testing.assert_allclose(got.loc[exp.index].nps, exp, rtol=1e-9)
    overall = nps_csat(ws.engine).to_pandas().iloc[0]
    assert overall.nps == pytest.approx(_nps(sv[sv.kind == "nps"].score))


def test_complaints_and_resolution_hours(ws: Workspace) -> None:
    got = complaints(ws.engine).to_pandas().set_index("category")
    tk = ws.warehouse.read("tickets").to_pandas()
    tk["category"] = tk.category.fillna("-")
    hours = (tk.resolved_time - tk.opened_time).dt.total_seconds() / 3600
    exp = hours.groupby(tk.category).median()
    np.testing.assert_allclose(got.loc[exp.index].median_hours, exp, rtol=1e-6)
    assert (got.tickets.sum()) == len(tk)


def test_complaints_lower_nps_as_planted(ws: Workspace) -> None:
    d = nps_drivers(ws.engine).to_pandas()
    assert len(d) >= 3 and (d.difference < 0).all()


def test_loyalty_index_formula(ws: Workspace) -> None:
    as_of = date(2025, 12, 31)
    r = rfm(ws.engine.table("transactions"), as_of)
    got = loyalty_index(ws.engine, r).to_pandas().set_index("customer_id").loyalty_index
    rr = r.to_pandas().set_index("customer_id")
    sv = ws.warehouse.read("surveys").to_pandas()
    last = sv[sv.kind == "nps"].sort_values("survey_time").groupby("customer_id").score.last()
    comp = pd.DataFrame({"rep": (rr.repeat_purchases / 5).clip(upper=1),
                         "ten": (rr.tenure_days / 730).clip(upper=1),
                         "trend": rr.trend.map({"rising": 1.0, "falling": 0.0}).fillna(0.5),
                         "nps": last.reindex(rr.index) / 10})
    exp = 100 * comp.mean(axis=1, skipna=True)
    np.testing.assert_allclose(got.loc[exp.index], exp, rtol=1e-9)
    assert got.between(0, 100).all()


def test_run_keeps_the_satisfaction_summary(ws: Workspace) -> None:
    import json

    from kehu.analytics.run import RUNS_TABLE

    rep = analysis_run(ws)
    runs = ws.warehouse.read(RUNS_TABLE).to_pylist()
    details = json.loads(next(r for r in runs if r["run_id"] == rep.run_id)["details"])
    sv = ws.warehouse.read("surveys").to_pandas()
    assert details["satisfaction"]["overall"]["nps"] == pytest.approx(
        _nps(sv[sv.kind == "nps"].score))
    assert {r["tier"] for r in details["satisfaction"]["by_tier"]} <= {
        "diamond", "gold", "silver", "regular"}
