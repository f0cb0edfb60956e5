"""Profitability and value decomposition against pandas on the demo company."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from kehu import Workspace
from kehu.analytics.profitability import CostRules, profitability, value_decomposition
from kehu.analytics.run import SCORES_TABLE, analysis_run
from kehu.analytics.tiers import trailing_value
from kehu.demo import generate
from kehu.ingest.manifest import load_manifest

AS_OF = date(2025, 6, 30)


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    base = tmp_path_factory.mktemp("profit")
    s = generate("telco", 1500, seed=9, out=base / "src")
    w = Workspace.init(base / "ws")
    load_manifest(w, s.manifest)
    return w


def test_profit_equals_pandas(ws: Workspace) -> None:
    rules = CostRules(complaint_cost=80, service_request_cost=15)
    e = ws.engine
    got = profitability(e.table("transactions"), e.table("tickets"),
                        e.table("campaign_contacts"), e.table("campaigns"),
                        e.table("customers"), AS_OF, rules).to_pandas().set_index("customer_id")
    r = ws.warehouse.read
    d = pd.Timestamp(AS_OF)
    tx = r("transactions").to_pandas()
    tx = tx[tx.transaction_time.dt.normalize() <= d]
    tk = r("tickets").to_pandas()
    tk = tk[tk.opened_time.dt.normalize() <= d]
    cc = r("campaign_contacts").to_pandas()
    cc = cc[(cc.contact_time.dt.normalize() <= d) & (cc.group == "treatment")]
    cost_pc = r("campaigns").to_pandas().set_index("campaign_id").cost_per_contact
    ids = r("customers", ["customer_id"]).to_pandas().customer_id
    revenue = tx.groupby("customer_id").amount.sum().reindex(ids).fillna(0)
    pcost = tx.groupby("customer_id").cost.sum().reindex(ids).fillna(0)
    svc = tk.kind.map({"complaint": 80.0, "service_request": 15.0}).fillna(20.0) \
        .groupby(tk.customer_id).sum().reindex(ids).fillna(0)
    mkt = cc.campaign_id.map(cost_pc).groupby(cc.customer_id).sum().reindex(ids).fillna(0)
    profit = revenue - pcost - svc - mkt
    got = got.loc[ids]
    np.testing.assert_allclose(got.revenue, revenue, rtol=1e-9)
    np.testing.assert_allclose(got.service_cost, svc, rtol=1e-12)
    np.testing.assert_allclose(got.marketing_cost, mkt, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(got.profit, profit, rtol=1e-9, atol=1e-6)
    assert (got.unprofitable == (profit < 0)).all()


def test_value_decomposition_and_run(ws: Workspace) -> None:
    e = ws.engine
    prof = profitability(e.table("transactions"), e.table("tickets"),
                         e.table("campaign_contacts"), e.table("campaigns"),
                         e.table("customers"), AS_OF)
    import ibis

    clv = ibis.memtable(pd.DataFrame({"customer_id": ["x"], "clv": [0.0]}))
    trailing = trailing_value(e.table("transactions"), e.table("customers"), AS_OF)
    v = value_decomposition(prof, clv, e.table("customers"), trailing, AS_OF).to_pandas()
    cust = ws.warehouse.read("customers", ["customer_id", "region", "signup_date"]).to_pandas()
    tr = trailing.to_pandas().set_index("customer_id").margin
    tenure = (pd.Timestamp(AS_OF) - pd.to_datetime(cust.signup_date)).dt.days / 365.0
    band = np.where(tenure < 1, "<1y", np.where(tenure < 3, "1-3y", "3y+"))
    peers = pd.DataFrame({"customer_id": cust.customer_id, "region": cust.region.fillna(
        "unknown"), "band": band, "m": cust.customer_id.map(tr).fillna(0).to_numpy()})
    med = peers.groupby(["region", "band"]).m.transform("median")
    exp = (med - peers.m).clip(lower=0)
    got = v.set_index("customer_id").potential_value.loc[peers.customer_id]
    np.testing.assert_allclose(got.to_numpy(), exp.to_numpy(), rtol=1e-9, atol=1e-9)
    rep = analysis_run(ws, AS_OF)
    s = ws.engine.table(SCORES_TABLE)
    s = s.filter(s.run_id == rep.run_id).to_pandas()
    assert (s.total_value - s.historical_value - s.current_value - s.potential_value).abs() \
        .max() < 1e-6
    assert s.current_value.sum() > 0
    # with products, potential value is the 12-month expected margin of the top offers
    from kehu.analytics.run import POTENTIAL_OFFERS, POTENTIAL_PRIOR_CANDIDATES
    from kehu.models.crosssell import next_best_offers

    offers = next_best_offers(ws.engine, AS_OF, POTENTIAL_OFFERS, horizon_days=365,
                              prior_candidates=POTENTIAL_PRIOR_CANDIDATES).to_pandas()
    assert (offers.groupby("customer_id")["rank"].max() <= POTENTIAL_OFFERS).all()
    exp_pv = offers.groupby("customer_id").expected_margin.sum()
    pv = s.set_index("customer_id").potential_value
    assert (s.potential_basis == "cross_sell").all()
    np.testing.assert_allclose(pv.loc[exp_pv.index], exp_pv, rtol=1e-9)
    assert (pv.drop(exp_pv.index) == 0).all() and exp_pv.sum() > 0
    # buyers always have a stage; only customers who signed up after the date have none
    assert s[s.frequency.notna()].lifecycle_stage.notna().all()
    cust = ws.warehouse.read("customers", ["customer_id", "signup_date"]).to_pandas()
    later = set(cust[pd.to_datetime(cust.signup_date) > pd.Timestamp(AS_OF)].customer_id)
    assert set(s[s.lifecycle_stage.isna()].customer_id) <= later
