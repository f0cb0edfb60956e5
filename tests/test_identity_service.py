"""Identity resolution over a workspace: runs on the demo company's imported customers,
stable keys across runs, the review queue with merge / keep-apart decisions respected by
later runs, the reversible merge journal, golden records, and facts following the merged
key — on SQLite and on the PostgreSQL app store."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import select

from kehu import Workspace
from kehu.demo import generate
from kehu.errors import KehuInputError, NotFoundError
from kehu.identity import service
from kehu.identity import tables as tb
from kehu.identity.quality import pairs_of_clusters, score
from kehu.ingest.importer import Importer, plan_import
from kehu.store.models import AuditEntry, IdentityPair


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("identity-demo")
    generate("telco", 1_500, seed=13, out=out)
    return out


def _workspace(base: Path, demo: Path, store_url: str | None = None) -> Workspace:
    ws = Workspace.init(base / "ws", store_url=store_url)
    Importer(ws).run(plan_import(ws, "customers", [demo / "customers.csv"]))
    return ws


@pytest.fixture
def ws(tmp_path: Path, demo: Path) -> Workspace:
    w = _workspace(tmp_path, demo)
    yield w
    w.close()


def _keys(ws: Workspace) -> dict[str, str]:
    m = ws.warehouse.read(tb.MAP_TABLE)
    return dict(zip(m["customer_id"].to_pylist(), m["kehu_key"].to_pylist(), strict=True))


def _truth(demo: Path, ids: set[str]) -> set[tuple[str, str]]:
    rows = pq.read_table(demo / "truth" / "duplicates.parquet").to_pylist()
    pairs = {tuple(sorted((r["duplicate_id"], r["duplicate_of"]))) for r in rows}
    return {p for p in pairs if p[0] in ids and p[1] in ids}  # type: ignore[misc]


def test_run_recovers_the_planted_duplicates_and_a_rerun_changes_nothing(
        ws: Workspace, demo: Path) -> None:
    first = service.run(ws, actor="t")
    assert first.trained and first.records == ws.warehouse.count("customers")
    keys = _keys(ws)
    true = _truth(demo, set(keys))
    s = score("kehu", "demo", pairs_of_clusters(list(keys), list(keys.values())), true, 0)
    assert s.f1 >= 0.99, s
    golden = ws.warehouse.read(tb.GOLDEN_TABLE)
    assert golden.num_rows == len(set(keys.values())) == first.customers
    assert sum(golden["records"].to_pylist()) == len(keys)

    again = service.run(ws, actor="t")
    assert not again.trained                       # the trained model is reused
    assert _keys(ws) == keys
    assert (again.new_keys, again.merges, again.splits) == (0, 0, 0)
    assert service.status(ws).journal_entries == 0


def _append_customers(ws: Workspace, tmp: Path, rows: list[dict[str, str]]) -> None:
    path = tmp / f"more-{len(rows)}.csv"
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    Importer(ws).run(plan_import(ws, "customers", [path]))


def test_a_new_record_of_a_known_person_joins_their_key(ws: Workspace, tmp_path: Path) -> None:
    service.run(ws, actor="t")
    keys = _keys(ws)
    c = ws.warehouse.read("customers").to_pandas().set_index("customer_id")
    # a single-record customer entered again by a web shop: traditional characters, +86
    cid = next(k for k, v in keys.items() if list(keys.values()).count(v) == 1
               and k.startswith("C") and isinstance(c.loc[k, "id_number"], str))
    import opencc

    trad = opencc.OpenCC("s2t").convert(c.loc[cid, "name"])
    phone = c.loc[cid, "phone"]
    _append_customers(ws, tmp_path, [{
        "客户编号": "WEB-1", "姓名": trad, "手机号码": f"+86 {phone[:3]} {phone[3:7]} {phone[7:]}",
        "出生日期": str(c.loc[cid, "birth_date"]), "证件号码": c.loc[cid, "id_number"],
        "城市": c.loc[cid, "city"]}])
    res = service.run(ws, actor="t")
    after = _keys(ws)
    assert after["WEB-1"] == keys[cid]
    assert {k: v for k, v in after.items() if k != "WEB-1"} == keys
    assert res.new_keys == 0 and res.merges == 0


def test_merge_decision_is_kept_by_later_runs_and_undo_restores_the_keys(
        ws: Workspace) -> None:
    service.run(ws, actor="t")
    before = _keys(ws)
    singles = sorted(k for k, v in before.items() if list(before.values()).count(v) == 1)
    a, b = singles[0], singles[-1]                 # two different people
    pid = service.pair_for(ws, a, b, actor="ann")
    res = service.decide(ws, pid, "merge", actor="ann", note="same shop owner")
    kept = min(before[a], before[b])
    assert res.journal_id and set(res.keys) == {before[a], before[b]}
    k = _keys(ws)
    assert k[a] == k[b] == kept
    golden = ws.warehouse.read(tb.GOLDEN_TABLE).to_pandas().set_index("kehu_key")
    assert max(before[a], before[b]) not in golden.index
    assert golden.loc[kept, "records"] == 2

    service.run(ws, actor="t")                     # the model alone would not merge them
    assert _keys(ws)[a] == _keys(ws)[b] == kept
    [item] = service.queue(ws, status="merge")
    assert item.decided_by == "ann" and item.note == "same shop owner"

    undone = service.undo(ws, res.journal_id, actor="ann")
    assert undone.undo_of == res.journal_id
    assert _keys(ws) == before
    assert service.queue(ws, status="merge") == []  # the pair is back to pending
    with pytest.raises(KehuInputError, match="already undone"):
        service.undo(ws, res.journal_id, actor="ann")
    service.run(ws, actor="t")
    assert _keys(ws) == before
    golden = ws.warehouse.read(tb.GOLDEN_TABLE).to_pandas().set_index("kehu_key")
    assert golden.loc[before[a], "records"] == golden.loc[before[b], "records"] == 1


def test_keep_apart_splits_a_customer_and_later_runs_respect_it(
        ws: Workspace, demo: Path) -> None:
    service.run(ws, actor="t")
    keys = _keys(ws)
    c, w = sorted(_truth(demo, set(keys)))[0]      # a planted duplicate: one customer
    assert keys[c] == keys[w]
    pid = service.pair_for(ws, c, w, actor="max")
    res = service.decide(ws, pid, "keep_apart", actor="max")
    k = _keys(ws)
    # one record each: the cluster named by the smaller record id keeps the key
    assert k[c] == keys[c] and k[w] != keys[c] and res.changed_records == 1
    entry = service.journal(ws, limit=1)[0]
    assert entry.action == "split" and entry.before == {w: keys[c]}

    rerun = service.run(ws, actor="t")
    assert _keys(ws)[w] == k[w] != _keys(ws)[c]    # kept apart, with the same keys
    assert rerun.splits == 0 and rerun.merges == 0
    with pytest.raises(KehuInputError, match="kept apart"):
        service.decide(ws, service.pair_for(ws, w, c, actor="max"), "merge", actor="max")

    service.undo(ws, entry.id, actor="max")        # together again, under the old key
    assert _keys(ws)[w] == _keys(ws)[c] == keys[c]
    service.run(ws, actor="t")
    assert _keys(ws) == keys


def _audit(ws: Workspace, action: str) -> list[AuditEntry]:
    with ws.store.session() as s:
        return list(s.scalars(select(AuditEntry).where(AuditEntry.action == action)
                              .order_by(AuditEntry.id)))


def _pair(ws: Workspace, pid: int) -> IdentityPair:
    with ws.store.session() as s:
        return s.get_one(IdentityPair, pid)


def test_reopen_a_kept_apart_pair_then_merge_it(ws: Workspace) -> None:
    """Keeping apart two records with two keys changes no key, so it has no journal entry to
    undo; reopening puts it back in the queue, and the merge it forbade is then allowed."""
    service.run(ws, actor="t")
    before = _keys(ws)
    singles = sorted(k for k, v in before.items() if list(before.values()).count(v) == 1)
    a, b = singles[1], singles[-2]
    pid = service.pair_for(ws, a, b, actor="ann")
    res = service.decide(ws, pid, "keep_apart", actor="ann", note="two people")
    assert res.journal_id is None and res.changed_records == 0 and _keys(ws) == before
    with pytest.raises(KehuInputError, match="kept apart"):
        service.decide(ws, pid, "merge", actor="ann")
    [item] = service.queue(ws, status="keep_apart")
    assert item.pair_id == pid and item.journal_id is None

    out = service.reopen(ws, pid, actor="bob")
    assert (out.pair_id, out.status, out.journal_id, out.changed_records) == \
        (pid, "pending", None, 0)
    assert set(out.keys) == {before[a], before[b]} and _keys(ws) == before
    p = _pair(ws, pid)
    assert (p.status, p.decided_by, p.decided_at, p.note) == ("pending", None, None, None)
    assert service.queue(ws, status="keep_apart") == []
    assert pid in [it.pair_id for it in service.queue(ws, limit=10_000)]
    # audited: who reopened which decision (who took it, and its note)
    [entry] = _audit(ws, "reopen")
    assert (entry.actor, entry.object_type, entry.object_id) == ("bob", "identity_pair",
                                                                 str(pid))
    assert entry.details["was"]["status"] == "keep_apart"
    assert entry.details["was"]["decided_by"] == "ann"
    assert entry.details["was"]["note"] == "two people"
    assert service.status(ws).kept_apart_pairs == 0 and service.status(ws).journal_entries == 0

    with pytest.raises(KehuInputError, match=rf"Pair #{pid} is pending already"):
        service.reopen(ws, pid, actor="bob")

    merged = service.decide(ws, pid, "merge", actor="bob")   # allowed now, and it works
    m = ws.warehouse.read(tb.MAP_TABLE).to_pandas().set_index("customer_id")["kehu_key"]
    kept = min(before[a], before[b])
    assert m[a] == m[b] == kept and merged.journal_id
    assert {k: v for k, v in m.items() if k not in (a, b)} == \
        {k: v for k, v in before.items() if k not in (a, b)}
    golden = ws.warehouse.read(tb.GOLDEN_TABLE).to_pandas().set_index("kehu_key")
    assert golden.loc[kept, "records"] == 2 and max(before[a], before[b]) not in golden.index

    # a merge in effect is undone through its journal entry, not reopened
    with pytest.raises(KehuInputError, match=rf"kehu identity undo {merged.journal_id}\)"):
        service.reopen(ws, pid, actor="bob")
    assert _pair(ws, pid).status == "merge" and _keys(ws)[a] == kept
    [item] = service.queue(ws, status="merge")
    assert item.journal_id == merged.journal_id
    service.undo(ws, merged.journal_id, actor="bob")   # back to the queue, keys back
    assert _pair(ws, pid).status == "pending" and _keys(ws) == before
    with pytest.raises(NotFoundError, match="no review pair #999"):
        service.reopen(ws, 999, actor="bob")


def test_reopen_is_refused_while_a_split_is_in_effect_and_allowed_for_a_keyless_merge(
        ws: Workspace, demo: Path) -> None:
    service.run(ws, actor="t")
    keys = _keys(ws)
    (c, w), (d, x) = sorted(_truth(demo, set(keys)))[:2]   # planted duplicates: one key each
    assert keys[c] == keys[w] and keys[d] == keys[x]
    split = service.pair_for(ws, c, w, actor="t")
    res = service.decide(ws, split, "keep_apart", actor="t")
    assert res.journal_id and _keys(ws)[c] != _keys(ws)[w]
    with pytest.raises(KehuInputError, match=rf"split is still in effect.*identity undo "
                                             rf"{res.journal_id}\)"):
        service.reopen(ws, split, actor="t")
    assert _pair(ws, split).status == "keep_apart" and _keys(ws)[c] != _keys(ws)[w]
    # confirming a merge the model made changes no key: it can be reopened, keys stay
    same = service.pair_for(ws, d, x, actor="t")
    confirmed = service.decide(ws, same, "merge", actor="t")
    assert confirmed.journal_id is None
    assert service.reopen(ws, same, actor="t").status == "pending"
    assert _pair(ws, same).status == "pending" and _keys(ws)[d] == _keys(ws)[x] == keys[d]


def _layout(wh: Any, name: str) -> tuple[list[str], int, int]:
    """The table's customer ids, row group by row group in the order of each group's first
    id (so: all ids sorted when each group holds a run of the sorted ids), its row groups
    and their largest size."""
    runs: list[list[str]] = []
    for f in wh.delta(name).file_uris():
        pf = pq.ParquetFile(f)
        for i in range(pf.metadata.num_row_groups):
            runs.append(pf.read_row_group(i, columns=["customer_id"]).column(0)
                        .cast(pa.string()).to_pylist())
    return [x for r in sorted(runs) for x in r], len(runs), max(map(len, runs))


def test_records_and_keys_are_read_by_customer_from_a_few_row_groups(
        ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both tables are written sorted by customer id in small row groups, and stay so after
    decisions; a lookup reads only the groups that hold the ids, and gives what a filter of
    the whole table gives; the map's counts are those of the table."""
    monkeypatch.setattr(tb, "ROW_GROUP", 16)
    service.run(ws, actor="t")
    wh = ws.warehouse
    for name in (tb.RECORDS_TABLE, tb.MAP_TABLE):
        ids, groups, biggest = _layout(wh, name)
        assert ids == sorted(ids) and len(ids) == wh.count("customers")
        assert biggest == 16 and groups == -(-len(ids) // 16)
    before = _keys(ws)
    singles = sorted(k for k, v in before.items() if list(before.values()).count(v) == 1)
    res = service.decide(ws, service.pair_for(ws, singles[0], singles[-1], actor="t"),
                         "merge", actor="t")
    ids, _groups, biggest = _layout(wh, tb.MAP_TABLE)
    assert ids == sorted(ids) and biggest == 16
    assert pa.types.is_string(wh.delta(tb.MAP_TABLE).to_pyarrow_dataset().schema
                              .field("kehu_key").type)
    m = wh.read(tb.MAP_TABLE).to_pandas()
    # the record that changed key names the journal entry; every other row is as it was
    moved = max(singles[0], singles[-1], key=lambda r: before[r])
    journal = m.set_index("customer_id").journal_id
    assert journal[moved] == res.journal_id and journal.drop(moved).isna().all()
    assert dict(zip(m.customer_id, m.kehu_key, strict=True)) == \
        {**before, moved: min(before[singles[0]], before[singles[-1]])}
    per_key = m.kehu_key.value_counts()
    assert tb.map_counts(ws.engine) == {"records": len(m), "customers": len(per_key),
                                        "merged_customers": int((per_key > 1).sum())}
    st = service.status(ws)
    assert (st.records, st.customers, st.merged_customers) == \
        (len(m), len(per_key), int((per_key > 1).sum()))

    read: list[int] = []
    real = pq.ParquetFile.read_row_groups

    def counting(self: pq.ParquetFile, groups: list[int], **kw: Any) -> pa.Table:
        read.extend(groups)
        return real(self, groups, **kw)

    monkeypatch.setattr(pq.ParquetFile, "read_row_groups", counting)
    want = [*sorted(m.customer_id)[::97][:12], "NO-SUCH-RECORD"]
    for name in (tb.RECORDS_TABLE, tb.MAP_TABLE):
        read.clear()
        got = tb.read_rows(ws.engine, name, "customer_id", want).to_pandas()
        full = wh.read(name).to_pandas()
        exp = full[full.customer_id.isin(want)]
        assert sorted(got.customer_id) == sorted(exp.customer_id) == sorted(want[:-1])
        pd.testing.assert_frame_equal(
            got.sort_values("customer_id").reset_index(drop=True)[list(exp.columns)],
            exp.sort_values("customer_id").reset_index(drop=True), check_dtype=False)
        assert 0 < len(read) <= len(want)          # one group per id at most, of many
        assert len(set(read)) < _layout(wh, name)[1] / 4
    assert tb.read_rows(ws.engine, tb.MAP_TABLE, "customer_id", []).num_rows == 0
    # a concurrent change of the map between the read and the write fails the commit
    from deltalake.exceptions import CommitFailedError

    def racing(t: pa.Table) -> pa.Table:
        tb.write_map(wh, tb.plain(wh.read(tb.MAP_TABLE)))
        return t

    with pytest.raises(CommitFailedError):
        wh.rewrite(tb.MAP_TABLE, racing)


def test_transactions_follow_the_merged_key(ws: Workspace) -> None:
    service.run(ws, actor="t")
    keys = _keys(ws)
    merged = [k for k in set(keys.values()) if list(keys.values()).count(k) > 1]
    assert merged
    ids = list(keys)
    tx = pa.table({"transaction_id": [f"T{i}" for i in range(len(ids) * 2)],
                   "customer_id": ids + ids + [],
                   "amount": [float(i % 17) for i in range(len(ids) * 2)]})
    ws.warehouse.append("tx_test", tx)
    got = ws.engine.execute_arrow(
        tb.keyed(ws.engine, "tx_test").group_by("customer_id").aggregate(
            amount=lambda t: t.amount.sum())).to_pandas().set_index("customer_id")
    # pandas on its own: map each source id through the mapping table, then sum
    mapping = ws.warehouse.read(tb.MAP_TABLE).to_pandas()[["customer_id", "kehu_key"]]
    want = tx.to_pandas().merge(mapping, on="customer_id").groupby("kehu_key").amount.sum()
    pd.testing.assert_series_equal(got.amount.sort_index(), want.sort_index(),
                                   check_names=False)
    assert len(got) == len(set(keys.values()))


def test_golden_records_follow_the_survivorship_rules() -> None:
    """Each rule against a plain pandas implementation on random records."""
    import random
    from datetime import datetime, timedelta

    import ibis

    from kehu.identity.golden import golden_records
    from kehu.identity.spec import IdentitySpec

    rnd = random.Random(4)
    fields = ["name", "phone", "email", "city", "address"]
    rows = []
    for i in range(400):
        rows.append({"customer_id": f"R{i:04d}", "kehu_key": f"K{rnd.randrange(60):03d}",
                     "source_system": rnd.choice(["crm", "pos", "web", "ops"]),
                     "updated_at": datetime(2024, 1, 1) + timedelta(minutes=rnd.randrange(10**6)),
                     **{f: (None if rnd.random() < 0.3 else f"{f}{rnd.randrange(4)}")
                        for f in fields}})
    spec = IdentitySpec.parse({"survivorship": {
        "source_priority": ["pos", "crm"],
        "fields": {"name": {"rule": "source_priority", "sources": ["web", "crm"]},
                   "email": {"rule": "most_complete"}, "city": {"rule": "most_frequent"}}}})
    got = golden_records(ibis.memtable(pd.DataFrame(rows)), spec).to_pandas() \
        .set_index("kehu_key")

    df = pd.DataFrame(rows)
    rank = {"pos": 0, "crm": 1}
    df["rank"] = df.source_system.map(rank).fillna(2)
    df["complete"] = df[["name", "phone", "email", "city", "address"]].notna().sum(axis=1)
    df["name_rank"] = df.source_system.map({"web": 0, "crm": 1}).fillna(2)
    df["city_n"] = df.groupby(["kehu_key", "city"]).customer_id.transform("count")

    def pick(f: str, keys: list[str], asc: list[bool]) -> pd.Series:
        d = df[df[f].notna()].sort_values([*keys, "updated_at", "rank", "customer_id"],
                                          ascending=[*asc, False, True, True])
        return d.groupby("kehu_key")[f].first()

    want = {"name": pick("name", ["name_rank"], [True]),
            "phone": pick("phone", [], []), "address": pick("address", [], []),
            "email": pick("email", ["complete"], [False]),
            "city": pick("city", ["city_n"], [False])}
    for f, w in want.items():
        pd.testing.assert_series_equal(got[f].dropna().sort_index(), w.sort_index(),
                                       check_names=False)
    assert got["records"].sum() == 400
    assert set(got.loc["K000", "sources"]) == set(df[df.kehu_key == "K000"].source_system)


def test_errors_name_what_to_do(ws: Workspace, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="no review pair #999"):
        service.decide(ws, 999, "merge", actor="t")
    with pytest.raises(KehuInputError, match="merge' or 'keep_apart"):
        service.decide(ws, 1, "maybe", actor="t")  # type: ignore[arg-type]
    with pytest.raises(NotFoundError, match="has no kehu key"):
        service.pair_for(ws, "C00000001", "nobody", actor="t")
    empty = Workspace.init(tmp_path / "empty")
    with pytest.raises(KehuInputError, match="no customers"):
        service.run(empty, actor="t")
    with pytest.raises(KehuInputError, match="status"):
        service.queue(ws, status="open")


def test_splink_settings_render_for_spark_too(ws: Workspace) -> None:
    """The model is written once: its comparisons and blocking rules render as Spark SQL as
    well as DuckDB SQL (running it on Spark is the Spark engine's job)."""
    from splink import block_on

    from kehu.identity.model import comparisons, present_columns
    from kehu.identity.normalise import normalise_records
    from kehu.identity.spec import IdentitySpec

    n = normalise_records(tb.source_records(ws.engine))
    for c in comparisons(IdentitySpec(), present_columns(n)):
        for dialect in ("duckdb", "spark"):
            comp = c.get_comparison(dialect)
            assert all(lvl.sql_condition for lvl in comp.comparison_levels)
    spark_sql = [c.get_comparison("spark").comparison_levels[2].sql_condition
                 for c in comparisons(IdentitySpec(), present_columns(n))
                 if c.get_comparison("spark").output_column_name == "family_name"]
    assert spark_sql  # the exact pinyin level
    assert "family_name" in block_on("family_name").get_blocking_rule("spark").blocking_rule_sql


def _kehu(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KEHU_LANG": "en"}
    return subprocess.run([sys.executable, "-m", "kehu.cli.main", *args], env=env,
                          capture_output=True, text=True, timeout=300)


def test_cli_run_review_decide_undo_status(ws: Workspace, demo: Path) -> None:
    w = str(ws.root)
    r = _kehu("identity", "run", "-w", w, "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["records"] == ws.warehouse.count("customers")
    keys = _keys(ws)
    c, d = sorted(_truth(demo, set(keys)))[1]
    r = _kehu("identity", "decide", f"{c},{d}", "keep_apart", "-w", w, "--json")
    assert r.returncode == 0, r.stderr
    entry = json.loads(r.stdout)["journal_id"]
    pair = json.loads(r.stdout)["pair_id"]
    r = _kehu("identity", "status", "-w", w, "--journal")
    text = " ".join(r.stdout.split())              # Rich wraps at the terminal's width
    assert r.returncode == 0 and "Merge journal" in text and "1 kept apart" in text
    r = _kehu("identity", "status", "-w", w, "--json")
    out = json.loads(r.stdout)
    assert out["status"]["kept_apart_pairs"] == 1
    assert [(e["action"], e["kind"]) for e in out["journal"]] == [("split", "manual")]
    r = _kehu("identity", "review", "-w", w, "--status", "keep_apart")
    assert r.returncode == 0 and c in r.stdout
    r = _kehu("identity", "reopen", str(pair), "-w", w)    # the split is in effect
    assert r.returncode == 2 and f"kehu identity undo {entry}" in r.stderr
    r = _kehu("identity", "undo", str(entry), "-w", w)
    assert r.returncode == 0 and "previous keys back" in r.stdout
    assert _keys(ws) == keys
    r = _kehu("identity", "reopen", str(pair), "-w", w)    # the undo reopened it
    assert r.returncode == 2 and "pending already" in r.stderr
    singles = sorted(k for k, v in keys.items() if list(keys.values()).count(v) == 1)
    r = _kehu("identity", "decide", f"{singles[0]},{singles[1]}", "keep_apart", "-w", w,
              "--json")
    apart = json.loads(r.stdout)
    assert apart["journal_id"] is None and apart["status"] == "keep_apart"
    r = _kehu("identity", "reopen", str(apart["pair_id"]), "-w", w)
    assert r.returncode == 0, r.stderr
    assert f"Pair #{apart['pair_id']} reopened" in r.stdout
    assert service.queue(ws, status="keep_apart") == [] and _keys(ws) == keys
    r = _kehu("identity", "decide", "12345", "merge", "-w", w)
    assert r.returncode == 6 and "Traceback" not in r.stderr and "no review pair" in r.stderr
    r = _kehu("identity", "decide", "1", "perhaps", "-w", w)
    assert r.returncode == 2 and "merge' or 'keep_apart" in r.stderr


@pytest.mark.postgres
def test_decisions_and_journal_on_postgresql(tmp_path: Path, demo: Path, pg_url: str) -> None:
    ws = _workspace(tmp_path, demo, store_url=pg_url)
    service.run(ws, actor="t")
    keys = _keys(ws)
    singles = sorted(k for k, v in keys.items() if list(keys.values()).count(v) == 1)
    pid = service.pair_for(ws, singles[0], singles[1], actor="ann")
    res = service.decide(ws, pid, "merge", actor="ann")
    assert _keys(ws)[singles[0]] == _keys(ws)[singles[1]]
    service.run(ws, actor="t")
    assert _keys(ws)[singles[0]] == _keys(ws)[singles[1]]
    service.undo(ws, res.journal_id, actor="ann")  # type: ignore[arg-type]
    assert _keys(ws) == keys
    assert [e.action for e in service.journal(ws)] == ["undo", "merge"]
    ws.close()
