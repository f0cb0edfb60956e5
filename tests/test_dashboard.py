"""The dashboard service (issue 6): every section against pandas over the same warehouse
tables, labels per locale, JSON safety, and the per-run cache."""

from __future__ import annotations

import json
import math
import time
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from kehu import Workspace
from kehu.analytics.headline import headline
from kehu.analytics.lifecycle import lifecycle, transitions
from kehu.analytics.run import RUNS_TABLE, SCORES_TABLE, analysis_run
from kehu.dashboard import Dashboard, cache_info, clear_cache, dashboard
from kehu.dashboard.service import log_bin_edges
from kehu.demo import generate
from kehu.errors import KehuInputError, NotFoundError
from kehu.ingest.manifest import load_manifest


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    base = tmp_path_factory.mktemp("dash")
    s = generate("retail", 5_000, seed=21, out=base / "src")
    w = Workspace.init(base / "ws")
    load_manifest(w, s.manifest)
    analysis_run(w)
    clear_cache()
    return w


@pytest.fixture(scope="module")
def zh(ws: Workspace) -> Dashboard:
    return dashboard(ws, "zh_CN")


@pytest.fixture(scope="module")
def tx(ws: Workspace) -> pd.DataFrame:
    return ws.warehouse.read("transactions").to_pandas()


@pytest.fixture(scope="module")
def scores(ws: Workspace) -> pd.DataFrame:
    runs = ws.warehouse.read(RUNS_TABLE).to_pandas()
    s = ws.warehouse.read(SCORES_TABLE).to_pandas()
    return s[s.run_id == runs.run_id.max()]


def _rows(d: Dashboard, key: str) -> pd.DataFrame:
    sec = d.to_dict()["sections"][key]
    return pd.DataFrame(sec["table"]["rows"], columns=[c["key"] for c in sec["table"]["columns"]])


def test_json_safe_and_every_section(zh: Dashboard) -> None:
    out = json.loads(json.dumps(zh.to_dict(), allow_nan=False, ensure_ascii=False))
    assert list(out["sections"]) == ["headline", "tiers", "rfm", "lifecycle", "churn_risk",
                                     "clv", "pareto", "trends", "kpis"]
    for sec in out["sections"].values():
        assert sec["chart"]["series"], sec["key"]
        assert sec["table"]["columns"] and sec["table"]["rows"], sec["key"]
        assert all(len(r) == len(sec["table"]["columns"]) for r in sec["table"]["rows"])


def test_headline(zh: Dashboard, tx: pd.DataFrame, ws: Workspace) -> None:
    f = zh.sections["headline"].summary
    last = tx.transaction_time.max()
    day = last.normalize()
    assert f["customers"] == len(ws.warehouse.read("customers"))
    assert f["revenue"] == pytest.approx(tx.amount.sum())
    assert f["margin"] == pytest.approx((tx.amount - tx.cost.fillna(0)).sum())
    recent = tx[tx.transaction_time >= day - pd.Timedelta(days=365)]
    assert f["revenue_12m"] == pytest.approx(recent.amount.sum())
    assert f["margin_12m"] == pytest.approx((recent.amount - recent.cost.fillna(0)).sum())
    per = tx.groupby("customer_id").transaction_time.max()
    assert f["active_90d"] == int((per >= day - pd.Timedelta(days=90)).sum())
    days = tx.groupby("customer_id").transaction_time.apply(lambda s: s.dt.date.nunique())
    assert f["repeat_rate"] == pytest.approx((days > 1).mean())
    chart = zh.sections["headline"].chart["series"]
    assert chart[0]["data"] == [f["revenue"], f["revenue_12m"]]


def test_tier_mix(zh: Dashboard, scores: pd.DataFrame) -> None:
    got = _rows(zh, "tiers").set_index("tier")
    want = scores.groupby("tier").agg(customers=("customer_id", "size"),
                                      revenue=("spend", "sum"))
    want = want.reindex(got.index).fillna(0)
    assert (got.customers == want.customers).all()
    assert np.allclose(got.revenue, want.revenue)
    assert np.allclose(got.revenue_share, want.revenue / want.revenue.sum())
    assert list(got.index) == ["diamond", "gold", "silver", "regular"]
    assert got.loc["diamond", "name"] == "钻石卡"


def test_rfm_classes(zh: Dashboard, scores: pd.DataFrame) -> None:
    got = _rows(zh, "rfm").set_index("rfm_class")
    s = scores[scores.rfm_class.notna()]
    want = s.groupby("rfm_class").agg(customers=("customer_id", "size"),
                                      revenue=("monetary_total", "sum"))
    want = want.reindex(got.index).fillna(0)
    assert len(got) == 8
    assert (got.customers == want.customers).all()
    assert np.allclose(got.revenue_share, want.revenue / s.monetary_total.sum())
    assert zh.sections["rfm"].summary["unclassified"] == int(scores.rfm_class.isna().sum())
    tree = zh.sections["rfm"].chart["series"][0]
    assert tree["type"] == "treemap"
    assert {x["name"] for x in tree["data"]} >= {"重要价值客户", "一般挽留客户"}
    assert sum(x["value"] for x in tree["data"]) == len(s)


def test_churn_histogram(zh: Dashboard, scores: pd.DataFrame) -> None:
    got = _rows(zh, "churn_risk")
    r = scores.churn_risk.dropna().to_numpy()
    counts, edges = np.histogram(r, bins=20, range=(0.0, 1.0))  # last bin closed, like ours
    assert got.customers.tolist() == counts.tolist()
    assert np.allclose(got.low, edges[:-1]) and np.allclose(got.high, edges[1:])
    s = zh.sections["churn_risk"].summary
    assert s["above_half"] == int((r > 0.5).sum())
    assert s["unscored"] == int(scores.churn_risk.isna().sum())


def test_clv_bins(zh: Dashboard, scores: pd.DataFrame) -> None:
    got = _rows(zh, "clv")
    v = scores.clv.dropna().to_numpy()
    edges = log_bin_edges(float(v.max()))
    idx = np.searchsorted(edges, v, side="right") - 1   # [edge_i, edge_i+1)
    want = np.bincount(idx, minlength=len(edges) - 1)
    assert got.customers.tolist() == want.tolist()
    sums = np.bincount(idx, weights=v, minlength=len(edges) - 1)
    assert np.allclose(got.clv, sums)
    s = zh.sections["clv"].summary
    assert s["p50"] == pytest.approx(np.quantile(v, 0.5))
    assert s["p90"] == pytest.approx(np.quantile(v, 0.9))


def test_pareto(zh: Dashboard, tx: pd.DataFrame, ws: Workspace) -> None:
    got = _rows(zh, "pareto")
    per = tx.groupby("customer_id").amount.sum().reset_index()
    per = per.sort_values(["amount", "customer_id"], ascending=[False, True])
    cum = per.amount.cumsum().to_numpy() / per.amount.sum()
    n = len(per)
    k = [math.ceil(n * p / 100) for p in range(1, 101)]
    assert len(got) == 100 and got.customers.tolist() == k
    assert np.allclose(got.revenue_share, cum[np.array(k) - 1])
    top20 = zh.sections["pareto"].summary["top20_share"]
    assert top20 == pytest.approx(headline(ws.engine).top20_revenue_share)
    assert got.revenue_share.iloc[-1] == pytest.approx(1.0)


def test_monthly_trends(zh: Dashboard, tx: pd.DataFrame) -> None:
    got = _rows(zh, "trends")
    assert zh.sections["trends"].summary["from_aggregate"] is True
    t = tx.assign(month=tx.transaction_time.dt.strftime("%Y-%m"),
                  margin=tx.amount - tx.cost.fillna(0),
                  order=tx.order_id.fillna(tx.transaction_id))
    want = t.groupby("month").agg(revenue=("amount", "sum"), margin=("margin", "sum"),
                                  buyers=("customer_id", "nunique"), orders=("order", "nunique"))
    assert len(got) == 24 and got.month.iloc[-1] == zh.as_of.strftime("%Y-%m")
    want = want.reindex(got.month).fillna(0)
    assert np.allclose(got.revenue, want.revenue) and np.allclose(got.margin, want.margin)
    assert got.buyers.tolist() == want.buyers.astype(int).tolist()
    assert got.orders.tolist() == want.orders.astype(int).tolist()


def _stages_pandas(ws: Workspace, tx: pd.DataFrame, d: date) -> pd.Series:
    """Prospect, churned and dormant by the lifecycle rules, everything else ``live``."""
    cust = ws.warehouse.read("customers").to_pandas()
    ce = ws.warehouse.read("churn_events").to_pandas()
    day = pd.Timestamp(d)
    p = tx[(tx.transaction_time.dt.normalize() <= day) & (tx.kind.fillna("") != "refund")]
    last = p.groupby("customer_id").transaction_time.max().dt.normalize()
    known = set(cust.customer_id[cust.signup_date.isna()
                                 | (pd.to_datetime(cust.signup_date) <= day)]) | set(last.index)
    churn = ce[pd.to_datetime(ce.churn_date) <= day].groupby("customer_id").churn_date.max()
    out = {}
    for c in known:
        if c not in last.index:
            out[c] = "prospect"
            continue
        rec = (day - last[c]).days
        ch = churn.get(c)
        if (ch is not None and last[c] <= pd.Timestamp(ch)) or rec > 365:
            out[c] = "churned"
        elif rec > 90:
            out[c] = "dormant"
        else:
            out[c] = "live"
    return pd.Series(out)


def test_lifecycle_sankey(zh: Dashboard, ws: Workspace, tx: pd.DataFrame) -> None:
    sec = zh.sections["lifecycle"]
    start, end = sec.summary["start"], sec.summary["end"]
    assert end == zh.as_of and start == date(end.year - 1, end.month, end.day)
    eng = ws.engine
    args = (eng.table("transactions"), eng.table("customers"), eng.table("churn_events"))
    want = transitions(*args, start, end).to_pandas()
    got = _rows(zh, "lifecycle")
    m = got.merge(want, on=["stage_from", "stage_to"], how="outer", suffixes=("", "_want"))
    assert (m.customers == m.customers_want).all()
    # consistency: a node's outflow is its count at the start, its inflow its count at the end
    at_start = lifecycle(*args, start).to_pandas().stage.value_counts()
    at_end = lifecycle(*args, end).to_pandas().stage.value_counts()
    out_flow = got.groupby("stage_from").customers.sum()
    in_flow = got.groupby("stage_to").customers.sum()
    assert out_flow.drop("not_yet_customer").sort_index().equals(at_start.sort_index()
                                                                 .rename("customers"))
    assert in_flow.sort_index().equals(at_end.sort_index().rename("customers"))
    assert out_flow.sum() == in_flow.sum() == at_end.sum()
    # and an independent pandas reading of the rules for prospect / churned / dormant
    for d, flow in ((start, out_flow.drop("not_yet_customer")), (end, in_flow)):
        pd_st = _stages_pandas(ws, tx, d).value_counts()
        for stage in ("prospect", "churned", "dormant"):
            assert flow.get(stage, 0) == pd_st.get(stage, 0), (d, stage)
    nodes = sec.chart["series"][0]["data"]
    names = [n["name"] for n in nodes]
    assert len(names) == len(set(names))
    for link in sec.chart["series"][0]["links"]:
        assert link["source"] in names and link["target"] in names


def test_kpis(zh: Dashboard, tx: pd.DataFrame) -> None:
    sec = zh.sections["kpis"]
    s = sec.summary
    start = date.fromisoformat(s["period"]["start"])
    y, m = zh.as_of.year, zh.as_of.month - 11
    assert start == (date(y, m, 1) if m >= 1 else date(y - 1, m + 12, 1))
    day = tx.transaction_time.dt.normalize()
    want = tx.amount[(day >= pd.Timestamp(start)) & (day <= pd.Timestamp(zh.as_of))].sum()
    got = _rows(zh, "kpis").set_index("kpi").value
    assert got["revenue"] == pytest.approx(want)
    r = s["retention"]
    assert got["retention_rate"] == pytest.approx(r["retained"] / r["customers_start"])
    assert len(sec.chart["xAxis"]["data"]) == 12


def test_locale_switches_labels(ws: Workspace, zh: Dashboard) -> None:
    en = dashboard(ws, "en")
    assert not en.cached
    tiers = _rows(en, "tiers").set_index("tier").name
    assert tiers["diamond"] == "Diamond" and tiers["gold"] == "Gold"
    classes = _rows(en, "rfm").set_index("rfm_class").name
    assert classes["important_value"] == "Important value"
    assert _rows(zh, "rfm").set_index("rfm_class").name["important_value"] == "重要价值客户"
    en_nodes = {n["stage"]: n["label"] for n in
                en.sections["lifecycle"].chart["series"][0]["data"]}
    zh_nodes = {n["stage"]: n["label"] for n in
                zh.sections["lifecycle"].chart["series"][0]["data"]}
    assert en_nodes["churned"] == "churned" and zh_nodes["churned"] == "流失"
    # the same numbers in both languages
    assert np.allclose(_rows(en, "pareto").revenue_share, _rows(zh, "pareto").revenue_share)
    assert _rows(en, "tiers").customers.tolist() == _rows(zh, "tiers").customers.tolist()


def test_flow_dates_are_validated(ws: Workspace, zh: Dashboard) -> None:
    with pytest.raises(KehuInputError, match="'flows_from' date must be before 'flows_to'"):
        dashboard(ws, flows_from=zh.as_of, flows_to=zh.as_of - timedelta(days=1))


def test_no_run_yet(tmp_path: Path) -> None:
    w = Workspace.init(tmp_path / "empty")
    with pytest.raises(NotFoundError, match="Run 'kehu run' first"):
        dashboard(w)


def test_a_failing_section_degrades_and_is_not_cached(
        ws: Workspace, zh: Dashboard, monkeypatch: pytest.MonkeyPatch) -> None:
    from kehu.dashboard import service

    def broken(*_a: object) -> None:
        raise KehuInputError("no KPIs today")

    monkeypatch.setattr(service, "_kpis", broken)
    # computed afresh: nothing cached in memory or on disk (both restored after the test)
    monkeypatch.setattr(service, "_CACHE", type(service._CACHE)())
    monkeypatch.setattr(service, "_read_disk", lambda _path: None)
    d = dashboard(ws, "en")
    assert d.failed == ["kpis"] and d.sections["kpis"].notes == ["no KPIs today"]
    assert d.sections["kpis"].title == "CRM effectiveness" and d.sections["tiers"].rows
    assert not dashboard(ws, "en").cached
    json.dumps(d.to_dict(), allow_nan=False)


def test_other_flow_dates_compute_the_flows_alone(ws: Workspace, zh: Dashboard,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Other sankey dates recompute the lifecycle section only (the whole dashboard took
    ~1.5 minutes at 1 M customers); its flows are those of the lifecycle analytic."""
    from kehu.analytics.lifecycle import transitions
    from kehu.dashboard import service

    def not_again(*_a: object) -> None:
        raise AssertionError("the run's sections were computed again")

    for name in ("_headline", "_tiers", "_rfm", "_churn", "_clv", "_pareto", "_trends",
                 "_kpis"):
        monkeypatch.setattr(service, name, not_again)
    start, end = date(2024, 3, 1), date(2025, 3, 1)
    d = dashboard(ws, "zh_CN", flows_from=start, flows_to=end)
    assert not d.failed and set(d.section_seconds) == {"lifecycle"}
    assert {k: s for k, s in d.sections.items() if k != "lifecycle"} == \
        {k: s for k, s in zh.sections.items() if k != "lifecycle"}
    eng = ws.engine
    want = transitions(eng.table("transactions"), eng.table("customers"),
                       eng.table("churn_events"), start, end).to_pandas()
    got = _rows(d, "lifecycle")
    assert got.customers.sum() == want.customers.sum() == \
        d.sections["lifecycle"].summary["customers"]
    assert sorted(zip(got.stage_from, got.stage_to, got.customers, strict=True)) == \
        sorted(zip(want.stage_from, want.stage_to, want.customers, strict=True))
    assert d.sections["lifecycle"].summary["start"] == start
    assert dashboard(ws, "zh_CN", flows_from=start, flows_to=end).cached
    # the run's own dashboard is unchanged by it
    assert dashboard(ws, "zh_CN").sections["lifecycle"] == zh.sections["lifecycle"]


def test_cache_hit_then_new_run_invalidates(ws: Workspace, zh: Dashboard) -> None:
    before = cache_info()["hits"]
    t0 = time.perf_counter()
    again = dashboard(ws, "zh_CN")
    took = time.perf_counter() - t0
    assert again.cached and again.run_id == zh.run_id and cache_info()["hits"] == before + 1
    assert took < 0.05, took
    assert again.to_dict()["sections"] == zh.to_dict()["sections"]
    # a new run (same scores under a new id, as a cheap stand-in for 'kehu run')
    wh = ws.warehouse
    new_id = "99991231T000000-test00"
    s = wh.read(SCORES_TABLE)
    s = s.filter(pc.equal(s.column("run_id"), zh.run_id))
    s = s.set_column(0, "run_id", pa.array([new_id] * s.num_rows, pa.string()))
    wh.append(SCORES_TABLE, s)
    runs = wh.read(RUNS_TABLE)
    last = runs.filter(pc.equal(runs.column("run_id"), zh.run_id))
    wh.append(RUNS_TABLE, last.set_column(0, "run_id", pa.array([new_id], pa.string())))
    fresh = dashboard(ws, "zh_CN")
    assert not fresh.cached and fresh.run_id == new_id
    new, old = _rows(fresh, "tiers"), _rows(zh, "tiers")
    assert new.customers.tolist() == old.customers.tolist()
    assert np.allclose(new.revenue, old.revenue)   # float sums may differ in the last bit
    assert dashboard(ws, "zh_CN").cached


def test_kept_on_disk_for_a_new_process(ws: Workspace, zh: Dashboard,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """After the memory cache is gone (a new process: the web app after 'kehu run'), the
    dashboard comes from disk, equal to the computed one, without computing."""
    from kehu.dashboard import service

    first = dashboard(ws, "zh_CN")
    clear_cache()  # memory only
    assert list((ws.root / service.DISK_DIR).glob("*.json"))

    def no_compute(*a: object) -> None:
        raise AssertionError("computed although the dashboard is on disk")

    monkeypatch.setattr(service, "_compute", no_compute)
    again = dashboard(ws, "zh_CN")
    assert again.to_dict()["sections"] == first.to_dict()["sections"]
    assert again.run_id == first.run_id and again.as_of == first.as_of
    clear_cache(ws)  # memory and disk: now it has to compute
    assert not list((ws.root / service.DISK_DIR).glob("*.json"))
    with pytest.raises(AssertionError, match="computed although"):
        dashboard(ws, "zh_CN")


def test_simultaneous_cold_calls_compute_once(ws: Workspace,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    from kehu.dashboard import service

    clear_cache(ws)
    calls: list[str] = []
    real = service._compute

    def counted(*a: object) -> Dashboard:
        calls.append("compute")
        time.sleep(0.2)  # both threads are inside dashboard() by now
        return real(*a)  # type: ignore[arg-type]

    monkeypatch.setattr(service, "_compute", counted)
    got: list[Dashboard] = []
    threads = [threading.Thread(target=lambda: got.append(dashboard(ws, "en")))
               for _i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == ["compute"] and len(got) == 3
    assert sum(d.cached for d in got) == 2
    assert service.warm(ws, ("en",))["en"] < 0.05  # answered from the cache
