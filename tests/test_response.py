"""Campaign response model: treatment contacts only, no leakage, the hold-out response count
recovered on the demo, a planted attribute effect recovered on a hand-made warehouse, the
audience economics recomputed in pandas, the CLI.

The demo generator's response mechanism (``_write_campaigns``): P(response) = 3 % for control
and 8 % for treatment contacts, times a multiplier of the customer's hidden value class (0.5,
1, 1.6, 2.4) — so on the demo the model must get the count right and rank about as well as
the true probabilities do, and not better (that would be leakage)."""

from __future__ import annotations

import json
import math
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import typer
from typer.testing import CliRunner

from kehu import Workspace
from kehu.demo import generate
from kehu.ingest.manifest import load_manifest
from kehu.model import ENTITIES
from kehu.models import registry
from kehu.models.response import (
    KIND,
    ResponseFitReport,
    contact_frame,
    fit_response,
    score_audience,
)
from kehu.models.response.audience import margin_rate
from kehu.segments import SegmentSpec


# -- the demo ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    # 12,000 customers: ~3,300 treatment contacts and ~250 responses over three campaigns
    base = tmp_path_factory.mktemp("respws")
    s = generate("retail", 12_000, seed=5, out=base / "src")
    w = Workspace.init(base / "ws")
    load_manifest(w, s.manifest)
    return w


@pytest.fixture(scope="module")
def fitted(demo: Workspace) -> ResponseFitReport:
    return fit_response(demo)


@pytest.fixture(scope="module")
def frame(demo: Workspace) -> pd.DataFrame:
    return contact_frame(demo.engine, 30)


def _read(ws: Workspace, name: str) -> pd.DataFrame:
    return ws.warehouse.read(name).to_pandas()


def test_demo_has_enough_contacts_and_responses(demo: Workspace) -> None:
    k = _read(demo, "campaign_contacts")
    r = _read(demo, "responses")
    treated = k[k.group == "treatment"]
    hit = treated.merge(r, on=["campaign_id", "customer_id"])
    assert len(treated) >= 3000 and len(hit) >= 200
    assert (k.group == "control").sum() >= 200


def test_training_rows_are_treatment_contacts_with_pandas_labels(demo: Workspace,
                                                                 frame: pd.DataFrame) -> None:
    k = _read(demo, "campaign_contacts")
    control = set(k[k.group == "control"].contact_id)
    assert control and not control & set(frame.contact_id)
    treated = k[k.group == "treatment"]
    # every treatment contact whose customer is known (signed up) by the day before it
    cust = _read(demo, "customers").set_index("customer_id").signup_date
    signup = pd.to_datetime(treated.customer_id.map(cust))
    known = treated.customer_id.isin(cust.index) & (
        signup.isna() | (signup < treated.contact_time.dt.normalize()))
    assert set(frame.contact_id) == set(treated[known].contact_id)
    assert known.mean() > 0.99
    treated = treated[known]
    assert frame.contact_id.is_unique
    # label recomputed in pandas: a response of that campaign within 30 days of the contact
    r = _read(demo, "responses")
    j = treated.merge(r, on=["campaign_id", "customer_id"])
    ok = (j.response_time >= j.contact_time) & (
        j.response_time.dt.normalize() <= j.contact_time.dt.normalize() + pd.Timedelta(days=30))
    expected = treated.contact_id.isin(j[ok].contact_id).astype(int)
    got = frame.set_index("contact_id").responded.reindex(treated.contact_id).to_numpy()
    np.testing.assert_array_equal(got, expected.to_numpy())
    assert (frame.cutoff == frame.contact_time.dt.date - timedelta(days=1)).all()


def test_holdout_count_matches_and_auc_is_near_the_truth(demo: Workspace,
                                                         fitted: ResponseFitReport) -> None:
    h = fitted.holdout
    assert h["campaigns"] == ["CMP3"] and fitted.holdout_rows == h["rows"] > 1000
    assert fitted.train_rows + fitted.holdout_rows == fitted.rows
    pred, actual = h["predicted_responses"], h["actual_responses"]
    # tolerance: 3 standard deviations of (hold-out Poisson-binomial noise + the error of the
    # response rate learned from the training campaigns' responses)
    train_pos = fitted.response_rate * fitted.rows - actual
    sd = math.sqrt(pred * (1 - pred / h["rows"]) + pred ** 2 / train_pos)
    print(f"hold-out AUC {h['auc']:.3f}, predicted {pred:.1f} vs actual {actual} (sd {sd:.1f}), "
          f"{fitted.seconds} s")
    assert abs(pred - actual) <= 3 * sd
    assert h["predicted_interval"][0] < pred < h["predicted_interval"][1]
    # the ranking the true response probabilities give on the same hold-out contacts
    from sklearn.metrics import roc_auc_score

    from kehu.demo.generator import RESPONSE_MULT

    truth = pd.read_parquet(demo.root.parent / "src" / "truth" / "customers.parquet")
    mult = dict(zip(truth.customer_id, RESPONSE_MULT[truth.value_class.map(
        {"low": 0, "mid": 1, "high": 2, "vip": 3}).to_numpy()], strict=True))
    ct = _read(demo, "campaign_contacts")
    ct = ct[(ct.campaign_id == "CMP3") & (ct.group == "treatment")]
    rs = set(_read(demo, "responses").query("campaign_id == 'CMP3'").customer_id)
    true_auc = roc_auc_score(ct.customer_id.isin(rs), ct.customer_id.map(mult))
    print(f"true-probability AUC {true_auc:.3f}")
    assert h["auc"] > 0.55 and true_auc - 0.08 < h["auc"] < true_auc + 0.05


def test_model_is_registered(demo: Workspace, fitted: ResponseFitReport) -> None:
    rec = registry.get(demo, fitted.model_id)
    assert rec.kind == KIND and rec.details["window_days"] == 30
    assert rec.details["holdout"]["actual_responses"] == fitted.holdout["actual_responses"]
    assert "channel" in rec.details["features"] or "channel" in rec.details["dropped"]


def test_audience_economics_follow_the_formula(demo: Workspace,
                                               fitted: ResponseFitReport) -> None:
    ids = [*sorted(_read(demo, "customers").customer_id)[:800], "NOBODY"]
    res = score_audience(demo, ids, channel="sms", offer="满200减30", fixed_cost=500.0)
    c = res.customers
    assert res.audience == 801 and res.scored == 800 and res.unknown == 1
    assert c.probability.between(0, 1).all()
    p = c.probability.to_numpy()
    assert res.expected_responses == pytest.approx(p.sum(), abs=1e-3)
    sd = math.sqrt((p * (1 - p)).sum())
    assert res.interval == pytest.approx([p.sum() - 1.96 * sd, p.sum() + 1.96 * sd], abs=0.06)
    # revenue per response: mean past response revenue by tier at contact, else overall
    rpr = fitted.revenue_per_response
    r = c.tier.map(lambda t: rpr["by_tier"].get(t, rpr["overall"])).to_numpy(dtype=float)
    assert res.expected_revenue == pytest.approx((p * r).sum(), abs=0.01)
    # margin rate from the transactions of the last 365 days
    tx = _read(demo, "transactions")
    d = tx.transaction_time.dt.normalize()
    cut = pd.Timestamp(res.as_of)
    y = tx[(d <= cut) & (d > cut - pd.Timedelta(days=365)) & (tx.kind.fillna("") != "refund")
           & tx.cost.notna()]
    m = (y.amount.sum() - y.cost.sum()) / y.amount.sum()
    assert res.margin_rate == pytest.approx(m, rel=1e-9) == margin_rate(demo.engine, res.as_of)
    assert res.expected_margin == pytest.approx(res.expected_revenue * m, abs=0.02)
    assert res.cost_per_contact == 0.1           # the demo's past sms campaign
    assert res.cost == pytest.approx(800 * 0.1 + 500.0)
    assert res.roi == pytest.approx((res.expected_margin - res.cost) / res.cost, abs=1e-3)
    tiers = pd.DataFrame(res.by_tier)
    assert tiers.customers.sum() == 800
    assert tiers.expected_responses.sum() == pytest.approx(res.expected_responses, abs=1e-2)
    assert tiers.cost.sum() == pytest.approx(res.cost, abs=0.05)


# -- a hand-made warehouse -----------------------------------------------------------------------
CAMPAIGN_DAYS = {"C1": date(2024, 3, 1), "C2": date(2024, 6, 1), "C3": date(2024, 9, 1)}
N_TINY = 600


def _table(entity: str, rows: list[dict]) -> pa.Table:
    schema = ENTITIES[entity].arrow_schema()
    return pa.Table.from_pydict({f.name: [r.get(f.name) for r in rows] for f in schema},
                                schema=schema)


def _at(d: date, hour: int = 10) -> datetime:
    return datetime(d.year, d.month, d.day, hour)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """600 customers, half in the north (respond 50 %) and half in the south (5 %); three
    campaigns contacting everyone as treatment, plus control contacts that always respond."""
    rng = np.random.default_rng(1)
    w = Workspace.init(tmp_path_factory.mktemp("tiny") / "ws")
    ids = [f"X{i:04d}" for i in range(N_TINY)]
    region = {c: "north" if i % 2 else "south" for i, c in enumerate(ids)}
    w.warehouse.append("customers", _table("customers", [
        {"customer_id": c, "region": region[c], "signup_date": date(2023, 1, 1)} for c in ids]
        + [{"customer_id": f"K{i}", "region": "south", "signup_date": date(2023, 1, 1)}
           for i in range(60)]))
    tx = [{"transaction_id": f"T{c}", "customer_id": c, "transaction_time": _at(date(2024, 1, 10)),
           "amount": 100.0, "cost": 60.0, "kind": "purchase"} for c in ids]
    # the hand-built customer X0000: purchases the day before, on and after C1's contact day
    tx += [{"transaction_id": f"TX0-{k}", "customer_id": "X0000", "transaction_time": _at(d),
            "amount": a, "cost": 0.0, "kind": "purchase"}
           for k, (d, a) in enumerate([(date(2024, 2, 29), 7.0), (date(2024, 3, 1), 1000.0),
                                       (date(2024, 3, 2), 1000.0)])]
    tx.append({"transaction_id": "TLAST", "customer_id": "X0001",
               "transaction_time": _at(date(2024, 12, 31)), "amount": 10.0, "cost": 6.0,
               "kind": "purchase"})
    w.warehouse.append("transactions", _table("transactions", tx))
    w.warehouse.append("campaigns", _table("campaigns", [
        {"campaign_id": c, "name": c, "channel": "sms", "goal": "cross_sell", "start_date": d,
         "end_date": d + timedelta(days=30), "cost_fixed": 100.0, "cost_per_contact": 0.2}
        for c, d in CAMPAIGN_DAYS.items()]))
    contacts, responses = [], []
    for cid, d in CAMPAIGN_DAYS.items():
        for c in ids + [f"K{i}" for i in range(60)]:
            group = "control" if c.startswith("K") else "treatment"
            contacts.append({"contact_id": f"{cid}-{c}", "campaign_id": cid, "customer_id": c,
                             "contact_time": _at(d, 9), "group": group, "channel": "sms",
                             "offer": "10% off"})
            p = 1.0 if group == "control" else (0.5 if region[c] == "north" else 0.05)
            if rng.random() < p:
                responses.append({"response_id": f"R{cid}-{c}", "campaign_id": cid,
                                  "customer_id": c, "response_time": _at(d + timedelta(days=3)),
                                  "response_type": "purchase",
                                  "revenue": 200.0 if region.get(c) == "north" else 50.0})
    # a response far outside the window does not count
    responses.append({"response_id": "RLATE", "campaign_id": "C1", "customer_id": "X0002",
                      "response_time": _at(date(2024, 5, 1)), "response_type": "purchase",
                      "revenue": 1.0})
    w.warehouse.append("campaign_contacts", _table("campaign_contacts", contacts))
    w.warehouse.append("responses", _table("responses", responses))
    return w


@pytest.fixture(scope="module")
def tiny_fit(tiny: Workspace) -> ResponseFitReport:
    return fit_response(tiny)


def test_features_at_contact_see_only_the_days_before(tiny: Workspace) -> None:
    f = contact_frame(tiny.engine, 30).set_index("contact_id")
    assert not f.index.str.contains("-K").any()          # control contacts never enter
    row = f.loc["C1-X0000"]
    assert row.cutoff == date(2024, 2, 29)
    assert row.purchases_90d == 2 and row.spend_90d == pytest.approx(107.0)  # not the 2,000
    assert row.contacts_180d == 0                          # not the contact itself
    assert f.loc["C2-X0000"].contacts_180d == 1            # C1 only (C2 is on the contact day)
    late = f.loc["C1-X0002"]                                # its 1.0 response is too late
    assert late.response_revenue in (50.0,) if late.responded else pd.isna(late.response_revenue)


def test_planted_attribute_is_recovered(tiny: Workspace, tiny_fit: ResponseFitReport) -> None:
    assert tiny_fit.holdout["campaigns"] == ["C3"]
    assert tiny_fit.holdout["auc"] > 0.75
    north = [f"X{i:04d}" for i in range(1, N_TINY, 2)]
    south = [f"X{i:04d}" for i in range(0, N_TINY, 2)]
    pn = score_audience(tiny, north, channel="sms").customers.probability
    ps = score_audience(tiny, south, channel="sms").customers.probability
    assert pn.mean() > 0.35 and ps.mean() < 0.15 and pn.min() > ps.max() - 0.05
    assert tiny_fit.revenue_per_response["overall"] > 50.0


def test_saved_segment_and_spec_audiences(tiny: Workspace, tiny_fit: ResponseFitReport) -> None:
    from kehu.store import services as sv

    spec = SegmentSpec.parse({"name": "north", "rule": {"field": "region", "op": "=",
                                                        "value": "north"}})
    by_spec = score_audience(tiny, spec, channel="sms", cost_per_contact=1.0)
    sv.save_definition(tiny.store, sv.DefinitionIn(kind="segment", name="north",
                                                   spec=spec.model_dump(mode="json",
                                                                        by_alias=True)), "test")
    by_name = score_audience(tiny, "north", channel="sms", cost_per_contact=1.0)
    assert by_spec.scored == by_name.scored == N_TINY // 2
    assert by_spec.expected_responses == by_name.expected_responses
    assert by_spec.cost == pytest.approx(N_TINY // 2 * 1.0)
    assert by_spec.margin_rate == pytest.approx(
        (100 * N_TINY + 2017 - 60 * N_TINY - 6) / (100 * N_TINY + 2017))  # 7+1000+1000+10


def test_cli_fit_and_score(tiny: Workspace, tmp_path: Path) -> None:
    from kehu.cli.commands.response import register

    root = typer.Typer()
    register(root)

    @root.callback()
    def _main() -> None:  # a group, so 'response' stays a sub-command
        pass

    runner = CliRunner()
    out = runner.invoke(root, ["response", "fit", "-w", str(tiny.root), "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["holdout"]["campaigns"] == ["C3"]
    ids = tmp_path / "ids.csv"
    ids.write_text("customer_id,name\nX0001,a\nX0003,b\nX0000,c\n", encoding="utf-8")
    out = runner.invoke(root, ["response", "score", "--customers", str(ids), "-w",
                               str(tiny.root), "--channel", "sms", "--cost-per-contact", "0.1",
                               "--fixed-cost", "5", "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["scored"] == 3 and data["cost"] == pytest.approx(5.3)
    assert data["customers"][0]["customer_id"] in ("X0001", "X0003")   # north first
    out = runner.invoke(root, ["response", "score", "-w", str(tiny.root)])
    assert out.exit_code != 0
