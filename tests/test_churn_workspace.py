"""Churn on a workspace: features and labels against pandas, no leakage, the planted churn
recovered, reasons with the right direction and wording, the run, the registry, the CLI."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

from kehu import Workspace
from kehu.analytics.features import customer_features
from kehu.cli.main import app
from kehu.demo import generate
from kehu.errors import KehuInputError
from kehu.i18n import set_locale
from kehu.ingest.manifest import load_manifest
from kehu.models import registry
from kehu.models.churn import service
from kehu.models.churn.definition import ChurnDefinition, labels
from kehu.models.churn.reasons import render, top_reasons
from kehu.models.churn.tabular import ChurnClassifier

CUT = date(2025, 6, 30)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Workspace, Path]:
    base = tmp_path_factory.mktemp("churnws")
    s = generate("retail", 2500, seed=5, out=base / "src")
    w = Workspace.init(base / "ws")
    load_manifest(w, s.manifest)
    return w, base / "src"


@pytest.fixture(scope="module")
def fitted(demo: tuple[Workspace, Path]) -> service.ChurnFitReport:
    return service.fit(demo[0])


def _read(ws: Workspace, name: str) -> pd.DataFrame:
    return ws.warehouse.read(name).to_pandas()


def test_features_equal_pandas(demo: tuple[Workspace, Path]) -> None:
    ws, _ = demo
    got = customer_features(ws.engine, CUT).to_pandas().set_index("customer_id")
    tx = _read(ws, "transactions")
    tx["day"] = tx.transaction_time.dt.normalize()
    cut = pd.Timestamp(CUT)
    buy = tx[(tx.day <= cut) & (tx.kind.fillna("") != "refund")]
    last90 = buy[buy.day > cut - pd.Timedelta(days=90)]
    exp: dict[str, pd.Series] = {
        "purchases_90d": last90.groupby("customer_id").day.nunique(),
        "spend_90d": last90.groupby("customer_id").amount.sum(),
        "days_since_last_purchase": (cut - buy.groupby("customer_id").day.max()).dt.days,
    }
    t = _read(ws, "tickets")
    opened = t.opened_time.dt.normalize()
    t = t[opened <= cut]
    still_open = t.resolved_time.isna() | (t.resolved_time.dt.normalize() > cut)
    exp["unresolved_complaints"] = t[(t.kind == "complaint") & still_open] \
        .groupby("customer_id").size()
    k = _read(ws, "contracts")
    active = k[(pd.to_datetime(k.start_date) <= cut)
               & (k.end_date.isna() | (pd.to_datetime(k.end_date) > cut))
               & (k.status.fillna("active") != "cancelled")]
    exp["days_to_contract_end"] = (pd.to_datetime(active.end_date) - cut).dt.days \
        .groupby(active.customer_id).min()
    exp["active_contracts"] = active.groupby("customer_id").size()
    exp = {k: v.reindex(got.index) for k, v in exp.items()}
    for col in ("purchases_90d", "unresolved_complaints", "active_contracts"):
        np.testing.assert_array_equal(got[col].to_numpy(float),
                                      exp[col].fillna(0).to_numpy(float), err_msg=col)
    for col in ("spend_90d",):
        np.testing.assert_allclose(got[col].to_numpy(float), exp[col].fillna(0).to_numpy(float),
                                   rtol=1e-9, err_msg=col)
    for col in ("days_since_last_purchase", "days_to_contract_end"):
        np.testing.assert_array_equal(got[col].to_numpy(float), exp[col].to_numpy(float),
                                      err_msg=col)
    assert got.purchases_90d.sum() > 0 and got.unresolved_complaints.sum() > 0


def test_features_do_not_see_the_future(demo: tuple[Workspace, Path], tmp_path: Path) -> None:
    """The same features from a warehouse that holds only facts up to the cut-off."""
    ws, _ = demo
    past = Workspace.init(tmp_path / "past")
    time_col = {"transactions": "transaction_time", "tickets": "opened_time",
                "interactions": "interaction_time", "campaign_contacts": "contact_time",
                "surveys": "survey_time", "payments": "due_date", "contracts": "start_date",
                "churn_events": "churn_date"}
    for name in ws.warehouse.tables():
        if name.startswith("_") or name not in (*time_col, "customers", "products",
                                                "campaigns"):
            continue
        t = ws.warehouse.read(name)
        if name in time_col:
            col = t.column(time_col[name])
            bound = pa.scalar(CUT, pa.date32()) if pa.types.is_date(col.type) else \
                pa.scalar(pd.Timestamp(CUT) + pd.Timedelta(days=1), col.type)
            keep = pc.less_equal(col, bound) if pa.types.is_date(col.type) else \
                pc.less(col, bound)
            t = t.filter(keep)
        if name == "tickets":   # a ticket resolved after the cut-off was open at it
            late = pc.greater_equal(t.column("resolved_time"),
                                    pa.scalar(pd.Timestamp(CUT) + pd.Timedelta(days=1),
                                              t.column("resolved_time").type))
            t = t.set_column(t.schema.get_field_index("resolved_time"), "resolved_time",
                             pc.if_else(late, pa.scalar(None, t.column("resolved_time").type),
                                        t.column("resolved_time")))
        past.warehouse.append(name, t)
    a = customer_features(ws.engine, CUT).to_pandas().sort_values("customer_id")
    b = customer_features(past.engine, CUT).to_pandas().sort_values("customer_id")
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True),
                                  check_dtype=False)


def test_labels_equal_pandas(demo: tuple[Workspace, Path]) -> None:
    ws, _ = demo
    ev = _read(ws, "churn_events")
    ev["churn_date"] = pd.to_datetime(ev.churn_date)
    cut, end = pd.Timestamp(CUT), pd.Timestamp(CUT + timedelta(days=90))
    got = labels(ws.engine, CUT, ChurnDefinition(kind="events")).to_pandas() \
        .set_index("customer_id").churned
    churned = set(ev[(ev.churn_date > cut) & (ev.churn_date <= end)].customer_id)
    assert (got == got.index.isin(churned).astype(int)).all()
    gone_before = set(ev[ev.churn_date <= cut].customer_id)
    assert not gone_before & set(got.index)
    assert got.sum() > 20
    nc = labels(ws.engine, CUT, ChurnDefinition(kind="non_contractual")).to_pandas() \
        .set_index("customer_id").churned
    tx = _read(ws, "transactions")
    d = tx.transaction_time.dt.normalize()
    bought = set(tx[(d > cut) & (d <= end)].customer_id)
    assert (nc == (~nc.index.isin(bought)).astype(int)).all()


def test_model_recovers_the_planted_churn(demo: tuple[Workspace, Path],
                                          fitted: service.ChurnFitReport) -> None:
    ws, src = demo
    h = fitted.holdout
    # the ground truth: the generator's churn hazard per customer, scored on the same hold-out
    truth = pd.read_parquet(src / "truth" / "customers.parquet").set_index("customer_id")
    lab = labels(ws.engine, CUT + timedelta(days=0), ChurnDefinition(kind="events"))
    cut = date.fromisoformat(fitted.cutoffs["holdout_features"])
    lab = labels(ws.engine, cut, ChurnDefinition(kind="events")).to_pandas()
    hazard_auc = roc_auc_score(lab.churned, truth.churn_hazard_per_year.reindex(
        lab.customer_id).to_numpy())
    print(f"hold-out AUC {h['auc']:.3f} (true hazard {hazard_auc:.3f}), lift@10% "
          f"{h['lift_top_decile']:.2f}")
    assert h["auc"] > 0.8 and h["auc"] >= hazard_auc - 0.03
    assert h["lift_top_decile"] > 3.0
    assert fitted.holdout_rows == len(lab)
    assert sum(b["n"] for b in h["calibration"]) == len(lab)


def test_reasons_name_the_driver_in_its_direction() -> None:
    rng = np.random.default_rng(4)
    n = 4000
    trend = rng.uniform(-0.9, 0.6, n)
    complaints = rng.poisson(0.4, n)
    noise = rng.normal(size=n)
    logit = -2.5 - 3.0 * trend + 0.9 * complaints
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    x = pd.DataFrame({"spend_trend_90d": trend, "unresolved_complaints": complaints,
                      "noise": noise})
    m = ChurnClassifier(seed=1).fit(x, y)
    probe = pd.DataFrame({"spend_trend_90d": [-0.7, 0.5], "unresolved_complaints": [0, 3],
                          "noise": [0.0, 0.0]})
    reasons = top_reasons(m.contributions(probe), probe, k=2)
    assert reasons[0][0]["feature"] == "spend_trend_90d"
    assert render(reasons[0][0]) == ("spending fell 70 % in the last 90 days (vs the 90 days "
                                     "before)")
    assert reasons[1][0]["feature"] == "unresolved_complaints"
    assert render(reasons[1][0]) == "3 unresolved complaints"
    assert all(r["feature"] != "spend_trend_90d" for r in reasons[1])  # rising spend: no reason
    set_locale("zh_CN")
    try:
        assert "70" in render(reasons[0][0]) and "下降" in render(reasons[0][0])
    finally:
        set_locale("en")


@pytest.mark.parametrize("model", ["logistic", "lightgbm", "blend"])
def test_scoring_with_reasons_equals_its_parts(demo: tuple[Workspace, Path], model: str
                                               ) -> None:
    """Scoring prepares the rows once and writes reasons column by column: the same
    probabilities, contributions and JSON text as predict_proba, contributions and
    json.dumps(top_reasons) row by row — on demo features (integers with gaps, categories,
    missing values) and on odd values."""
    from kehu.models.churn.reasons import reasons_json

    ws, _ = demo
    frame = customer_features(ws.engine, CUT).to_pandas()
    y = labels(ws.engine, CUT, ChurnDefinition(kind="events")).to_pandas().set_index(
        "customer_id").churned
    train = frame[frame.customer_id.isin(y.index)]
    x = train.drop(columns=["customer_id"])
    m = ChurnClassifier(model=model, seed=2).fit(x, y.reindex(train.customer_id).to_numpy())
    x = frame.drop(columns=["customer_id"])
    p, c = m.predict_proba_and_contributions(x)
    assert np.array_equal(p, m.predict_proba(x))
    assert np.array_equal(c.to_numpy(), m.contributions(x).to_numpy())
    expected = [json.dumps(r, ensure_ascii=False) for r in top_reasons(c, x, k=3)]
    assert reasons_json(c, x, k=3) == expected
    assert max(r.count('"feature"') for r in expected) == 3
    odd = pd.DataFrame({"a": [1e20, -0.0, np.inf, np.nan, 2.5], "b": [3, 4, 5, 6, 7],
                        "c": ["x", None, "華", '"q"', "x"], "d": [True, False, True, True, None]})
    share = pd.DataFrame(np.tile([0.4, 0.3, 0.2, 0.1], (5, 1)), columns=list("abcd"))
    share.iloc[3] = [0.04, 0.03, 0.02, 0.01]
    share.iloc[4] = [0.06, 0.05, 0.049, 0.01]
    got = reasons_json(share, odd, k=4)
    assert got == [json.dumps(r, ensure_ascii=False) for r in top_reasons(share, odd, k=4)]
    assert got[3] == "[]" and got[4].count('"feature"') == 2
    assert reasons_json(share.iloc[:0], odd.iloc[:0]) == []


def test_run_scores_customers_and_keeps_the_registry(demo: tuple[Workspace, Path],
                                                     fitted: service.ChurnFitReport) -> None:
    from kehu.analytics.run import SCORES_TABLE, analysis_run

    ws, _ = demo
    rep = analysis_run(ws)
    assert rep.churn["model_id"] == fitted.model_id and not rep.churn["fitted_in_run"]
    s = _read(ws, SCORES_TABLE)
    s = s[s.run_id == rep.run_id]
    scored = s[s.churn_risk.notna()]
    pop = labels(ws.engine, rep.as_of, ChurnDefinition(kind="events")).to_pandas()
    assert set(scored.customer_id) == set(pop.customer_id)
    assert scored.churn_risk.between(0, 1).all()
    assert all(isinstance(json.loads(r), list) for r in scored.churn_reasons)
    assert set(rep.churn["drift"]["psi"]) >= {"days_since_last_purchase", "(score)"}
    recs = registry.list_models(ws, "churn")
    assert [r.version for r in recs] == list(range(1, len(recs) + 1))
    model = registry.load(ws, recs[-1])
    assert isinstance(model, ChurnClassifier)


def test_cli_fit_models_and_analytics(demo: tuple[Workspace, Path]) -> None:
    ws, _ = demo
    run = CliRunner().invoke
    r = run(app, ["churn", "fit", "-w", str(ws.root), "--max-rows", "1500", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["train_rows"] <= 1500 and 0.5 < out["holdout"]["auc"] <= 1
    r = run(app, ["models", "list", "-w", str(ws.root), "--json"])
    ids = [m["model_id"] for m in json.loads(r.output)]
    assert out["model_id"] == ids[-1]
    r = run(app, ["churn", "rates", "--by", "region", "-w", str(ws.root), "--json"])
    rates = json.loads(r.output)
    rows = pd.DataFrame(rates["rows"])
    lab = labels(ws.engine, date.fromisoformat(rates["start"]),
                 ChurnDefinition(kind="events", window_days=(
                     date.fromisoformat(rates["end"]) - date.fromisoformat(
                         rates["start"])).days)).to_pandas()
    cust = _read(ws, "customers")[["customer_id", "region"]]
    exp = lab.merge(cust, on="customer_id").groupby("region").churned.agg(["size", "sum"])
    got = rows.set_index("region").loc[exp.index]
    assert (got.customers == exp["size"]).all() and (got.churned == exp["sum"]).all()
    r = run(app, ["churn", "fit", "-w", str(ws.root), "--window", "3"])
    assert isinstance(r.exception, KehuInputError) and r.exception.exit_code == 2
    assert "The '--window' parameter must be between 7 and 730 days. Got 3" in str(r.exception)


def test_churn_rates_by_saved_segment(demo: tuple[Workspace, Path]) -> None:
    from kehu.models.churn.analytics import churn_rates
    from kehu.segments import SegmentSpec, evaluate

    ws, _ = demo
    spec = SegmentSpec.parse({"name": "华东", "rule": {"field": "region", "op": "in",
                                                      "value": ["上海", "江苏", "浙江"]}})
    size = evaluate(ws, spec, snapshot=True).size
    got = churn_rates(ws.engine, CUT, CUT + timedelta(days=180), "segment").to_pandas()
    lab = labels(ws.engine, CUT, ChurnDefinition(kind="events", window_days=180)).to_pandas()
    m = ws.warehouse.read("segment_members").to_pandas()
    m = m[m.snapshot_at == m.snapshot_at.max()]
    assert size == len(m) > 0
    exp = lab[lab.customer_id.isin(set(m.customer_id))]
    row = got.set_index("segment").loc["华东"]
    assert row.customers == len(exp) > 0 and row.churned == exp.churned.sum()
