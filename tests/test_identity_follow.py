"""Facts follow identity resolution's merges: after ``kehu identity run`` a customer entered
twice is one customer in the analysis run, the customer pages and the engine's tables.

The reference is independent of :mod:`kehu.identity.follow`: a copy of the workspace whose
warehouse tables were rewritten with pandas (every merged record's id replaced by its
cluster's smallest id, the other customer rows dropped), analysed without identity
resolution. Both must give the same RFM, spend and tiers for every customer."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kehu import Workspace
from kehu.analytics.run import SCORES_TABLE, analysis_run
from kehu.demo import generate
from kehu.identity import service
from kehu.identity import tables as tb
from kehu.ingest.manifest import load_manifest
from kehu.model import ENTITIES

COMPARED = ["recency_days", "frequency", "repeat_purchases", "monetary_total", "spend",
            "margin", "tier", "r_score", "f_score", "m_score", "rfm_class"]


@pytest.fixture(scope="module")
def resolved(tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[tuple[Workspace, dict[str, str]]]:
    """A demo company, identity-resolved; and each merged record's surviving id."""
    root = tmp_path_factory.mktemp("follow")
    s = generate("retail", 1500, seed=17, out=root / "src")
    ws = Workspace.init(root / "ws")
    load_manifest(ws, s.manifest)
    # the demo's duplicate records (another source system) have no facts of their own: give
    # each every other purchase of the customer it duplicates, as orders placed in that system
    dups = pq.read_table(root / "src" / "truth" / "duplicates.parquet").to_pandas()
    moved = dict(zip(dups.duplicate_of, dups.duplicate_id, strict=True))
    tx = ws.warehouse.read("transactions")
    df = tx.to_pandas()
    nth = df.groupby("customer_id").cumcount()
    move = df.customer_id.isin(list(moved)) & (nth % 2 == 1)
    df.loc[move, "customer_id"] = df.loc[move, "customer_id"].map(moved)
    ws.warehouse.overwrite("transactions", pa.Table.from_pandas(df, schema=tx.schema,
                                                                preserve_index=False))
    service.run(ws, actor="t")
    m = ws.warehouse.read(tb.MAP_TABLE).to_pandas()
    m = m.astype({"customer_id": str, "kehu_key": str})
    sizes = m.groupby("kehu_key").customer_id.transform("size")
    merged = m[sizes > 1]
    survivor = merged.groupby("kehu_key").customer_id.transform("min")
    yield ws, dict(zip(merged.customer_id, survivor, strict=True))
    ws.close()


def _rewritten_copy(ws: Workspace, survivor: dict[str, str], dest: Path) -> Workspace:
    """The workspace without identity resolution, its tables remapped by pandas."""
    shutil.copytree(ws.root, dest)
    for t in ("identity_map", "customer_golden", "identity_records", "identity_links"):
        shutil.rmtree(dest / "warehouse" / t, ignore_errors=True)
    copy = Workspace.open(dest)
    for name in ENTITIES:
        if not copy.warehouse.exists(name):
            continue
        table = copy.warehouse.read(name)
        df = table.to_pandas()
        cols = [c for c in ("customer_id", "referrer_id", "referred_id") if c in df.columns]
        if not cols:
            continue
        if name == "customers":
            df = df[~df.customer_id.isin([k for k, v in survivor.items() if k != v])]
        else:
            for c in cols:
                df[c] = df[c].map(lambda v: survivor.get(v, v))
        copy.warehouse.overwrite(name, pa.Table.from_pandas(df, schema=table.schema,
                                                            preserve_index=False))
    return copy


def test_planted_duplicates_were_merged(resolved: tuple[Workspace, dict[str, str]]) -> None:
    ws, survivor = resolved
    assert len(set(survivor.values())) >= 10          # the demo plants duplicates
    customers = ws.engine.table("customers").to_pyarrow()
    raw = ws.warehouse.count("customers")
    assert customers.num_rows == raw - sum(1 for k, v in survivor.items() if k != v)
    assert len(set(customers["customer_id"].to_pylist())) == customers.num_rows
    # facts: nothing lost, merged ids gone
    tx = ws.engine.table("transactions").to_pyarrow()
    assert tx.num_rows == ws.warehouse.count("transactions")
    gone = {k for k, v in survivor.items() if k != v}
    assert not gone & set(tx["customer_id"].to_pylist())
    raw_tx = ws.engine.table("transactions", follow_identity=False).to_pyarrow()
    assert gone & set(raw_tx["customer_id"].to_pylist())


def test_golden_fields_replace_the_survivors(resolved: tuple[Workspace, dict[str, str]]
                                             ) -> None:
    ws, survivor = resolved
    golden = ws.warehouse.read(tb.GOLDEN_TABLE).to_pandas()
    m = ws.warehouse.read(tb.MAP_TABLE).to_pandas()
    key_of = dict(zip(m.customer_id.astype(str), m.kehu_key.astype(str), strict=True))
    shown = ws.engine.table("customers").to_pandas().set_index("customer_id")
    checked = 0
    for sid in set(survivor.values()):
        g = golden[golden.kehu_key.astype(str) == key_of[sid]].iloc[0]
        for f in ("name", "phone", "email"):
            if f in g and isinstance(g[f], str) and g[f]:
                assert shown.loc[sid, f] == g[f], (sid, f)
                checked += 1
    assert checked > 10


def test_analysis_run_counts_a_merged_customer_once(
        resolved: tuple[Workspace, dict[str, str]], tmp_path: Path) -> None:
    ws, survivor = resolved
    reference = _rewritten_copy(ws, survivor, tmp_path / "reference")
    analysis_run(ws)
    analysis_run(reference)
    a = ws.warehouse.read(SCORES_TABLE).to_pandas().set_index("customer_id").sort_index()
    b = reference.warehouse.read(SCORES_TABLE).to_pandas().set_index("customer_id")
    b = b.sort_index()
    assert list(a.index) == list(b.index)
    assert not {k for k, v in survivor.items() if k != v} & set(a.index)
    pd.testing.assert_frame_equal(a[COMPARED], b[COMPARED], check_exact=False, rtol=1e-9)
    # a survivor's frequency is that of its records together, not of one of them
    raw = ws.warehouse.read("transactions", ["customer_id"]).to_pandas()
    per_record = raw.customer_id.value_counts()
    grew = [s for s in set(survivor.values())
            if per_record.get(s, 0) < sum(per_record.get(k, 0)
                                          for k, v in survivor.items() if v == s)]
    assert grew, "no merged customer had transactions under two records"
    reference.close()


def test_the_setting_turns_it_off(resolved: tuple[Workspace, dict[str, str]]) -> None:
    ws, _ = resolved
    other = Workspace.open(ws.root)
    other.settings = other.settings.model_copy(update={
        "identity": other.settings.identity.model_copy(update={"follow_merges": False})})
    assert other.engine.table("customers").count().to_pyarrow().as_py() == \
        ws.warehouse.count("customers")
    other.close()


def test_a_merged_records_page_leads_to_its_customer(
        resolved: tuple[Workspace, dict[str, str]]) -> None:
    from web_support import signed_in, web_app

    ws, survivor = resolved
    gone, kept = next((k, v) for k, v in survivor.items() if k != v)
    with signed_in(web_app(ws), "ann") as c:
        r = c.get(f"/customers/{gone}", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == f"/customers/{kept}"
        page = c.get(f"/customers/{kept}")
        assert page.status_code == 200 and kept in page.text
        assert c.get("/customers/NOPE0000", follow_redirects=False).status_code == 404
