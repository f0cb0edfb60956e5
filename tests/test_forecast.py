"""Forecast from the CLV models: consistent with the model's cumulative expectation and close
to what CDNOW customers actually did in the following nine months."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pytest

from kehu import Workspace
from kehu.analytics.forecast import forecast
from kehu.analytics.summary import customer_summary
from kehu.datasets import DATASETS, load
from kehu.models.clv import BetaGeo

AS_OF = date(1997, 9, 30)


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    w = Workspace.init(tmp_path_factory.mktemp("fc") / "ws")
    load(w, "cdnow")
    return w


def test_forecast_matches_model_and_reality(ws: Workspace) -> None:
    f = forecast(ws.engine, AS_OF, months=9)
    assert list(f.month) == list(range(1, 10))
    assert (f.purchases_low <= f.purchases).all() and (f.purchases <= f.purchases_high).all()
    s = customer_summary(ws.engine.table("transactions"), AS_OF, "D").to_pandas()
    bg = BetaGeo().fit(s.frequency, s.recency, s["T"])
    cum = bg.expected_purchases(270.0, s.frequency, s.recency, s["T"]).sum()
    assert f.purchases.sum() == pytest.approx(cum, rel=1e-9)
    # actual repeat purchase days in the 270 days after the cut-off, straight from the file
    days = set()
    for line in DATASETS["cdnow"].path.read_text().splitlines()[1:]:
        parts = line.split()
        if parts:
            d = date(int(parts[1][:4]), int(parts[1][4:6]), int(parts[1][6:]))
            if AS_OF < d <= AS_OF + timedelta(days=270):
                days.add((parts[0], d))
    actual = len(days)
    assert abs(f.purchases.sum() - actual) / actual < 0.25
    assert np.all(np.diff(f.purchasing_customers) <= 1e-9)  # a closed cohort fades


def test_forecast_by_group_needs_a_run(tmp_path: Path, ws: Workspace) -> None:
    with pytest.raises(ValueError, match="kehu run"):
        w = Workspace.init(tmp_path / "x")
        load(w, "cdnow_sample")
        forecast(w.engine, AS_OF, by="tier")


def test_forecast_by_segment(tmp_path: Path) -> None:
    from kehu.analytics.run import analysis_run
    from kehu.store import services as sv

    w = Workspace.init(tmp_path / "s")
    load(w, "cdnow_sample")
    sv.save_definition(w.store, sv.DefinitionIn(kind="segment", name="frequent", spec={
        "name": "frequent", "rule": {"field": "frequency", "op": ">=", "value": 3}}), "t")
    analysis_run(w, AS_OF)
    f = forecast(w.engine, AS_OF, months=3, by="segment")
    assert set(f.segment) == {"frequent"} and len(f) == 3
    total = forecast(w.engine, AS_OF, months=3)
    assert (f.purchases.to_numpy() < total.purchases.to_numpy()).all()
