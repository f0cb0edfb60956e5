"""Engine parity: the analytics give the same results on DuckDB and on Spark (local mode) over
the same warehouse — RFM and the eight classes, tiers, lifecycle, the customer summary, cube,
segments, churn features and labels, association rules, campaign metrics, profitability —
and ``kehu run --engine spark`` writes the same scores as the default engine.

Every expression is executed by both engines and the results are compared row by row (keys
exactly, numbers to 1e-9 relative). The DuckDB results themselves are checked against pandas
and published numbers in the analytics' own test files; tests/test_rfm_tiers.py and
tests/test_lifecycle.py also run their pandas references on Spark.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import ibis
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from conftest import make_engine
from kehu import Workspace
from kehu.analytics import basket, cube, features, lifecycle, rfm, satisfaction, summary, tiers
from kehu.analytics.profitability import profitability
from kehu.analytics.run import SCORES_TABLE, analysis_run
from kehu.demo import generate
from kehu.ingest.manifest import load_manifest
from kehu.models.churn.definition import ChurnDefinition, labels
from kehu.segments import Context, SegmentSpec, compile_segment

pytestmark = pytest.mark.spark

AS_OF = date(2025, 6, 30)
SEGMENT = {"name": "valuable at risk", "rule": {"all": [
    {"field": "rfm_class", "op": "in", "value": ["important_value", "important_retention"]},
    {"field": "clv", "op": ">=", "value": 50},
    {"no_contact": {"within_days": 90}},
    {"any": [{"field": "city", "op": "=", "value": "上海"},
             {"bought": {"category": "母婴", "within_days": 365}}]}]}}


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A demo company imported into a workspace with one saved segment, before any run."""
    from kehu.store import services as sv

    root = tmp_path_factory.mktemp("parity")
    s = generate("retail", 1200, seed=31, out=root / "src")
    w = Workspace.init(root / "base")
    load_manifest(w, s.manifest)
    sv.save_definition(w.store, sv.DefinitionIn(kind="segment", name="frequent", spec={
        "name": "frequent", "rule": {"field": "frequency", "op": ">=", "value": 3}}), "t")
    sv.save_definition(w.store, sv.DefinitionIn(kind="segment", name="valuable at risk",
                                                spec=SEGMENT), "t")
    w.close()
    return root / "base"


def _copy(base: Path, name: str) -> Path:
    dest = base.parent / name
    if not dest.exists():
        shutil.copytree(base, dest)
    return dest


@pytest.fixture(scope="module")
def ws(base: Path) -> Workspace:
    """The base workspace after one DuckDB analysis run (scores for segments and the cube)."""
    w = Workspace.open(_copy(base, "analysed"))
    analysis_run(w)
    return w


@pytest.fixture(scope="module")
def engines(ws: Workspace, request: pytest.FixtureRequest) -> dict[str, Any]:
    out = {name: make_engine(name, ws.warehouse, request) for name in ("duckdb", "spark")}
    yield out
    for e in out.values():
        e.close()


def frame(engine: Any, expr: Any) -> pd.DataFrame:
    return engine.execute_arrow(expr).to_pandas()


def assert_same(a: pd.DataFrame, b: pd.DataFrame, keys: list[str] | None = None,
                rtol: float = 1e-9) -> None:
    """Equal frames up to row order: same columns, same keys, numbers to ``rtol``."""
    assert list(a.columns) == list(b.columns)
    assert len(a) == len(b)
    keys = keys or list(a.columns)
    a = a.sort_values(keys, kind="stable").reset_index(drop=True)
    b = b.sort_values(keys, kind="stable").reset_index(drop=True)
    for c in a.columns:
        x, y = a[c], b[c]
        if pd.api.types.is_float_dtype(x) or pd.api.types.is_float_dtype(y):
            np.testing.assert_allclose(x.to_numpy(float), y.to_numpy(float), rtol=rtol,
                                       atol=1e-9, err_msg=c)
        else:
            same = (x.astype(object).where(x.notna(), None).tolist()
                    == y.astype(object).where(y.notna(), None).tolist())
            assert same, (c, x[x != y].head(), y[x != y].head())


Analytic = Callable[[Any], Any]
ANALYTICS: dict[str, tuple[Analytic, list[str]]] = {
    "rfm_classes": (lambda e: rfm.rfm_classes(rfm.rfm(e.table("transactions"), AS_OF)),
                    ["customer_id"]),
    "rfm_classes_median": (lambda e: rfm.rfm_classes(rfm.rfm(e.table("transactions"), AS_OF),
                                                     rfm.RfmClassScheme(reference="median")),
                           ["customer_id"]),
    "class_summary": (lambda e: rfm.class_summary(rfm.rfm_classes(rfm.rfm(
        e.table("transactions"), AS_OF))), ["rfm_class"]),
    "tiers": (lambda e: tiers.tiers_as_of(e.table("transactions"), e.table("customers"),
                                          AS_OF), ["customer_id"]),
    "tier_changes": (lambda e: tiers.tier_changes(e.table("transactions"), e.table("customers"),
                                                  date(2024, 12, 31), AS_OF), ["customer_id"]),
    "percentile_tiers": (lambda e: tiers.tiers_as_of(
        e.table("transactions"), e.table("customers"), AS_OF, tiers.TierScheme(
            method="percentiles", tiers=[
                tiers.Tier(code="top", name_zh="顶级", name_en="Top", cut=0.9),
                tiers.Tier(code="rest", name_zh="其他", name_en="Rest", cut=0)])),
        ["customer_id"]),
    "lifecycle": (lambda e: lifecycle.lifecycle(e.table("transactions"), e.table("customers"),
                                                e.table("churn_events"), AS_OF),
                  ["customer_id"]),
    "lifecycle_transitions": (lambda e: lifecycle.transitions(
        e.table("transactions"), e.table("customers"), e.table("churn_events"),
        date(2024, 6, 30), AS_OF), ["stage_from", "stage_to"]),
    "customer_summary_days": (lambda e: summary.customer_summary(e.table("transactions"),
                                                                 AS_OF, "D"), ["customer_id"]),
    "customer_summary_weeks": (lambda e: summary.customer_summary(e.table("transactions"),
                                                                  AS_OF, "W"), ["customer_id"]),
    "loyalty": (lambda e: satisfaction.loyalty_index(e, rfm.rfm(e.table("transactions"),
                                                                AS_OF)), ["customer_id"]),
    "nps_by_tier": (lambda e: satisfaction.nps_csat(e, "tier"), ["tier"]),
    "complaints": (lambda e: satisfaction.complaints(e), ["category"]),
    "profitability": (lambda e: profitability(
        e.table("transactions"), e.table("tickets"), e.table("campaign_contacts"),
        e.table("campaigns"), e.table("customers"), AS_OF), ["customer_id"]),
    "churn_features": (lambda e: features.customer_features(e, AS_OF), ["customer_id"]),
    "churn_labels": (lambda e: labels(e, date(2025, 3, 31), ChurnDefinition()),
                     ["customer_id"]),
    "association_pairs": (lambda e: basket.association_rules(
        e.table("transactions"), min_support=0.002), ["antecedent", "consequent"]),
    "association_triples_by_category": (lambda e: basket.association_rules(
        e.table("transactions"), e.table("products"), level="category", min_support=0.01,
        max_items=3), ["antecedent", "consequent"]),
    "association_customer_month": (lambda e: basket.association_rules(
        e.table("transactions"), basket="customer_month", min_support=0.005),
        ["antecedent", "consequent"]),
}


@pytest.mark.parametrize("name", list(ANALYTICS))
def test_analytic_is_the_same_on_both_engines(engines: dict[str, Any], name: str) -> None:
    fn, keys = ANALYTICS[name]
    a = frame(engines["duckdb"], fn(engines["duckdb"]))
    b = frame(engines["spark"], fn(engines["spark"]))
    assert len(a) > 0, name
    assert_same(a, b, keys)


CUBES = [
    cube.CubeQuery(measures=["revenue", "margin", "orders", "buyers"], by=["year", "region"]),
    cube.CubeQuery(measures=["revenue", "avg_order_value"], by=["category"],
                   where=[cube.Filter(dimension="tier", values=["gold", "diamond"])],
                   start=date(2025, 1, 1), end=date(2025, 6, 30)),
    cube.CubeQuery(measures=["customers", "clv", "churn_risk"], by=["tier", "rfm_class"]),
    cube.CubeQuery(measures=["buyers", "transactions"], by=["month", "channel"]),
]


@pytest.mark.parametrize("use_aggregate", [False, True])
@pytest.mark.parametrize("i", range(len(CUBES)))
def test_cube_is_the_same_on_both_engines(engines: dict[str, Any], i: int,
                                          use_aggregate: bool) -> None:
    q = CUBES[i]
    a = frame(engines["duckdb"], cube.cube(engines["duckdb"], q, use_aggregate))
    b = frame(engines["spark"], cube.cube(engines["spark"], q, use_aggregate))
    assert len(a) > 0
    assert_same(a, b, list(q.by))


def test_segments_are_the_same_on_both_engines(engines: dict[str, Any]) -> None:
    spec = SegmentSpec.parse(SEGMENT)
    got = {}
    for name, e in engines.items():
        members = compile_segment(spec, Context(e))
        got[name] = set(e.execute_arrow(members).column("customer_id").to_pylist())
    assert 0 < len(got["duckdb"]) < 1200
    assert got["duckdb"] == got["spark"]


def test_campaign_metrics_are_the_same_on_both_engines(ws: Workspace,
                                                       spark_session: Any) -> None:
    from kehu.campaigns.measure import attribute, campaign_info, measure

    spark_ws = Workspace.open(ws.root)
    spark_ws.use_engine("spark")
    campaigns = ws.warehouse.read("campaigns", ["campaign_id"]).column(0).to_pylist()
    assert campaigns
    for cid in campaigns:
        a, how_a = attribute(ws, campaign_info(ws, cid))
        b, how_b = attribute(spark_ws, campaign_info(spark_ws, cid))
        assert how_a == how_b
        assert_same(a, b, ["contact_id"])
        ra, rb = measure(ws, cid).to_dict(), measure(spark_ws, cid).to_dict()
        assert json.dumps(ra, sort_keys=True, default=str) == json.dumps(
            rb, sort_keys=True, default=str) or _close(ra, rb)
    spark_ws.close()


def _close(a: Any, b: Any) -> bool:
    """Nested results equal, floats to 1e-9 relative."""
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        return all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list):
        assert len(a) == len(b)
        return all(_close(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float):
        assert a == pytest.approx(b, rel=1e-9, abs=1e-12, nan_ok=True)
        return True
    assert a == b
    return True


def test_map_batches_and_write_on_both_engines(engines: dict[str, Any], tmp_path: Path) -> None:
    """Scoring on the executors and writes through the engine: same rows, a Delta table that
    deltalake reads, new columns merged into the history, overwrite replaces."""
    from kehu.warehouse import Warehouse

    schema = pa.schema([("customer_id", pa.string()), ("twice", pa.float64())])
    for name, e in engines.items():
        t = e.table("transactions")
        per = t.group_by("customer_id").aggregate(total=t.amount.sum())
        out = e.map_batches(per, lambda df: df.assign(twice=df.total * 2.0)[
            ["customer_id", "twice"]], schema)
        j = out.join(per, "customer_id")
        check = frame(e, j.aggregate(bad=((j.twice - 2 * j.total).abs() > 1e-9).sum(),
                                     n=j.count()))
        assert check.bad[0] == 0
        assert check.n[0] == e.execute_arrow(per.count()).as_py() > 500
        wh = Warehouse(tmp_path / name)
        e2 = make_engine(name, wh, None) if name == "duckdb" else type(e)(
            wh, session=e.session)
        e2.write("w", ibis.memtable({"k": ["a", "b"], "v": [1, 2]}))
        e2.write("w", ibis.memtable({"k": ["c"], "v": [3], "x": [0.5]}), merge_schema=True)
        got = wh.read("w").to_pandas().sort_values("k")
        assert got.k.tolist() == ["a", "b", "c"] and got.v.tolist() == [1, 2, 3]
        assert got.x.isna().tolist() == [True, True, False]
        e2.write("w", ibis.memtable({"k": ["z"]}), mode="overwrite")
        assert wh.read("w").to_pydict() == {"k": ["z"]}
        assert len(wh.history("w")) >= 3
        e2.close()


def test_kehu_run_on_spark_writes_the_same_scores(base: Path, spark_session: Any) -> None:
    """``kehu run --engine spark`` on a copy of the workspace, the default engine on another:
    the same segment sizes, tiers, classes, stages, CLV totals and churn risks."""
    from kehu.cli.main import app

    duck = Workspace.open(_copy(base, "run_duckdb"))
    rep_duck = analysis_run(duck)
    spark_root = _copy(base, "run_spark")
    r = CliRunner().invoke(app, ["run", "--engine", "spark", "--spark-master", "local[2]",
                                 "--no-warm", "--json", "-w", str(spark_root)])
    assert r.exit_code == 0, r.output
    rep_spark = json.loads(r.stdout)
    assert rep_spark["engine"] == "spark"
    assert rep_spark["customers"] == rep_duck.customers >= 1200
    assert rep_spark["segments"] == rep_duck.segments and all(rep_duck.segments.values())
    assert rep_spark["notes"] == rep_duck.notes
    for k, v in rep_duck.clv["bgnbd"].items():
        assert rep_spark["clv"]["bgnbd"][k] == pytest.approx(v, rel=1e-6)
    a = duck.warehouse.read(SCORES_TABLE).to_pandas()
    spark_ws = Workspace.open(spark_root)
    b = spark_ws.warehouse.read(SCORES_TABLE).to_pandas()
    assert list(a.columns) == list(b.columns)
    # model outputs to 1e-6: a mean spend may differ in its last bit between the engines'
    # summations, and the Gamma-Gamma optimiser converges to within ~1e-8 of its optimum
    assert_same(a.drop(columns=["run_id"]), b.drop(columns=["run_id"]), ["customer_id"],
                rtol=1e-6)
    for col in ("tier", "rfm_class", "lifecycle_stage"):
        assert a[col].value_counts().to_dict() == b[col].value_counts().to_dict()
    assert a.clv.sum() == pytest.approx(b.clv.sum(), rel=1e-6)
    # the other tables of the run
    for t in ("cube_monthly", "cube_monthly_coarse", "forecasts", "segment_members",
              "customer_offers"):
        x = duck.warehouse.read(t).to_pandas()
        y = spark_ws.warehouse.read(t).to_pandas()
        drop = [c for c in ("run_id", "snapshot_at") if c in x.columns]
        keys = [c for c in x.columns if not pd.api.types.is_float_dtype(x[c])]
        assert_same(x.drop(columns=drop)[sorted(set(x.columns) - set(drop))],
                    y.drop(columns=drop)[sorted(set(x.columns) - set(drop))],
                    [k for k in sorted(keys) if k not in drop] or None, rtol=1e-6)
    duck.close()
    spark_ws.close()


def test_how_spark_reads_delta_tables(spark_session: Any, tmp_path: Path) -> None:
    """Without the Delta jars (none here: nothing is downloaded) ``auto`` reads the files of
    the pinned version; ``delta`` says what is missing; a table with deletion vectors, which
    the file path would read wrongly, is refused with the fix."""
    from deltalake import write_deltalake

    from kehu.errors import EngineError
    from kehu.warehouse import Warehouse
    from kehu.warehouse.spark import SparkEngine

    wh = Warehouse(tmp_path)
    wh.append("t", pa.table({"k": ["a", "b"], "v": [1, 2]}))
    eng = SparkEngine(wh, session=spark_session)
    assert eng.delta_format is False
    t = eng.table("t")
    wh.append("t", pa.table({"k": ["c"], "v": [3]}))
    assert frame(eng, t).v.sum() == 3           # bound to the version of its first use
    eng.refresh()
    assert frame(eng, eng.table("t")).v.sum() == 6
    assert frame(eng, eng.table("customers")).empty    # not imported: the canonical schema
    assert "signup_date" in eng.table("customers").columns
    with pytest.raises(EngineError, match="Delta Lake jars are not on its class path"):
        _ = SparkEngine(wh, session=spark_session, read="delta").delta_format
    write_deltalake(str(tmp_path / "dv"), pa.table({"a": [1]}),
                    configuration={"delta.enableDeletionVectors": "true"})
    with pytest.raises(EngineError, match=r"deletionVectors.*spark_read"):
        eng.table("dv")


def test_identity_merges_are_followed_the_same_on_both_engines(
        base: Path, request: pytest.FixtureRequest) -> None:
    """Source tables following identity resolution's merges (kehu.identity.follow): the same
    customers, facts and RFM on both engines, and as pandas remaps them."""
    from kehu.warehouse import Warehouse

    wh = Warehouse(_copy(base, "follow") / "warehouse")
    ids = sorted(wh.read("customers", ["customer_id"]).column(0).to_pylist())[:40]
    keys = [f"K{i // 2:03d}" for i in range(len(ids))]        # pairs of customers merged
    wh.append("identity_map", pa.table({"customer_id": ids, "kehu_key": keys}))
    wh.append("customer_golden", pa.table({"kehu_key": sorted(set(keys)),
                                           "name": [f"golden {k}" for k in sorted(set(keys))]}))
    survivor = {c: ids[2 * (i // 2)] for i, c in enumerate(ids)}
    tx = wh.read("transactions", ["customer_id", "amount"]).to_pandas()
    tx["customer_id"] = tx.customer_id.map(lambda c: survivor.get(c, c))
    want = tx.groupby("customer_id").amount.sum()
    got = {}
    for name in ("duckdb", "spark"):
        e = make_engine(name, wh, request)
        e.follow_identity = True
        cust = frame(e, e.table("customers"))
        assert len(cust) == wh.count("customers") - 20
        assert set(cust.customer_id) == set(wh.read("customers", ["customer_id"]).column(0)
                                            .to_pylist()) - set(ids[1::2])
        assert (cust[cust.customer_id.isin(ids[::2])].name.str.startswith("golden")).all()
        t = e.table("transactions")
        per = frame(e, t.group_by("customer_id").aggregate(amount=t.amount.sum()))
        per = per.set_index("customer_id").amount.sort_index()
        np.testing.assert_allclose(per.to_numpy(), want.sort_index().to_numpy(), rtol=1e-9)
        assert list(per.index) == list(want.sort_index().index)
        got[name] = frame(e, rfm.rfm_classes(rfm.rfm(e.table("transactions"), AS_OF)))
        e.close()
    assert_same(got["duckdb"], got["spark"], ["customer_id"])
