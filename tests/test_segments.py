"""Segments: specs compiled to Ibis select exactly the customers a plain pandas reading of the
same rules selects; bad specs are refused with the field named."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest

from kehu import Workspace
from kehu.analytics.run import SCORES_TABLE, analysis_run
from kehu.demo import generate
from kehu.errors import KehuInputError
from kehu.ingest.manifest import load_manifest
from kehu.segments import Context, SegmentSpec, compile_segment, evaluate, export, overlap

SPEC = {
    "name": "高价值流失风险",
    "rule": {"all": [
        {"field": "rfm_class", "op": "in",
         "value": ["important_value", "important_retention", "important_winback"]},
        {"field": "clv", "op": ">=", "value": 300},
        {"no_contact": {"within_days": 60}},
        {"any": [{"field": "city", "op": "=", "value": "上海"},
                 {"bought": {"category": "母婴", "within_days": 365}},
                 {"not": {"field": "attr_会员等级", "op": "in", "value": ["普通", "银卡"]}}]},
    ]},
}


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    base = tmp_path_factory.mktemp("seg")
    s = generate("retail", 2500, seed=13, out=base / "src")
    w = Workspace.init(base / "ws")
    load_manifest(w, s.manifest)
    analysis_run(w)
    return w


def expected_members(ws: Workspace) -> set[str]:
    r = ws.warehouse.read
    cust = r("customers").to_pandas().set_index("customer_id")
    sc = r(SCORES_TABLE).to_pandas()
    sc = sc[sc.run_id == sc.run_id.max()].set_index("customer_id")
    df = cust.join(sc[["rfm_class", "clv"]], how="left")
    as_of = sc.as_of.iloc[0]
    d = pd.Timestamp(as_of)
    tx = r("transactions").to_pandas()
    prods = r("products").to_pandas()
    baby = set(prods[(prods.category == "母婴") | (prods.subcategory == "母婴")].product_id)
    day = tx.transaction_time.dt.normalize()
    bought = set(tx[(day > d - timedelta(days=365)) & (day <= d)
                    & tx.product_id.isin(baby)].customer_id)
    it = r("interactions").to_pandas()
    cc = r("campaign_contacts").to_pandas()
    iday, cday = it.interaction_time.dt.normalize(), cc.contact_time.dt.normalize()
    contacted = set(it[(iday > d - timedelta(days=60)) & (iday <= d)].customer_id) | set(
        cc[(cday > d - timedelta(days=60)) & (cday <= d) & (cc.group == "treatment")]
        .customer_id)
    cond = (df.rfm_class.isin(["important_value", "important_retention",
                               "important_winback"])
            & (df.clv >= 300).fillna(False)
            & ~df.index.isin(contacted)
            & ((df.city == "上海").fillna(False) | df.index.isin(bought)
               | ~df["attr_会员等级"].isin(["普通", "银卡"]).fillna(False)))
    return set(df[cond].index)


def test_compiled_segment_equals_pandas(ws: Workspace) -> None:
    spec = SegmentSpec.parse(SPEC)
    got = set(compile_segment(spec, Context(ws.engine)).to_pyarrow().column(0).to_pylist())
    exp = expected_members(ws)
    assert got == exp
    assert 0 < len(got) < 2500
    res = evaluate(ws, spec, snapshot=True)
    assert res.size == len(exp)
    snap = ws.warehouse.read("segment_members").to_pandas()
    assert set(snap.customer_id) == exp and (snap.segment == SPEC["name"]).all()


def test_overlap_and_export(ws: Workspace, tmp_path: Path) -> None:
    a = SegmentSpec.parse(SPEC)
    b = SegmentSpec.parse({"name": "上海", "rule": {"field": "city", "op": "=",
                                                    "value": "上海"}})
    (o,) = overlap(ws, [a, b])
    cust = ws.warehouse.read("customers", ["customer_id", "city"]).to_pandas()
    sh = set(cust[cust.city == "上海"].customer_id)
    assert o["b_size"] == len(sh) and o["both"] == len(expected_members(ws) & sh)
    n = export(ws, a, tmp_path / "m.csv")
    text = (tmp_path / "m.csv").read_text(encoding="utf-8-sig")
    assert text.splitlines()[0].startswith('"客户编号","姓名"') and len(text.splitlines()) == n + 1
    assert export(ws, a, tmp_path / "m.xlsx") == n
    assert pd.read_parquet(tmp_path / "m.parquet") is not None if export(
        ws, a, tmp_path / "m.parquet") == n else False


@pytest.mark.parametrize("rule,needle", [
    ({"field": "nope", "op": "=", "value": 1}, "Unknown segment field 'nope'"),
    ({"field": "clv", "op": ">", "value": "lots"}, "does not fit"),
])
def test_bad_fields_are_named(ws: Workspace, rule: dict, needle: str) -> None:
    spec = SegmentSpec.parse({"name": "x", "rule": rule})
    with pytest.raises(KehuInputError, match=needle):
        compile_segment(spec, Context(ws.engine)).to_pyarrow()


def test_spec_validation() -> None:
    with pytest.raises(KehuInputError, match="needs a list"):
        SegmentSpec.parse({"name": "x", "rule": {"field": "city", "op": "in", "value": "a"}})
    with pytest.raises(KehuInputError, match="a rule needs one of the keys"):
        SegmentSpec.parse({"name": "x", "rule": {"feild": "city"}})
    with pytest.raises(KehuInputError, match="Extra inputs"):
        SegmentSpec.parse({"name": "x", "rule": {"field": "city", "op": "=", "value": "a",
                                                 "sql": "1=1"}})
    spec = SegmentSpec.parse(SPEC)
    assert SegmentSpec.parse(spec.model_dump(mode="json", by_alias=True)) == spec


def test_saved_segments_are_snapshotted_by_each_run(ws: Workspace) -> None:
    from kehu.store import services as sv

    sv.save_definition(ws.store, sv.DefinitionIn(kind="segment", name="上海客户",
                                                 spec={"name": "上海客户", "rule": {
                                                     "field": "city", "op": "=",
                                                     "value": "上海"}}), "test")
    rep = analysis_run(ws)
    cust = ws.warehouse.read("customers", ["customer_id", "city"]).to_pandas()
    assert rep.segments["上海客户"] == (cust.city == "上海").sum()
    snap = ws.warehouse.read("segment_members").to_pandas()
    mine = snap[snap.run_id == rep.run_id]
    assert set(mine.customer_id) == set(cust[cust.city == "上海"].customer_id)
