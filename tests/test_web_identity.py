"""The identity-resolution review queue and merge journal in the web app (issue 7: "Uncertain
pairs go to a review queue (merge / keep apart) for the web app; every merge is recorded and
reversible") — on a telco demo whose planted duplicates (the same person entered again by a
second system, the name in traditional characters, in pinyin or unchanged, the phone written
differently) all land in the queue: the workspace's identity spec sets the match threshold
above every pair's probability, so nothing is merged without a decision.

Each decision is checked where it takes effect, in the warehouse's ``identity_map`` read
directly; the pairs against the app store and the generator's truth file; the roles, the API
and, in a real browser, a click on "Merge".
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from html import unescape
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow.parquet as pq
import pytest
import yaml
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from kehu.demo import generate
from kehu.identity import service
from kehu.identity import tables as tb
from kehu.ingest.importer import Importer, plan_import
from kehu.settings import WebSection
from kehu.store import services as sv
from kehu.store.models import IdentityPair
from kehu.web import create_app
from kehu.web.routes import identity as routes
from kehu.workspace import Workspace
from web_support import SECRET, assert_problem, bearer, csrf, signed_in, web_app

if TYPE_CHECKING:
    from playwright.sync_api import Page

#: above every planted pair's probability (1 - 2**-w for match weights w of 20-35): the
#: model links the duplicates but merges none, so each waits for review
SPEC = {"match_threshold": 1 - 1e-12, "review_threshold": 0.5}
FIELDS_OF_A_DUPLICATE = {"name", "birth_date", "phone", "id_number"}


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Generated, imported and resolved once; each test gets a copy (it changes keys)."""
    base = tmp_path_factory.mktemp("webidentity")
    generate("telco", 1_500, seed=13, out=base / "src")
    ws = Workspace.init(base / "ws", locale="en")
    try:
        Importer(ws).run(plan_import(ws, "customers", [base / "src" / "customers.csv"]))
        (ws.root / service.SPEC_FILE).write_text(yaml.safe_dump(SPEC), encoding="utf-8")
        res = service.run(ws, actor="setup")
        assert res.review_pairs > 5 and res.merges == 0, res
        web_app(ws)  # the users of every role
    finally:
        ws.close()
    return base


@pytest.fixture
def ws(template: Path, tmp_path: Path) -> Iterator[Workspace]:
    shutil.copytree(template / "ws", tmp_path / "ws")
    w = Workspace.open(tmp_path / "ws")
    yield w
    w.close()


def _app(ws: Workspace) -> FastAPI:
    settings = ws.settings.model_copy(update={"web": WebSection(
        secret_key=SECRET, cookie_secure=False, login_max_failures=1000,
        warm_on_start=False)})
    return create_app(settings, ws)


@pytest.fixture
def app(ws: Workspace) -> Iterator[FastAPI]:
    application = _app(ws)
    with TestClient(application):
        yield application


@pytest.fixture
def ann(app: FastAPI) -> TestClient:
    return signed_in(app, "ann")


@pytest.fixture
def truth(template: Path) -> set[tuple[str, str]]:
    rows = pq.read_table(template / "src" / "truth" / "duplicates.parquet").to_pylist()
    return {tuple(sorted((r["duplicate_id"], r["duplicate_of"]))) for r in rows}  # type: ignore[misc]


# -- helpers ----------------------------------------------------------------------------------


def keys(ws: Workspace) -> dict[str, str]:
    """customer_id -> kehu_key, read from the warehouse table itself."""
    m = ws.warehouse.read(tb.MAP_TABLE)
    return dict(zip(m["customer_id"].to_pylist(), m["kehu_key"].to_pylist(), strict=True))


def pairs_in_store(ws: Workspace, status: str) -> dict[int, tuple[str, str]]:
    with ws.store.session() as s:
        return {p.id: (p.record_id_l, p.record_id_r) for p in s.scalars(
            select(IdentityPair).where(IdentityPair.status == status))}


def shown_pairs(html: str) -> list[int]:
    return [int(x) for x in re.findall(r'<article class="card pair"[^>]*data-pair="(\d+)"', html)]


def shown_total(html: str) -> int:
    m = re.search(r'id="queue-count" data-total="(\d+)"', html)
    assert m, "no queue count in the page"
    return int(m.group(1))


def tile(html: str, name: str) -> int:
    m = re.search(rf'data-stat="{name}"><span>[^<]*</span><strong>([\d,]+)</strong>', html)
    assert m, name
    return int(m.group(1).replace(",", ""))


def decide(c: TestClient, pair_id: int, decision: str, **params: Any) -> Any:
    return c.post(f"/identity/reviews/{pair_id}", params=params or None,
                  data={"decision": decision, "csrf_token": csrf(c, "/identity")},
                  follow_redirects=False)


def reopen(c: TestClient, pair_id: int, **params: Any) -> Any:
    return c.post(f"/identity/reviews/{pair_id}/reopen", params=params or None,
                  data={"csrf_token": csrf(c, "/identity")}, follow_redirects=False)


def undo(c: TestClient, entry_id: int) -> Any:
    return c.post(f"/identity/journal/{entry_id}/undo",
                  data={"csrf_token": csrf(c, "/identity/journal")}, follow_redirects=False)


def text_of(html: str, element_id: str) -> str:
    m = re.search(rf'id="{element_id}"[^>]*>(.*?)</p>', html, re.S)
    assert m, f"no #{element_id} in the page"
    return unescape(re.sub(r"<[^>]+>", "", m.group(1))).strip()


# -- the page ---------------------------------------------------------------------------------


def test_page_shows_status_and_every_pending_pair_side_by_side(
        ann: TestClient, ws: Workspace, truth: set[tuple[str, str]]) -> None:
    r = ann.get("/identity")
    assert r.status_code == 200
    html = r.text
    pending = pairs_in_store(ws, "pending")
    # the queue is the generator's planted duplicates, every one of them, on one page
    assert set(pending.values()) == truth
    assert len(pending) <= routes.PAGE_SIZE
    assert sorted(shown_pairs(html)) == sorted(pending) and shown_total(html) == len(pending)
    # most likely first, as the service orders them
    assert shown_pairs(html) == [it.pair_id for it in service.queue(ws, limit=100)]
    m = keys(ws)
    assert tile(html, "records") == len(m) == ws.warehouse.count("customers")
    assert tile(html, "customers") == len(set(m.values())) == len(m)  # nothing merged yet
    assert tile(html, "merged") == 0 and tile(html, "pending") == len(pending)
    assert "Last run #1" in html
    # each pair: both records' values from the customers table, their keys, what agrees
    customers = ws.warehouse.read("customers").to_pandas().set_index("customer_id")
    for pid, (a, b) in pending.items():
        card = re.search(rf'<article class="card pair" id="pair-{pid}".*?</article>', html,
                         re.S)
        assert card, pid
        body = unescape(card.group(0))
        for rid in (a, b):
            assert f">{rid}</a>" in body and f">{m[rid]}<" in body
            assert str(customers.loc[rid, "name"]) in body
            assert str(customers.loc[rid, "city"]) in body
        assert "two customers" in body
        agreed = set(re.search(r'data-agreed="([^"]*)"', body).group(1).split(","))  # type: ignore[union-attr]
        # a planted duplicate is the same person: name (in another script or order), birth
        # date, phone (written differently) and ID number all agree, nothing differs
        assert agreed >= FIELDS_OF_A_DUPLICATE, (pid, agreed)
        assert "data-disagreed" not in body
        name = re.search(r'data-field="name">.*?</tr>', body, re.S).group(0)  # type: ignore[union-attr]
        same = customers.loc[a, "name"] == customers.loc[b, "name"]
        assert ("similar (same pinyin)" in name) is not same and ("same<" in name) is same
        assert 'name="decision" value="merge"' in body
        assert 'name="decision" value="keep_apart"' in body
    # the nav leads here from every page of a configurer
    assert 'href="/identity"' in ann.get("/data").text


def test_merge_joins_the_keys_and_undo_gives_them_back(ann: TestClient, ws: Workspace) -> None:
    before = keys(ws)
    golden = ws.warehouse.count(tb.GOLDEN_TABLE)
    pid = service.queue(ws, limit=1)[0].pair_id
    a, b = pairs_in_store(ws, "pending")[pid]
    assert before[a] != before[b]

    r = decide(ann, pid, "merge", status="pending", page="1")
    assert r.status_code == 303 and r.headers["location"] == "/identity?status=pending&page=1"
    after = keys(ws)
    kept = min(before[a], before[b])
    assert after[a] == after[b] == kept
    assert {k: v for k, v in after.items() if k not in (a, b)} == \
        {k: v for k, v in before.items() if k not in (a, b)}
    assert ws.warehouse.count(tb.GOLDEN_TABLE) == golden - 1
    page = ann.get(r.headers["location"]).text
    notice = text_of(page, "identity-notice")
    assert f"Pair #{pid} merged" in notice and "1 records changed key" in notice
    assert pid not in shown_pairs(page) and shown_total(page) == len(pairs_in_store(ws, "pending"))
    assert tile(page, "merged") == 1 and tile(page, "customers") == len(set(after.values()))
    assert "identity-notice" not in ann.get("/identity").text  # shown once
    # the decided pair in the history, with who decided
    merged = ann.get("/identity", params={"status": "merge"}).text
    assert shown_pairs(merged) == [pid] and "Decided by ann" in merged
    assert "one customer" in merged
    # the journal: the merge, by ann, naming both keys, with an Undo button
    entry = service.journal(ws, limit=1)[0]
    assert (entry.action, entry.kind, entry.actor, entry.pair_id) == ("merge", "manual", "ann",
                                                                      pid)
    journal = ann.get("/identity/journal").text
    row = re.search(rf'<tr id="entry-{entry.id}".*?</tr>', journal, re.S).group(0)  # type: ignore[union-attr]
    assert ">ann<" in row and kept in row and max(before[a], before[b]) in row
    assert f'action="/identity/journal/{entry.id}/undo"' in row
    assert re.search(rf'<tr data-pair="{pid}" data-decision="merge">', journal)
    assert ("ann", "merge", str(pid)) in [(x.actor, x.action, x.object_id)
                                         for x in sv.audit_log(ws.store, limit=20)]

    r = undo(ann, entry.id)
    assert r.status_code == 303 and r.headers["location"] == "/identity/journal"
    assert keys(ws) == before
    assert ws.warehouse.count(tb.GOLDEN_TABLE) == golden
    journal = ann.get("/identity/journal").text
    assert f"Entry #{entry.id} undone" in text_of(journal, "identity-notice")
    row = re.search(rf'<tr id="entry-{entry.id}".*?</tr>', journal, re.S).group(0)  # type: ignore[union-attr]
    assert "/undo" not in row and "by ann" in row  # undone, so no button
    assert pid in pairs_in_store(ws, "pending")  # the decision went back to the queue
    assert pid in shown_pairs(ann.get("/identity").text)

    # undoing it again is refused with the service's reason on the page, not a 500
    r = undo(ann, entry.id)
    assert r.status_code == 422
    assert "already undone by ann" in text_of(r.text, "identity-error")
    assert keys(ws) == before
    # so are an unknown entry and an unknown pair (404, on the page)
    r = undo(ann, 999_999)
    assert r.status_code == 404 and "no journal entry #999999" in text_of(r.text, "identity-error")
    r = decide(ann, 999_999, "merge")
    assert r.status_code == 404 and "no review pair #999999" in text_of(r.text, "identity-error")
    r = decide(ann, pid, "maybe")
    assert r.status_code == 422 and "'maybe'" in text_of(r.text, "identity-error")
    assert keys(ws) == before


def test_keep_apart_records_the_decision(ann: TestClient, ws: Workspace) -> None:
    before = keys(ws)
    pid = service.queue(ws, limit=2)[1].pair_id
    a, b = pairs_in_store(ws, "pending")[pid]
    r = decide(ann, pid, "keep_apart", status="pending", page="1")
    assert r.status_code == 303
    assert keys(ws) == before  # two customers already: nothing to split
    assert pairs_in_store(ws, "keep_apart") == {pid: (a, b)}
    page = ann.get(r.headers["location"]).text
    assert f"Pair #{pid} kept apart" in text_of(page, "identity-notice")
    assert pid not in shown_pairs(page)
    apart = ann.get("/identity", params={"status": "keep_apart"}).text
    assert shown_pairs(apart) == [pid] and "Decided by ann" in apart
    assert shown_pairs(ann.get("/identity", params={"status": "all"}).text).count(pid) == 1
    # the journal page lists the decision (it changed no key, so it has no entry to undo)
    journal = ann.get("/identity/journal").text
    row = re.search(rf'<tr data-pair="{pid}" data-decision="keep_apart">.*?</tr>', journal,
                    re.S)
    assert row and ">ann<" in row.group(0) and a in row.group(0) and b in row.group(0)
    assert before[a] in row.group(0) and before[b] in row.group(0)
    assert service.status(ws).journal_entries == 0
    # merging the pair now contradicts the decision: the reason comes back, nothing changes
    r = decide(ann, pid, "merge")
    assert r.status_code == 422
    assert "kept apart" in text_of(r.text, "identity-error")
    assert keys(ws) == before and pairs_in_store(ws, "keep_apart") == {pid: (a, b)}


def test_reopen_a_kept_apart_pair_then_merge_it(ann: TestClient, ws: Workspace) -> None:
    """Keep a pair apart (no key changes, so no journal entry to undo), reopen it from the
    "Kept apart" view, and merge it: the merge it forbade now joins the keys."""
    before = keys(ws)
    pid = service.queue(ws, limit=1)[0].pair_id
    a, b = pairs_in_store(ws, "pending")[pid]
    assert decide(ann, pid, "keep_apart").status_code == 303
    apart = ann.get("/identity", params={"status": "keep_apart", "page": "1"}).text
    card = apart.split(f'id="pair-{pid}"')[1].split("</article>")[0]
    form = re.search(r'<form method="post" action="([^"]+)" class="reopen">(.*?)</form>', card,
                     re.S)
    assert form, "no Reopen form on the kept-apart pair"
    assert unescape(form.group(1)) == f"/identity/reviews/{pid}/reopen?status=keep_apart&page=1"
    assert 'name="csrf_token"' in form.group(2) and ">Reopen</button>" in form.group(2)
    # without the CSRF token: refused, nothing changes
    r = ann.post(f"/identity/reviews/{pid}/reopen", follow_redirects=False)
    assert r.status_code == 403 and pairs_in_store(ws, "keep_apart") == {pid: (a, b)}

    r = reopen(ann, pid, status="keep_apart", page="1")
    assert r.status_code == 303
    assert r.headers["location"] == "/identity?status=keep_apart&page=1"
    assert pairs_in_store(ws, "keep_apart") == {} and pid in pairs_in_store(ws, "pending")
    assert keys(ws) == before
    page = ann.get(r.headers["location"]).text
    assert f"Pair #{pid} reopened" in text_of(page, "identity-notice")
    assert pid not in shown_pairs(page)
    assert pid in shown_pairs(ann.get("/identity").text)   # waits for a decision again
    assert ("ann", "reopen", str(pid)) in [(x.actor, x.action, x.object_id)
                                          for x in sv.audit_log(ws.store, limit=20)]
    # reopening a pending pair is refused with the reason, on the page
    r = reopen(ann, pid)
    assert r.status_code == 422
    assert f"Pair #{pid} is pending already" in text_of(r.text, "identity-error")

    assert decide(ann, pid, "merge").status_code == 303    # refused before; allowed now
    after = keys(ws)
    assert after[a] == after[b] == min(before[a], before[b])
    # a merge in effect shows its journal entry instead of "Reopen", and reopening it is
    # refused: it is undone through the journal
    entry = service.journal(ws, limit=1)[0]
    merged = ann.get("/identity", params={"status": "merge"}).text
    card = merged.split(f'id="pair-{pid}"')[1].split("</article>")[0]
    assert 'class="reopen"' not in card and f'href="/identity/journal#entry-{entry.id}"' in card
    r = reopen(ann, pid, status="merge", page="1")
    assert r.status_code == 422
    msg = text_of(r.text, "identity-error")
    assert "still in effect" in msg and f"kehu identity undo {entry.id}" in msg
    assert keys(ws) == after
    r = reopen(ann, 999_999)
    assert r.status_code == 404 and "no review pair #999999" in text_of(r.text, "identity-error")


def test_a_merge_that_breaks_a_keep_apart_decision_is_refused_with_the_reason(
        ann: TestClient, ws: Workspace) -> None:
    """Keep C apart from W, then merge C with a third record R and try to merge R with W:
    the service refuses, and the page says why (422), keys unchanged."""
    q = service.queue(ws, limit=3)
    (c, w), (x, _y) = (q[0].record_id_l, q[0].record_id_r), (q[1].record_id_l, q[1].record_id_r)
    assert decide(ann, q[0].pair_id, "keep_apart").status_code == 303
    join = service.pair_for(ws, c, x, actor="t")
    assert decide(ann, join, "merge").status_code == 303
    before = keys(ws)
    bad = service.pair_for(ws, x, w, actor="t")
    r = decide(ann, bad, "merge", status="pending", page="1")
    assert r.status_code == 422
    msg = text_of(r.text, "identity-error")
    assert "kept apart" in msg and c in msg and w in msg
    assert keys(ws) == before
    card = r.text.split(f'id="pair-{bad}"')[1].split("</article>")[0]
    assert 'class="error" role="alert">' in card  # beside the pair, too


def test_pages_of_the_queue(ann: TestClient, ws: Workspace,
                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(routes, "PAGE_SIZE", 4)
    order = [it.pair_id for it in service.queue(ws, limit=100)]
    seen: list[int] = []
    pages = -(-len(order) // 4)
    for n in range(1, pages + 1):
        html = ann.get("/identity", params={"page": n}).text
        seen += shown_pairs(html)
        assert (f"Page {n} of {pages}") in html
        assert ('rel="next"' in html) is (n < pages) and ('rel="prev"' in html) is (n > 1)
    assert seen == order
    # past the end: the last page (a decision may have emptied the page someone was on)
    assert shown_pairs(ann.get("/identity", params={"page": 99}).text) == order[4 * (pages - 1):]
    # a decision on page 2 comes back to page 2
    r = decide(ann, order[5], "keep_apart", status="pending", page="2")
    assert r.headers["location"] == "/identity?status=pending&page=2"
    for bad in ({"page": "0"}, {"page": "x"}, {"status": "open"}):
        r = ann.get("/identity", params=bad)
        assert r.status_code == 400, bad
        assert "parameter must be" in r.text


# -- roles ------------------------------------------------------------------------------------


def test_roles_without_permission_get_403_and_change_nothing(app: FastAPI, ws: Workspace) -> None:
    before = keys(ws)
    pid = service.queue(ws, limit=1)[0].pair_id
    for name in ("vic", "max", "amy"):  # viewer, manager, account manager
        c = signed_in(app, name)
        assert c.get("/identity").status_code == 403
        assert c.get("/identity/journal").status_code == 403
        assert 'href="/identity"' not in c.get("/account").text
        token = csrf(c, "/account")
        r = c.post(f"/identity/reviews/{pid}", data={"decision": "merge", "csrf_token": token})
        assert r.status_code == 403
        assert c.post(f"/identity/reviews/{pid}/reopen",
                      data={"csrf_token": token}).status_code == 403
        h = bearer(ws, name)
        assert_problem(c.get("/api/v1/identity/reviews", headers=h), 403)
        assert_problem(c.post(f"/api/v1/identity/reviews/{pid}", json={"decision": "merge"},
                              headers=h), 403)
        assert_problem(c.post("/api/v1/identity/journal/1/undo", headers=h), 403)
        assert_problem(c.post(f"/api/v1/identity/reviews/{pid}/reopen", headers=h), 403)
    assert keys(ws) == before and pid in pairs_in_store(ws, "pending")
    # admins may, like analysts
    assert signed_in(app, "ada").get("/identity").status_code == 200
    # and a form without the CSRF token is refused
    c = signed_in(app, "ann")
    assert c.post(f"/identity/reviews/{pid}", data={"decision": "merge"}).status_code == 403
    assert keys(ws) == before


# -- the API ----------------------------------------------------------------------------------


def test_api_status_reviews_decide_journal_undo(app: FastAPI, ws: Workspace,
                                                truth: set[tuple[str, str]]) -> None:
    c = TestClient(app)
    h = bearer(ws, "ann")
    st = c.get("/api/v1/identity/status", headers=h).json()
    assert st["pending"] == len(truth) and st["records"] == ws.warehouse.count("customers")
    assert st["last_run"]["id"] == 1 and st["merged_pairs"] == 0

    rows: list[dict[str, Any]] = []
    for page in (1, 2, 3, 4):
        body = c.get("/api/v1/identity/reviews", params={"page": page, "page_size": 4},
                     headers=h).json()
        assert body["total"] == len(truth) and body["pages"] == -(-len(truth) // 4)
        rows += body["rows"]
    assert [r["pair_id"] for r in rows] == [it.pair_id for it in service.queue(ws, limit=100)]
    assert {(r["record_id_l"], r["record_id_r"]) for r in rows} == truth
    m = keys(ws)
    for r in rows:
        assert (r["kehu_key_l"], r["kehu_key_r"]) == (m[r["record_id_l"]], m[r["record_id_r"]])
        assert set(r["agreed"]) >= FIELDS_OF_A_DUPLICATE and r["disagreed"] == []
        assert r["left"]["customer_id"] == r["record_id_l"]
    # the page shows the same pairs in the same order
    page = signed_in(app, "ann").get("/identity").text
    assert shown_pairs(page) == [r["pair_id"] for r in rows]

    first = rows[0]
    a, b = first["record_id_l"], first["record_id_r"]
    res = c.post(f"/api/v1/identity/reviews/{first['pair_id']}",
                 json={"decision": "merge", "note": "同一人"}, headers=h)
    assert res.status_code == 200, res.text
    out = res.json()
    assert out["status"] == "merge" and out["changed_records"] == 1 and out["journal_id"]
    assert keys(ws)[a] == keys(ws)[b] == min(m[a], m[b])
    merged = c.get("/api/v1/identity/reviews", params={"status": "merge"}, headers=h).json()
    assert merged["total"] == 1 and merged["rows"][0]["note"] == "同一人"
    assert merged["rows"][0]["decided_by"] == "ann (token)"
    assert c.get("/api/v1/identity/status", headers=h).json()["merged_pairs"] == 1

    journal = c.get("/api/v1/identity/journal", params={"limit": 5}, headers=h).json()
    assert journal[0]["id"] == out["journal_id"] and journal[0]["action"] == "merge"
    kept = min(m[a], m[b])
    assert journal[0]["before"] == {a: m[a], b: m[b]}
    assert journal[0]["after"] == {a: kept, b: kept} and journal[0]["actor"] == "ann (token)"
    assert c.get("/api/v1/identity/journal", params={"key": max(m[a], m[b])},
                 headers=h).json()[0]["id"] == out["journal_id"]

    undone = c.post(f"/api/v1/identity/journal/{out['journal_id']}/undo", headers=h)
    assert undone.status_code == 200 and undone.json()["undo_of"] == out["journal_id"]
    assert keys(ws) == m
    body = assert_problem(c.post(f"/api/v1/identity/journal/{out['journal_id']}/undo",
                                 headers=h), 400)
    assert "already undone" in body["detail"]
    # errors as problem+json, never a 500
    assert "no review pair" in assert_problem(c.post(
        "/api/v1/identity/reviews/999999", json={"decision": "merge"}, headers=h),
        404)["detail"]
    assert_problem(c.post(f"/api/v1/identity/reviews/{first['pair_id']}",
                          json={"decision": "maybe"}, headers=h), 422)
    assert_problem(c.post(f"/api/v1/identity/reviews/{first['pair_id']}",
                          json={"decision": "merge", "extra": 1}, headers=h), 422)
    assert_problem(c.get("/api/v1/identity/reviews", params={"status": "open"}, headers=h), 422)
    assert_problem(c.get("/api/v1/identity/journal", params={"limit": 0}, headers=h), 422)
    assert_problem(c.post("/api/v1/identity/journal/999999/undo", headers=h), 404)
    assert keys(ws) == m


def test_api_reopen(app: FastAPI, ws: Workspace) -> None:
    c = TestClient(app)
    h = bearer(ws, "ann")
    m = keys(ws)
    pid = service.queue(ws, limit=1)[0].pair_id
    a, b = pairs_in_store(ws, "pending")[pid]
    body = assert_problem(c.post(f"/api/v1/identity/reviews/{pid}/reopen", headers=h), 400)
    assert "pending already" in body["detail"]
    assert c.post(f"/api/v1/identity/reviews/{pid}", json={"decision": "keep_apart"},
                  headers=h).status_code == 200
    row = c.get("/api/v1/identity/reviews", params={"status": "keep_apart"},
                headers=h).json()["rows"][0]
    assert row["pair_id"] == pid and row["journal_id"] is None
    r = c.post(f"/api/v1/identity/reviews/{pid}/reopen", headers=h)
    assert r.status_code == 200, r.text
    assert r.json() == {"pair_id": pid, "status": "pending", "journal_id": None,
                        "changed_records": 0, "keys": sorted({m[a], m[b]})}
    assert pid in pairs_in_store(ws, "pending") and keys(ws) == m
    st = c.get("/api/v1/identity/status", headers=h).json()
    assert st["kept_apart_pairs"] == 0 and st["merged_customers"] == 0
    # merged through the API now; a merge in effect is refused, with the entry to undo
    out = c.post(f"/api/v1/identity/reviews/{pid}", json={"decision": "merge"},
                 headers=h).json()
    assert keys(ws)[a] == keys(ws)[b]
    body = assert_problem(c.post(f"/api/v1/identity/reviews/{pid}/reopen", headers=h), 400)
    assert f"kehu identity undo {out['journal_id']}" in body["detail"]
    assert c.get("/api/v1/identity/status", headers=h).json()["merged_customers"] == 1
    assert_problem(c.post("/api/v1/identity/reviews/999999/reopen", headers=h), 404)


def test_zh_cn(app: FastAPI, ws: Workspace) -> None:
    c = signed_in(app, "ann")
    c.post("/lang", data={"lang": "zh_CN", "csrf_token": csrf(c, "/identity")})
    html = c.get("/identity").text
    for zh in ("客户识别", "复核队列", "合并", "保持分开", "合并日志"):
        assert zh in html, zh
    assert "Review queue" not in html and "Keep apart" not in html
    journal = c.get("/identity/journal").text
    assert "合并日志" in journal and "Changes of keys" not in journal


# -- a real browser ---------------------------------------------------------------------------


@pytest.mark.browser
def test_browser_merge_shrinks_the_queue(ws: Workspace, tmp_path: Path) -> None:
    from browser_support import (
        ConsoleWatch,
        LiveServer,
        browser_unavailable,
        chromium_path,
        launch_args,
        screenshot,
        sign_in,
    )
    from web_support import PASSWORD

    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        browser_unavailable(f"the playwright package is not importable ({exc})")
    chromium = chromium_path()
    pending = len(pairs_in_store(ws, "pending"))
    with LiveServer(_app(ws)) as server, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True,
                                     args=launch_args())
        context = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 900})
        context.set_default_timeout(15_000)
        page: Page = context.new_page()
        console = ConsoleWatch().attach(page)
        sign_in(page, server.url, "ann", PASSWORD)
        page.goto(f"{server.url}/identity")
        assert int(page.get_attribute("#queue-count", "data-total") or -1) == pending
        cards = page.locator("article.pair")
        assert cards.count() == pending
        first = cards.first
        pid = int(first.get_attribute("data-pair") or 0)
        a, b = pairs_in_store(ws, "pending")[pid]
        screenshot(page, "identity-queue")
        with page.expect_navigation():
            first.get_by_role("button", name="Merge").click()
        assert page.url.endswith("/identity?status=pending&page=1")
        assert int(page.get_attribute("#queue-count", "data-total") or -1) == pending - 1
        assert page.locator("article.pair").count() == pending - 1
        assert page.locator(f"#pair-{pid}").count() == 0
        assert f"Pair #{pid} merged" in page.inner_text("#identity-notice")
        assert page.inner_text('[data-stat="merged"] strong') == "1"
        k = keys(ws)
        assert k[a] == k[b]
        assert console.take() == []
        context.close()
        browser.close()
