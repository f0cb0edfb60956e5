"""Next best offers on the customer 360 (issue 6): the analysis run keeps its top offers per
customer in ``customer_offers``; the 360 (page card and API) reads them from there, and they
equal the cross-sell model's offers computed on their own with the run's parameters."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from kehu.analytics.run import OFFERS_TABLE, POTENTIAL_OFFERS, POTENTIAL_PRIOR_CANDIDATES
from kehu.analytics.summary import last_transaction_day
from kehu.customer360 import customer_360
from kehu.i18n import set_locale
from kehu.models.crosssell import next_best_offers
from kehu.workspace import Workspace
from web_support import bearer, demo_workspace, web_app


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    w = demo_workspace(tmp_path_factory.mktemp("offers"), customers=500, seed=7)
    yield w
    w.close()


@pytest.fixture(scope="module")
def stored(ws: Workspace) -> pd.DataFrame:
    return ws.warehouse.read(OFFERS_TABLE).to_pandas()


@pytest.fixture(scope="module")
def sample(stored: pd.DataFrame) -> list[str]:
    """Customers offered a product for a bought one (an association rule), and some offered
    only their tier's popular products."""
    by_rule = stored[stored.reason.notna()].customer_id.unique().tolist()
    prior_only = sorted(set(stored.customer_id) - set(by_rule))
    assert len(by_rule) >= 4 and len(prior_only) >= 4
    return sorted(by_rule[:4] + prior_only[:4])


@pytest.fixture(scope="module")
def names(ws: Workspace) -> dict[str, str]:
    p = ws.warehouse.read("products", columns=["product_id", "name"]).to_pylist()
    return {r["product_id"]: r["name"] for r in p}


def test_the_run_keeps_its_offers(ws: Workspace, stored: pd.DataFrame) -> None:
    runs = ws.warehouse.read("_runs").to_pandas()
    assert stored.run_id.unique().tolist() == runs.run_id.tolist()
    assert stored.as_of.unique().tolist() == [last_transaction_day(ws.engine)]
    assert stored.groupby("customer_id")["rank"].max().max() == POTENTIAL_OFFERS
    # the potential value is the sum of the same offers' expected margins
    scores = ws.warehouse.read("customer_scores").to_pandas().set_index("customer_id")
    total = stored.groupby("customer_id").expected_margin.sum()
    from_offers = scores.loc[total.index]
    assert (from_offers.potential_basis != "peer_gap").all()
    assert from_offers.potential_value.to_numpy() == pytest.approx(total.to_numpy(), rel=1e-9)


def test_360_offers_are_the_models_offers(ws: Workspace, sample: list[str],
                                          names: dict[str, str]) -> None:
    as_of = last_transaction_day(ws.engine)
    ref = next_best_offers(ws.engine, as_of, k=POTENTIAL_OFFERS, horizon_days=365,
                           prior_candidates=POTENTIAL_PRIOR_CANDIDATES,
                           customers=sample).to_pylist()
    assert ref
    for cid in sample:
        want = [r for r in ref if r["customer_id"] == cid]
        got = customer_360(ws, cid).offers
        assert [o.rank for o in got] == list(range(1, len(want) + 1)), cid
        assert [o.product_id for o in got] == [r["product_id"] for r in want], cid
        assert [o.product_name for o in got] == [names[r["product_id"]] for r in want], cid
        for o, r in zip(got, want, strict=True):
            assert o.propensity == pytest.approx(r["propensity"], rel=1e-9)
            assert o.expected_margin == pytest.approx(r["expected_margin"], rel=1e-9)
            assert (o.reason, o.segment) == (r["reason"], r["segment"])
            assert o.reason_confidence == pytest.approx(r["reason_confidence"])
            assert o.reason_name == (names[r["reason"]] if r["reason"] else None)


def test_lookup_and_warehouse_give_the_same_offers(ws: Workspace, sample: list[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from kehu.customer360 import lookup as lk

    fast = {cid: customer_360(ws, cid).offers for cid in sample}
    assert lk.lookup(ws, build=False) is not None
    assert {lk.OFFERS, "products"} <= lk.lookup(ws).tables  # type: ignore[union-attr]
    monkeypatch.setattr(lk, "lookup", lambda ws, build=True: None)
    assert {cid: customer_360(ws, cid).offers for cid in sample} == fast


def test_no_offers_before_a_run(tmp_path: Path) -> None:
    import pyarrow as pa

    from kehu.model import ENTITIES

    w = Workspace.init(tmp_path / "w")
    schema = ENTITIES["customers"].arrow_schema()
    w.warehouse.append("customers", pa.Table.from_pylist([{"customer_id": "A"}], schema=schema))
    assert customer_360(w, "A").offers == []
    w.close()


@pytest.fixture(scope="module")
def app(ws: Workspace) -> Iterator[FastAPI]:
    application = web_app(ws)
    with TestClient(application):
        yield application


def test_api_returns_the_offers(app: FastAPI, ws: Workspace, sample: list[str]) -> None:
    client = TestClient(app)
    headers = bearer(ws, "ann")
    for cid in sample[:3]:
        body = client.get(f"/api/v1/customers/{cid}", headers=headers).json()
        want = customer_360(ws, cid).model_dump(mode="json")["offers"]
        assert body["offers"] == want and [o["rank"] for o in want] == [1, 2, 3]
    schema = client.get("/api/v1/openapi.json", headers=headers).json()
    parts = schema["components"]["schemas"]
    assert parts["Customer360"]["properties"]["offers"]["items"]["$ref"].endswith("/Offer")
    assert {"rank", "product_id", "product_name", "propensity", "expected_margin",
            "reason"} <= set(parts["Offer"]["properties"])


def test_offers_card(app: FastAPI, ws: Workspace, stored: pd.DataFrame,
                     names: dict[str, str]) -> None:
    env = app.state.kehu.templates.env
    cid = stored[stored.reason.notna()].customer_id.iloc[0]
    c = customer_360(ws, cid)
    labels = {"tier": {"silver": "Silver", "gold": "Gold", "regular": "Regular"}}
    card = env.get_template("_customer_offers.html")
    try:
        set_locale("en")
        html = card.render(c=c, labels=labels, currency="CNY")
        assert '<section class="card" id="offers"' in html and "Next best offers" in html
        first = c.offers[0]
        assert names[first.product_id] in html and first.product_id in html
        assert f"{first.propensity * 100:.1f}%" in html
        by_rule = next(o for o in c.offers if o.reason)
        assert f"bought {names[by_rule.reason]} (confidence" in html
        set_locale("zh_CN")
        zh = card.render(c=c, labels=labels, currency="CNY")
        assert "下一最佳推荐" in zh and f"已购 {names[by_rule.reason]}" in zh and "¥" in zh
        empty = card.render(c=c.model_copy(update={"offers": []}), currency="CNY")
        assert "<table" not in empty and "kehu run" in empty
    finally:
        set_locale("en")
