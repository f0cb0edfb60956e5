"""Customer 360: every fact of the customer, and only theirs, newest first."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import ibis
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kehu import Workspace
from kehu.customer360 import TimelineSource, customer_360, register_timeline_source
from kehu.customer360.sources import event
from kehu.errors import NotFoundError
from kehu.model import ENTITIES


def _table(entity: str, rows: list[dict]) -> pa.Table:
    schema = ENTITIES[entity].arrow_schema({"attr_会员等级": pa.string()}
                                           if entity == "customers" else None)
    return pa.Table.from_pydict({f.name: [r.get(f.name) for r in rows] for f in schema},
                                schema=schema)


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    w = Workspace.init(tmp_path / "w")
    w.warehouse.append("employees", _table("employees", [
        {"employee_id": "E1", "name": "周经理", "team": "北京"}]))
    w.warehouse.append("customers", _table("customers", [
        {"customer_id": "A", "name": "张三", "account_manager_id": "E1", "attr_会员等级": "金卡"},
        {"customer_id": "B", "name": "李四"}]))
    t0 = datetime(2024, 1, 1)
    w.warehouse.append("transactions", _table("transactions", [
        {"transaction_id": f"T{i}", "customer_id": "A" if i % 3 else "B",
         "transaction_time": t0 + timedelta(days=i), "amount": float(i), "kind": "purchase"}
        for i in range(30)]))
    w.warehouse.append("contracts", _table("contracts", [
        {"contract_id": "K1", "customer_id": "A", "start_date": date(2023, 6, 1),
         "end_date": date(2026, 6, 1), "status": "active"}]))
    w.warehouse.append("tickets", _table("tickets", [
        {"ticket_id": "TK1", "customer_id": "A", "opened_time": datetime(2024, 1, 10, 9),
         "resolved_time": datetime(2024, 1, 11, 9), "kind": "complaint", "category": "账单"},
        {"ticket_id": "TK2", "customer_id": "A", "opened_time": datetime(2024, 2, 10, 9),
         "kind": "complaint"}]))
    w.warehouse.append("referrals", _table("referrals", [
        {"referral_id": "R1", "referrer_id": "A", "referred_id": "B",
         "referral_date": date(2024, 3, 1)}]))
    return w


def test_profile_attributes_manager_and_timeline(ws: Workspace) -> None:
    c = customer_360(ws, "A", limit=None)
    assert c.profile["name"] == "张三" and c.attributes == {"会员等级": "金卡"}
    assert c.account_manager is not None and c.account_manager["name"] == "周经理"
    n_tx = sum(1 for i in range(30) if i % 3)
    assert c.counts == {"transactions": n_tx, "contract_start": 1, "contract_end": 1,
                        "ticket_opened": 2, "ticket_resolved": 1, "referred_someone": 1}
    assert c.timeline_total == len(c.timeline) == n_tx + 6
    times = [i.time for i in c.timeline]
    assert times == sorted(times, reverse=True)
    assert c.timeline[0].kind == "contract_end"  # maturity in 2026 is the newest event
    kinds = {i.kind for i in c.timeline}
    assert {"complaint_opened", "complaint_resolved", "referred_someone"} <= kinds
    b = customer_360(ws, "B", limit=None)
    assert b.counts["transactions"] == 30 - n_tx and b.counts["was_referred"] == 1


def test_limit_and_unknown_customer(ws: Workspace) -> None:
    c = customer_360(ws, "A", limit=3)
    assert len(c.timeline) == 3 and c.timeline_total > 3
    with pytest.raises(NotFoundError, match="No customer with id 'Z'"):
        customer_360(ws, "Z")


def test_third_party_timeline_source(ws: Workspace) -> None:
    def marketing_notes(t: ibis.Table) -> ibis.Table:
        return event(t, time=ibis.literal(datetime(2020, 5, 4)), kind="note", title=t.name,
                     ref=t.customer_id)

    register_timeline_source(TimelineSource("test_signup", "customers", marketing_notes))
    try:
        c = customer_360(ws, "A", limit=None)
        assert c.counts["test_signup"] == 1
        assert c.timeline[-1].source == "test_signup" and c.timeline[-1].title == "张三"
    finally:
        from kehu.customer360 import sources

        sources._SOURCES.pop("test_signup")


@settings(max_examples=10, deadline=None)
@given(days=st.lists(st.integers(0, 2000), min_size=0, max_size=40))
def test_timeline_has_every_fact_sorted(tmp_path_factory: pytest.TempPathFactory,
                                        days: list[int]) -> None:
    w = Workspace.init(tmp_path_factory.mktemp("h") / "w")
    w.warehouse.append("customers", _table("customers", [{"customer_id": "A"}]))
    if days:
        w.warehouse.append("interactions", _table("interactions", [
            {"interaction_id": f"I{i}", "customer_id": "A", "channel": "sms",
             "interaction_time": datetime(2020, 1, 1) + timedelta(days=d)}
            for i, d in enumerate(days)]))
    c = customer_360(w, "A", limit=None)
    assert c.timeline_total == len(days)
    assert [i.time for i in c.timeline] == sorted(
        [datetime(2020, 1, 1) + timedelta(days=d) for d in days], reverse=True)


def test_notes_and_logged_interactions_join_the_timeline(ws: Workspace) -> None:
    from kehu.store import services as sv

    sv.add_note(ws.store, sv.NoteIn(customer_id="A", text="VIP，勿打扰"), "u1")
    sv.log_interaction(ws.store, sv.InteractionIn(customer_id="A", time=datetime(2030, 1, 1),
                                                  channel="visit", text="上门"), "u1")
    c = customer_360(ws, "A", limit=None)
    assert c.counts["notes"] == 1 and c.counts["logged_interactions"] == 1
    assert c.timeline[0].source == "logged_interactions"  # 2030 is the newest
    assert any(i.kind == "note" and i.title == "VIP，勿打扰" for i in c.timeline)
    assert customer_360(ws, "B", limit=None).counts.get("notes") is None


def test_lookup_file_gives_what_the_warehouse_gives(tmp_path_factory: pytest.TempPathFactory,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The 360 page reads a customer-sorted DuckDB copy of the warehouse (fast at millions of
    rows); for every customer of a generated company it equals the warehouse's answer, and an
    import makes a new copy."""
    from kehu.customer360 import lookup as lk
    from kehu.demo import generate
    from kehu.ingest.manifest import load_manifest

    base = tmp_path_factory.mktemp("lookup")
    s = generate("telco", 300, seed=5, out=base / "src")
    w = Workspace.init(base / "ws")
    load_manifest(w, s.manifest)
    ids = w.warehouse.read("customers", columns=["customer_id"]).column(0).to_pylist()
    fast = {cid: customer_360(w, cid, limit=None) for cid in ids[:40]}
    files = list((w.root / lk.LOOKUP_DIR).glob("*.duckdb"))
    assert len(files) == 1
    with monkeypatch.context() as m:
        m.setattr(lk, "lookup", lambda ws, build=True: None)
        slow = {cid: customer_360(w, cid, limit=None) for cid in ids[:40]}
    assert sum(c.timeline_total for c in slow.values()) > 40
    for cid in fast:
        a, b = fast[cid].model_dump(), slow[cid].model_dump()
        assert a["profile"] == b["profile"] and a["scores"] == b["scores"], cid
        assert a["counts"] == b["counts"] and a["timeline_total"] == b["timeline_total"], cid
        assert [(i["time"], i["source"], i["ref"]) for i in a["timeline"]] == \
            [(i["time"], i["source"], i["ref"]) for i in b["timeline"]], cid
    w.warehouse.append("interactions", _table("interactions", [
        {"interaction_id": "NEW1", "customer_id": ids[0], "channel": "sms",
         "interaction_time": datetime(2030, 1, 1)}]))
    again = customer_360(w, ids[0], limit=None)
    assert again.timeline[0].ref == "NEW1"  # a new import: a new lookup file, not stale data
    assert len(list((w.root / lk.LOOKUP_DIR).glob("*.duckdb"))) == lk.KEEP_FILES  # new + one old
    w.close()
