"""CDNOW through the public importer: per-customer frequency, recency, T and monetary value at
a cut-off equal an independent computation straight from the bundled text file."""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from pathlib import Path

import pytest

from kehu import Workspace
from kehu.analytics import customer_summary
from kehu.datasets import DATASETS, load

CUTOFF = date(1997, 9, 30)  # the 39-week calibration period of Fader, Hardie & Lee (2005)


def independent_summary(path: Path, cutoff: date, unit: float) -> dict[str, tuple]:
    spend: dict[str, dict[date, float]] = defaultdict(lambda: defaultdict(float))
    for line in path.read_text().splitlines()[1:]:
        parts = line.split()
        if not parts:
            continue
        cid, d, _n, amount = parts
        day = date(int(d[:4]), int(d[4:6]), int(d[6:]))
        if day <= cutoff:
            spend[cid][day] += float(amount)
    out = {}
    for cid, days in spend.items():
        ordered = sorted(days)
        first, last = ordered[0], ordered[-1]
        repeat = [days[d] for d in ordered[1:]]
        out[cid] = (len(ordered) - 1, (last - first).days / unit, (cutoff - first).days / unit,
                    sum(repeat) / len(repeat) if repeat else 0.0)
    return out


@pytest.fixture(scope="module")
def cdnow(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    ws = Workspace.init(tmp_path_factory.mktemp("cdnow") / "ws")
    load(ws, "cdnow")
    return ws


@pytest.mark.parametrize("freq,unit", [("D", 1.0), ("W", 7.0)])
def test_summary_equals_independent_computation(cdnow: Workspace, freq: str, unit: float) -> None:
    expected = independent_summary(DATASETS["cdnow"].path, CUTOFF, unit)
    got = customer_summary(cdnow.engine.table("transactions"), CUTOFF, freq).to_pyarrow()
    rows = {r["customer_id"]: r for r in got.to_pylist()}
    assert set(rows) == set(expected)
    assert len(rows) == 23570  # every customer's first purchase is in 1997 Q1
    for cid, (f, rec, t, m) in expected.items():
        r = rows[cid]
        assert r["frequency"] == f
        assert r["recency"] == pytest.approx(rec, abs=1e-12)
        assert r["T"] == pytest.approx(t, abs=1e-12)
        assert r["monetary_value"] == pytest.approx(m, rel=1e-9, abs=1e-9)


def test_headline_figures_equal_independent_computation(cdnow: Workspace) -> None:
    import math
    from datetime import timedelta

    from kehu.analytics.headline import headline

    spend: dict[str, float] = defaultdict(float)
    days: dict[str, set[date]] = defaultdict(set)
    last_seen: dict[str, date] = {}
    total = 0.0
    for line in DATASETS["cdnow"].path.read_text().splitlines()[1:]:
        if not line.split():
            continue
        cid, d, _n, amount = line.split()
        day = date(int(d[:4]), int(d[4:6]), int(d[6:]))
        spend[cid] += float(amount)
        total += float(amount)
        days[cid].add(day)
        last_seen[cid] = max(last_seen.get(cid, day), day)
    as_of = max(last_seen.values())
    ordered = sorted(spend.values(), reverse=True)
    top = sum(ordered[: math.ceil(0.2 * len(ordered))])
    h = headline(cdnow.engine)
    assert h.as_of == as_of
    assert h.buying_customers == len(spend) and h.customers == 23570
    assert h.revenue == pytest.approx(total, rel=1e-12)
    assert h.top20_revenue_share == pytest.approx(top / total, rel=1e-12)
    assert h.repeat_rate == pytest.approx(sum(len(v) > 1 for v in days.values()) / len(days))
    assert h.active_90d == sum(d >= as_of - timedelta(days=90) for d in last_seen.values())
    assert h.top_customers[0]["spend"] == pytest.approx(ordered[0])
