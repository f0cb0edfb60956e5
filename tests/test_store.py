"""The app store on SQLite and on the real PostgreSQL server: migrations, constraints,
services, audit, concurrent writers."""

from __future__ import annotations

import threading
from datetime import date, datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.exc import IntegrityError

from kehu.errors import KehuInputError, NotFoundError, StoreError
from kehu.store import AppStore
from kehu.store import services as sv
from kehu.store.models import Base, User


def test_migrations_upgrade_idempotent_and_match_the_models(store_url: str) -> None:
    store = AppStore(store_url)
    assert store.current_revision() is None
    store.upgrade()
    assert store.current_revision() == "0006"
    store.upgrade()  # a no-op
    assert store.current_revision() == "0006"
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
    store.dispose()


def test_services_round_trip_and_audit(store_url: str) -> None:
    store = AppStore(store_url)
    store.upgrade()
    with store.session() as s:
        u = User(username="wang", display_name="王经理", role="account_manager",
                 employee_id="E01")
        s.add(u)
        s.flush()
        uid = u.id
    sv.add_note(store, sv.NoteIn(customer_id="C1", text="第一次", author_id=uid), "wang")
    sv.add_note(store, sv.NoteIn(customer_id="C1", text="第二次", author_id=uid), "wang")
    sv.add_note(store, sv.NoteIn(customer_id="C2", text="别人的"), "wang")
    assert [n.text for n in sv.list_notes(store, "C1")] == ["第二次", "第一次"]
    sv.log_interaction(store, sv.InteractionIn(customer_id="C1", time=datetime(2024, 5, 1, 10),
                                               channel="visit", direction="outbound",
                                               text="上门拜访"), "wang")
    assert [i.channel for i in sv.list_interactions(store, "C1")] == ["visit"]
    t1 = sv.create_task(store, sv.TaskIn(title="回访", customer_id="C1", assignee_id=uid,
                                         due_date=date(2024, 6, 1), priority="high"), "sys")
    sv.create_task(store, sv.TaskIn(title="无期限", assignee_id=uid), "sys")
    assert [t.title for t in sv.list_tasks(store, assignee_id=uid)] == ["回访", "无期限"]
    done = sv.complete_task(store, t1.id, "wang")
    assert done.status == "done" and done.completed_at is not None
    with pytest.raises(KehuInputError, match="already done"):
        sv.complete_task(store, t1.id, "wang")
    with pytest.raises(NotFoundError):
        sv.complete_task(store, 9999, "wang")
    assert [t.title for t in sv.list_tasks(store, assignee_id=uid)] == ["无期限"]
    sv.assign(store, "C1", "E01", "admin", since=date(2024, 1, 1))
    sv.assign(store, "C2", "E01", "admin", since=date(2024, 1, 1))
    sv.assign(store, "C2", "E02", "admin", since=date(2024, 3, 1))
    assert sv.portfolio(store, "E01", on=date(2024, 2, 1)) == ["C1", "C2"]
    assert sv.portfolio(store, "E01", on=date(2024, 4, 1)) == ["C1"]
    assert sv.portfolio(store, "E02", on=date(2024, 4, 1)) == ["C2"]
    assert sv.unassign(store, "C1", "admin", until=date(2024, 5, 1)) == 1
    assert sv.portfolio(store, "E01", on=date(2024, 6, 1)) == []
    d1 = sv.save_definition(store, sv.DefinitionIn(kind="segment", name="高价值",
                                                   spec={"rule": "spend > 1000"}), "ana")
    d2 = sv.save_definition(store, sv.DefinitionIn(kind="segment", name="高价值",
                                                   spec={"rule": "spend > 2000"}), "ana")
    assert d1.id == d2.id and d2.version == 2
    assert sv.get_definition(store, "segment", "高价值").spec == {"rule": "spend > 2000"}
    actions = [(a.action, a.object_type) for a in sv.audit_log(store, limit=100)]
    assert actions.count(("create", "note")) == 3
    assert ("done", "task") in actions and ("update", "segment") in actions
    assert actions.count(("assign", "customer")) == 3
    store.dispose()


def test_constraints(store_url: str) -> None:
    store = AppStore(store_url)
    store.upgrade()
    with pytest.raises(IntegrityError), store.session() as s:
        s.add(User(username="x", role="superuser"))
    with pytest.raises(IntegrityError), store.session() as s:
        s.add(User(username="dup"))
        s.add(User(username="dup"))
    with pytest.raises(ValueError):
        sv.TaskIn(title="t", priority="urgent")  # type: ignore[arg-type]
    store.dispose()


def test_concurrent_writers_lose_nothing(store_url: str) -> None:
    store = AppStore(store_url)
    store.upgrade()
    errors: list[BaseException] = []

    def writer(k: int) -> None:
        try:
            for i in range(15):
                sv.add_note(store, sv.NoteIn(customer_id="C9", text=f"{k}-{i}"), f"w{k}")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(sv.list_notes(store, "C9")) == 60
    store.dispose()


def test_unreachable_database_is_a_clear_error() -> None:
    store = AppStore("postgresql+psycopg://nobody:secret@127.0.0.1:1/none")
    with pytest.raises(StoreError) as exc:
        store.upgrade()
    assert "***" in str(exc.value) and "secret" not in str(exc.value)


@pytest.mark.postgres
def test_workspace_on_postgresql(pg_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from kehu import Workspace

    ws = Workspace.init(tmp_path / "w", store_url=pg_url)
    assert ws.store.current_revision() == "0006"
    sv.add_note(ws.store, sv.NoteIn(customer_id="C1", text="团队共享"), "a")
    again = Workspace.open(tmp_path / "w")
    assert [n.text for n in sv.list_notes(again.store, "C1")] == ["团队共享"]
    ws.close()
    again.close()


def test_a_segment_named_by_a_campaign_draft_is_not_deleted(tmp_path: Path) -> None:
    """Deleting a saved segment is refused while an unlaunched campaign draft names it."""
    from kehu.segments import saved
    from kehu.store.models import CampaignDraft, Definition

    store = AppStore(f"sqlite:///{tmp_path / 'app.db'}")
    store.upgrade()
    with store.session() as s:
        s.add(Definition(kind=saved.KIND, name="vip", version=1, spec={"rule": {}}))
        s.add(CampaignDraft(campaign_id="C-DRAFT", name="draft", created_by="ann",
                            spec={"audience": {"segment": "vip"}}, status="submitted"))
    assert saved.using_campaigns(store, "vip") == ["C-DRAFT"]
    with pytest.raises(saved.SegmentInUseError, match="C-DRAFT"):
        saved.delete(store, "vip", actor="ann")
