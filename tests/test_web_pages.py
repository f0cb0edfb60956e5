"""The web app's pages and data API (issue 6): dashboard, customer list, customer 360 with
notes, and the REST API under /api/v1 — on one demo workspace (3,000 customers, one analysis
run), against the real app (FastAPI's TestClient) and real sign-in."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pandas as pd
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from kehu.dashboard import dashboard
from kehu.store.services import TaskIn, audit_log, create_task, list_notes
from kehu.store.users import list_users
from kehu.workspace import Workspace
from web_support import (
    assert_problem,
    bearer,
    busiest_manager,
    csrf,
    demo_workspace,
    signed_in,
    web_app,
)

SECTIONS = ["headline", "tiers", "rfm", "lifecycle", "churn_risk", "clv", "pareto", "trends",
            "kpis"]


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    w = demo_workspace(tmp_path_factory.mktemp("webpages"))
    yield w
    w.close()


@pytest.fixture(scope="module")
def customers(ws: Workspace) -> pd.DataFrame:
    return ws.warehouse.read("customers").to_pandas()


@pytest.fixture(scope="module")
def manager_id(ws: Workspace) -> str:
    """The employee id of the account manager with the most customers."""
    return busiest_manager(ws)


@pytest.fixture(scope="module")
def app(ws: Workspace, manager_id: str) -> Iterator[FastAPI]:
    application = web_app(ws, manager_id)
    with TestClient(application):  # runs the lifespan once for the module
        yield application


@pytest.fixture(scope="module")
def ann(app: FastAPI) -> TestClient:
    return signed_in(app, "ann")


@pytest.fixture(scope="module")
def amy(app: FastAPI) -> TestClient:
    return signed_in(app, "amy")


# -- dashboard ----------------------------------------------------------------------------------

def test_dashboard_every_section_chart_and_table(ann: TestClient, ws: Workspace) -> None:
    r = ann.get("/")
    assert r.status_code == 200
    page = r.text
    for key, sec in dashboard(ws, "en").sections.items():
        assert f'<h2 id="title-{key}">{sec.title}</h2>' in page, key
        assert f'data-section="{key}"' in page, key
        assert sec.columns[0]["label"] in page, key
    blocks = dict(re.findall(r'<script type="application/json" id="chart-(\w+)">(.*?)</script>',
                             page, re.S))
    assert sorted(blocks) == sorted(SECTIONS)
    options = {k: json.loads(v) for k, v in blocks.items()}
    assert options["rfm"]["series"][0]["type"] == "treemap"
    assert options["lifecycle"]["series"][0]["type"] == "sankey"
    assert options["lifecycle"]["series"][0]["links"]
    assert {s["type"] for s in options["trends"]["series"]} <= {"bar", "line"}
    assert 'data-echarts="chart-rfm"' in page
    assert "onclick" not in page and "<script>" not in page  # nothing inline to run: strict CSP
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert "application/json" in ann.get("/static/kehu.js").text


def test_dashboard_lifecycle_flows_between_chosen_dates(ann: TestClient,
                                                       ws: Workspace) -> None:
    """The sankey's two dates are chosen on the page: the form asks for the section alone
    (HTMX), a plain GET renders the page with them; the flows are the lifecycle analytic's."""
    from kehu.analytics.lifecycle import transitions

    page = ann.get("/").text
    assert 'name="flows_from"' in page and 'name="flows_to"' in page
    start, end = "2024-03-01", "2025-03-01"
    r = ann.get("/", params={"flows_from": start, "flows_to": end},
                headers={"HX-Request": "true", "HX-Target": "section-lifecycle"})
    assert r.status_code == 200 and "<html" not in r.text
    assert r.text.lstrip().startswith('<section class="dash-section" id="section-lifecycle"')
    assert f'value="{start}"' in r.text and f'value="{end}"' in r.text
    sankey = json.loads(re.search(r'id="chart-lifecycle">(.*?)</script>', r.text, re.S)[1])
    eng = ws.engine
    want = transitions(eng.table("transactions"), eng.table("customers"),
                       eng.table("churn_events"), pd.Timestamp(start).date(),
                       pd.Timestamp(end).date()).to_pandas()
    links = sankey["series"][0]["links"]
    assert sum(x["value"] for x in links) == want.customers.sum() > 0
    assert all(x["source"].endswith(f"({start})") and x["target"].endswith(f"({end})")
               for x in links)
    full = ann.get("/", params={"flows_from": start, "flows_to": end})
    assert full.status_code == 200 and f'value="{start}"' in full.text and "<html" in full.text
    bad = ann.get("/", params={"flows_from": end, "flows_to": start})
    assert bad.status_code == 400 and "flows_from" in bad.text


def test_dashboard_in_chinese(ann: TestClient, ws: Workspace) -> None:
    page = ann.get("/?lang=zh_CN").text
    assert dashboard(ws, "zh_CN").sections["rfm"].title in page and 'lang="zh-CN"' in page


def test_account_manager_gets_no_all_customer_figures(amy: TestClient,
                                                      customers: pd.DataFrame) -> None:
    page = amy.get("/").text
    assert "data-section=" not in page and "application/json" not in page
    assert f"{len(customers):,}" not in page
    assert 'href="/customers"' in page


def test_account_manager_dashboard_is_their_portfolio(amy: TestClient, ws: Workspace,
                                                      customers: pd.DataFrame,
                                                      manager_id: str) -> None:
    from kehu.accounts.portfolio import portfolios

    page = amy.get("/").text
    mine = customers[customers.account_manager_id == manager_id]
    row = portfolios(ws, employee_id=manager_id).iloc[0]
    tiles = page.split('id="my-portfolio"')[1].split("</div>\n</div>")[0]
    assert f"<strong>{int(row.customers):,}</strong>" in tiles
    # the at-risk list: this manager's ten customers of highest churn risk, by pandas
    scores = ws.engine.table("customer_scores").to_pandas()
    scores = scores[scores.run_id == scores.run_id.max()]
    top = scores[scores.customer_id.isin(mine.customer_id)] \
        .sort_values(["churn_risk", "customer_id"], ascending=[False, True]).head(10)
    section = page.split('id="my-at_risk"')[1].split("</section>")[0]
    shown = re.findall(r'<td><a href="/customers/([^"]+)">\1</a></td>', section)
    assert shown == list(top.customer_id)
    assert 'rel="next"' not in section


# -- customer list ------------------------------------------------------------------------------

def test_search_by_chinese_name_substring(ann: TestClient, customers: pd.DataFrame) -> None:
    part = str(customers.name.dropna().iloc[7])[-1]  # a given name's character
    expected = customers[customers.name.fillna("").str.contains(part, regex=False)]
    r = ann.get("/customers", params={"q": part})
    assert r.status_code == 200
    assert f"{len(expected):,} customers" in r.text
    shown = re.findall(r'<a href="/customers/(C\d+)">', r.text)
    assert shown and set(shown) <= set(expected.customer_id)


def test_search_by_id_prefix_htmx_partial_and_pages(ann: TestClient,
                                                    customers: pd.DataFrame) -> None:
    ids = customers.customer_id[customers.customer_id.str.startswith("C0000012")]
    r = ann.get("/customers", params={"q": "c0000012", "sort": "customer_id", "desc": "false"},
                headers={"HX-Request": "true"})
    assert r.status_code == 200 and "<html" not in r.text  # only the result table
    shown = list(dict.fromkeys(re.findall(r'<a href="/customers/(C\d+)">', r.text)))
    assert shown == sorted(ids)[:25] and f"{len(ids):,} customers" in r.text
    r = ann.get("/customers", params={"page": "2"})
    assert "Page 2 of" in r.text and 'rel="prev"' in r.text and "<html" in r.text
    r = ann.get("/customers", params={"tier": "diamond", "min_risk": "0.01"})
    assert r.status_code == 200 and "Diamond" in r.text
    r = ann.get("/customers", params={"lifecycle": "zombie"})
    assert r.status_code == 400 and "lifecycle" in r.text


def test_account_manager_sees_only_their_customers(amy: TestClient, manager_id: str,
                                                   customers: pd.DataFrame) -> None:
    mine = customers[customers.account_manager_id == manager_id]
    r = amy.get("/customers", params={"sort": "customer_id", "desc": "false"})
    assert f"{len(mine):,} customers" in r.text
    shown = set(re.findall(r'<a href="/customers/(C\d+)">', r.text))
    assert shown and shown <= set(mine.customer_id)
    other = customers[customers.account_manager_id != manager_id].customer_id.iloc[0]
    r = amy.get("/customers", params={"q": other})
    assert "0 customers" in r.text and f'href="/customers/{other}"' not in r.text


def test_filter_by_segment_manager_rfm_class_and_risk_range(
        ann: TestClient, amy: TestClient, ws: Workspace, customers: pd.DataFrame,
        manager_id: str) -> None:
    """Issue 6's list filters beyond tier and stage: a saved segment, the account manager,
    the RFM class and a churn-risk range, each counted against pandas on the warehouse."""
    from kehu.store import services as sv

    spec = {"name": "上海客户", "rule": {"all": [{"field": "city", "op": "=", "value": "上海"}]}}
    sv.save_definition(ws.store, sv.DefinitionIn(kind="segment", name="上海客户", spec=spec),
                       "test")
    page = ann.get("/customers").text
    assert '<option value="上海客户">' in page
    employees = ws.warehouse.read("employees").to_pandas().set_index("employee_id")
    name = employees.name[manager_id]
    assert f'<option value="{manager_id}">{name}' in page   # labelled with the name

    def count(**params: str) -> int:
        r = ann.get("/customers", params=params)
        assert r.status_code == 200, r.text
        return int(re.search(r"([\d,]+) customers", r.text).group(1).replace(",", ""))

    assert count(segment="上海客户") == (customers.city == "上海").sum() > 0
    assert count(manager=manager_id) == (customers.account_manager_id == manager_id).sum() > 0
    # the rows name the manager (the id on hover), for the HTMX partial too
    for headers in ({}, {"HX-Request": "true"}):
        rows = ann.get("/customers", params={"manager": manager_id}, headers=headers).text
        assert f'<span title="{manager_id}">{name}</span>' in rows
    scores = ws.warehouse.read("customer_scores").to_pandas()
    scores = scores[scores.run_id == scores.run_id.max()]
    cls = scores.rfm_class.value_counts().index[0]
    want = scores[(scores.rfm_class == cls) & (scores.churn_risk >= 0.1)
                  & (scores.churn_risk <= 0.5)]
    assert count(rfm=cls, min_risk="0.1", max_risk="0.5") == len(want) > 0
    # an account manager sees their own customers only: no manager to choose from
    assert 'name="manager"' not in amy.get("/customers").text


# -- customer 360 -------------------------------------------------------------------------------

def test_customer_360_page_and_note(ann: TestClient, ws: Workspace,
                                    customers: pd.DataFrame) -> None:
    row = customers.dropna(subset=["name"]).iloc[3]
    cid, name = str(row.customer_id), str(row["name"])
    r = ann.get(f"/customers/{cid}")
    assert r.status_code == 200
    for text in (name, "Timeline", "Value decomposition", "Historical value", "Service level",
                 "Contracts", "Open tasks"):
        assert text in r.text, text
    assert "purchase" in r.text  # a timeline event
    # the newest purchase names its product (the id on hover), as the products table does
    tx = ws.warehouse.read("transactions", ["customer_id", "transaction_time", "product_id",
                                            "quantity"]).to_pandas()
    last = tx[tx.customer_id == cid].sort_values("transaction_time").iloc[-1]
    products = ws.warehouse.read("products").to_pandas().set_index("product_id")
    pname = products.name[last.product_id]
    assert f'<span title="{last.product_id}">{pname} · {last.quantity}</span>' in r.text
    r = ann.post(f"/customers/{cid}/notes", data={"text": "Prefers calls after 6 pm"},
                 follow_redirects=False)
    assert r.status_code == 403  # no CSRF token
    r = ann.post(f"/customers/{cid}/notes", follow_redirects=False,
                 data={"text": "Prefers calls after 6 pm", "csrf_token": csrf(ann, "/")})
    assert r.status_code == 303 and r.headers["location"] == f"/customers/{cid}#notes"
    assert "Prefers calls after 6 pm" in ann.get(f"/customers/{cid}").text
    note = list_notes(ws.store, cid)[0]
    assert note.text == "Prefers calls after 6 pm"
    assert ("ann", "create", "note", str(note.id)) in [
        (a.actor, a.action, a.object_type, a.object_id) for a in audit_log(ws.store)]


def test_360_reads_as_sentences_in_the_users_language(ann: TestClient, ws: Workspace) -> None:
    """Churn reasons as sentences, profile fields and contract columns named and translated,
    contract end dates with the days left (issue 6's "contracts with maturity dates")."""
    from datetime import date

    from kehu.i18n import set_locale
    from kehu.models.churn.reasons import render

    scores = ws.warehouse.read("customer_scores").to_pandas()
    scores = scores[scores.run_id == scores.run_id.max()]
    risky = scores.dropna(subset=["churn_reasons"])
    risky = risky[risky.churn_reasons.str.len() > 2]
    cid = str(risky.customer_id.iloc[0])
    page = ann.get(f"/customers/{cid}").text
    set_locale("en")
    for reason in json.loads(risky.churn_reasons.iloc[0]):
        assert render(reason) in page
    assert "<dt>Birth date</dt>" in page and "<dt>birth_date</dt>" not in page
    contracts = ws.warehouse.read("contracts").to_pandas()
    held = contracts[contracts.customer_id == contracts.customer_id.iloc[0]]
    c = held.iloc[0]
    zh = ann.get(f"/customers/{c.customer_id}", params={"lang": "zh_CN"}).text
    ann.get("/", params={"lang": "en"})
    assert "结束/到期" in zh and "<dt>出生日期</dt>" in zh and str(c.contract_id) in zh
    status_zh = {"active": "有效", "ended": "已结束", "cancelled": "已取消", "renewed": "已续约"}
    assert status_zh[c.status] in zh
    # the next best offers card: the run's offers of the customer, best first
    offers = ws.warehouse.read("customer_offers").to_pandas()
    mine = offers[offers.customer_id == offers.customer_id.iloc[0]].sort_values("rank")
    page = ann.get(f"/customers/{mine.customer_id.iloc[0]}").text
    card = page[page.index('id="offers"'):page.index('id="h-contracts"')]
    shown = re.findall(r'<span class="muted">([^<]+)</span></td>', card)
    assert shown == mine.product_id.tolist()
    # days left to an end date, as of today, on a contract ending in the future
    future = contracts[pd.to_datetime(contracts.end_date) > pd.Timestamp.today()]
    if len(future):
        f = future.iloc[0]
        left = (pd.Timestamp(f.end_date).date() - date.today()).days
        en = ann.get(f"/customers/{f.customer_id}").text
        assert f"in {left:,} days" in en
def test_360_timeline_shows_all_events_on_request(ann: TestClient, ws: Workspace,
                                                  customers: pd.DataFrame,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole timeline (enterprise memory) is one click away when it is long."""
    from kehu.customer360.service import customer_360
    from kehu.web.routes import customers as page

    monkeypatch.setattr(page, "TIMELINE_SHOWN", 5)
    tx = ws.warehouse.read("transactions").to_pandas()
    cid = str(tx.customer_id.value_counts().index[0])
    total = customer_360(ws, cid, limit=None).timeline_total
    assert total > 5
    short = ann.get(f"/customers/{cid}").text
    assert f"5 of {total:,} events" in short and "?timeline=all" in short
    assert short.count('<tr class="kind-') == 5
    full = ann.get(f"/customers/{cid}", params={"timeline": "all"}).text
    assert f"{total:,} of {total:,} events" in full and "?timeline=all" not in full
    assert full.count('<tr class="kind-') == total
    assert ann.get(f"/customers/{cid}", params={"timeline": "most"}).status_code in (400, 422)


def test_follow_up_tasks_from_the_360_page(ann: TestClient, amy: TestClient, app: FastAPI,
                                          ws: Workspace, manager_id: str,
                                          customers: pd.DataFrame) -> None:
    """A follow-up task about the customer, for yourself or their account manager: it shows
    on the 360 and in the assignee's inbox, audited; nobody else may be given it."""
    from kehu.store.services import list_tasks

    users = {u.username: u for u in list_users(ws.store)}
    cid = str(customers[customers.account_manager_id == manager_id].customer_id.iloc[4])
    page = ann.get(f"/customers/{cid}").text
    assert f'<option value="{users["amy"].id}">amy' in page   # the account manager's user
    r = ann.post(f"/customers/{cid}/tasks", follow_redirects=False, data={
        "title": "回访：合约续签", "due_date": "2031-01-15", "priority": "high",
        "assignee_id": str(users["amy"].id), "csrf_token": csrf(ann, "/")})
    assert r.status_code == 303 and r.headers["location"] == f"/customers/{cid}#tasks"
    task = list_tasks(ws.store, customer_id=cid)[-1]
    assert (task.title, task.assignee_id, str(task.due_date), task.priority) == (
        "回访：合约续签", users["amy"].id, "2031-01-15", "high")
    assert ("ann", "create", "task", str(task.id)) in [
        (a.actor, a.action, a.object_type, a.object_id) for a in audit_log(ws.store)]
    assert "回访：合约续签" in ann.get(f"/customers/{cid}").text
    assert "回访：合约续签" in amy.get("/inbox").text
    # only yourself or the customer's account manager
    n = len(list_tasks(ws.store, customer_id=cid))
    r = ann.post(f"/customers/{cid}/tasks", data={
        "title": "x", "assignee_id": str(users["vic"].id), "csrf_token": csrf(ann, "/")})
    assert r.status_code == 400 and "assignee_id" in r.text
    r = ann.post(f"/customers/{cid}/tasks", data={
        "title": "x", "due_date": "someday", "csrf_token": csrf(ann, "/")})
    assert r.status_code == 400 and "due_date" in r.text
    assert len(list_tasks(ws.store, customer_id=cid)) == n
    vic = signed_in(app, "vic")
    assert "/tasks" not in vic.get(f"/customers/{cid}").text.split('id="tasks"')[1][:2000]
    # the API, by default for yourself
    c = TestClient(app)
    r = c.post(f"/api/v1/customers/{cid}/tasks", headers=bearer(ws, "amy"),
               json={"title": "Send the brochure"})
    assert r.status_code == 201 and r.json()["customer_id"] == cid
    assert list_tasks(ws.store, customer_id=cid)[-1].assignee_id == users["amy"].id
    other = str(customers[customers.account_manager_id != manager_id].customer_id.iloc[0])
    assert_problem(c.post(f"/api/v1/customers/{other}/tasks", headers=bearer(ws, "amy"),
                          json={"title": "x"}), 404)


def test_staff_log_a_contact_on_the_360_page(ann: TestClient, amy: TestClient, app: FastAPI,
                                             ws: Workspace, manager_id: str,
                                             customers: pd.DataFrame) -> None:
    """Issue 6: interactions that staff log on the 360 page join the customer's timeline and
    the app store (with who logged it), audited; viewers cannot, account managers only for
    their own customers."""
    from kehu.store.services import list_interactions

    cid = str(customers[customers.account_manager_id == manager_id].customer_id.iloc[2])
    page = amy.get(f"/customers/{cid}").text
    assert 'action="/customers/' + cid + '/interactions"' in page and "WeChat" in page
    r = amy.post(f"/customers/{cid}/interactions", follow_redirects=False, data={
        "channel": "wechat", "direction": "outbound", "time": "2025-11-03T10:15",
        "type": "call", "outcome": "call back", "text": "想了解金卡权益",
        "csrf_token": csrf(amy, "/")})
    assert r.status_code == 303 and r.headers["location"] == f"/customers/{cid}#timeline"
    got = list_interactions(ws.store, cid)[-1]
    assert (got.channel, got.direction, got.type, got.outcome, got.text, got.employee_id) == (
        "wechat", "outbound", "call", "call back", "想了解金卡权益", manager_id)
    assert str(got.time) == "2025-11-03 10:15:00"
    assert ("amy", "create", "interaction", str(got.id)) in [
        (a.actor, a.action, a.object_type, a.object_id) for a in audit_log(ws.store)]
    page = amy.get(f"/customers/{cid}").text
    rows = re.findall(r'<tr class="kind-interaction">(.*?)</tr>', page, re.S)
    assert any("WeChat" in r and "想了解金卡权益" in r and "call back" in r for r in rows)
    # a wrong channel is refused, naming the field, and nothing is logged
    n = len(list_interactions(ws.store, cid))
    r = amy.post(f"/customers/{cid}/interactions", data={
        "channel": "pigeon", "csrf_token": csrf(amy, "/")})
    assert r.status_code == 400 and "channel" in r.text
    assert len(list_interactions(ws.store, cid)) == n
    # not another manager's customer; not a viewer
    other = str(customers[customers.account_manager_id != manager_id].customer_id.iloc[0])
    r = amy.post(f"/customers/{other}/interactions", data={
        "channel": "hotline", "csrf_token": csrf(amy, "/")})
    assert r.status_code == 404 and not list_interactions(ws.store, other)
    vic = signed_in(app, "vic")
    assert "/interactions" not in vic.get(f"/customers/{cid}").text
    r = vic.post(f"/customers/{cid}/interactions", data={
        "channel": "hotline", "csrf_token": csrf(vic, "/")})
    assert r.status_code == 403
    # the API: the same service, with a bearer token
    c = TestClient(app)
    r = c.post(f"/api/v1/customers/{cid}/interactions", headers=bearer(ws, "ann"),
               json={"channel": "visit", "type": "visit", "outcome": "signed"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["channel"] == "visit" and body["employee_id"] is None and body["user_id"]
    assert_problem(c.post(f"/api/v1/customers/{cid}/interactions", headers=bearer(ws, "ann"),
                          json={"channel": "visit", "outcome": "x" * 201}), 422)


def test_account_manager_404_for_another_managers_customer(
        amy: TestClient, manager_id: str, customers: pd.DataFrame) -> None:
    other = customers[customers.account_manager_id != manager_id].customer_id.iloc[0]
    mine = customers[customers.account_manager_id == manager_id].customer_id.iloc[0]
    assert amy.get(f"/customers/{other}").status_code == 404
    r = amy.post(f"/customers/{other}/notes", data={"text": "x", "csrf_token": csrf(amy, "/")})
    assert r.status_code == 404
    assert amy.get(f"/customers/{mine}").status_code == 200
    assert amy.get("/customers/C99999999").status_code == 404


def test_viewer_sees_masked_phones(app: FastAPI, customers: pd.DataFrame) -> None:
    vic = signed_in(app, "vic")
    row = customers.dropna(subset=["phone"]).iloc[0]
    page = vic.get(f"/customers/{row.customer_id}").text
    assert str(row.phone) not in page and "****" in page


# -- REST API -----------------------------------------------------------------------------------

API_GETS = ["/api/v1/customers", "/api/v1/customers/C00000001",
            "/api/v1/customers/C00000001/timeline", "/api/v1/dashboard", "/api/v1/tasks"]


def test_api_needs_sign_in(app: FastAPI) -> None:
    anon = TestClient(app)
    for path in API_GETS:
        r = anon.get(path)
        assert_problem(r, 401)
        assert r.headers["www-authenticate"] == "Bearer"
    r = anon.post("/api/v1/customers/C00000001/notes", json={"text": "x"},
                  headers={"X-CSRF-Token": csrf(anon)})  # CSRF passed: sign-in is what refuses
    assert_problem(r, 401)


def test_api_customers_list(app: FastAPI, ws: Workspace, customers: pd.DataFrame,
                            manager_id: str) -> None:
    c = TestClient(app)
    h = bearer(ws, "ann")
    body = c.get("/api/v1/customers", headers=h,
                 params={"q": "C000001", "page_size": 20, "page": 2, "sort": "customer_id",
                         "desc": "false"}).json()
    ids = sorted(customers.customer_id[customers.customer_id.str.startswith("C000001")])
    assert body["total"] == len(ids) and body["page"] == 2 and body["page_size"] == 20
    assert [r["customer_id"] for r in body["rows"]] == ids[20:40]
    assert body["run_id"] and body["as_of"]
    body = c.get("/api/v1/customers?tiers=diamond&tiers=gold&page_size=200", headers=h).json()
    assert body["rows"] and {r["tier"] for r in body["rows"]} <= {"diamond", "gold"}
    amy = bearer(ws, "amy")
    body = c.get("/api/v1/customers", headers=amy).json()
    assert body["total"] == int((customers.account_manager_id == manager_id).sum())
    assert {r["account_manager_id"] for r in body["rows"]} == {manager_id}


def test_api_bad_parameters_are_422_naming_them(app: FastAPI, ws: Workspace) -> None:
    c = TestClient(app)
    h = bearer(ws, "ann")
    for params, name in [({"page_size": 500}, "page_size"), ({"sort": "shoe_size"}, "sort"),
                         ({"min_risk": "high"}, "min_risk"), ({"colour": "red"}, "colour")]:
        body = assert_problem(c.get("/api/v1/customers", headers=h, params=params), 422)
        assert name in body["detail"] and name in [e["loc"][-1] for e in body["errors"]]
    body = assert_problem(c.get("/api/v1/tasks?status=late", headers=h), 422)
    assert "status" in body["detail"]


def test_api_customer_timeline_and_scope(app: FastAPI, ws: Workspace, customers: pd.DataFrame,
                                         manager_id: str) -> None:
    c = TestClient(app)
    h = bearer(ws, "ann")
    cid = str(customers.customer_id.iloc[5])
    body = c.get(f"/api/v1/customers/{cid}", headers=h).json()
    assert body["customer_id"] == cid and body["profile"]["name"] == customers.name.iloc[5]
    assert body["scores"]["run_id"] and "service_level" in body
    t1 = c.get(f"/api/v1/customers/{cid}/timeline?page_size=5", headers=h).json()
    t2 = c.get(f"/api/v1/customers/{cid}/timeline?page_size=5&page=2", headers=h).json()
    assert t1["total"] == body["timeline_total"] and len(t1["items"]) == 5
    assert t1["items"][-1]["time"] >= t2["items"][0]["time"]  # newest first, pages continue
    assert_problem(c.get("/api/v1/customers/C99999999", headers=h), 404)
    amy = bearer(ws, "amy")
    other = customers[customers.account_manager_id != manager_id].customer_id.iloc[0]
    for path in (f"/api/v1/customers/{other}", f"/api/v1/customers/{other}/timeline"):
        assert_problem(c.get(path, headers=amy), 404)
    assert_problem(c.post(f"/api/v1/customers/{other}/notes", json={"text": "x"},
                          headers=amy), 404)


def test_api_notes(app: FastAPI, ws: Workspace, customers: pd.DataFrame) -> None:
    c = TestClient(app)
    h = bearer(ws, "ann")
    cid = str(customers.customer_id.iloc[9])
    r = c.post(f"/api/v1/customers/{cid}/notes", json={"text": "Asked for an invoice"},
               headers=h)
    assert r.status_code == 201 and r.json()["text"] == "Asked for an invoice"
    assert ("ann (token)", "create", "note") in [
        (a.actor, a.action, a.object_type) for a in audit_log(ws.store)]
    timeline = c.get(f"/api/v1/customers/{cid}/timeline", headers=h).json()
    assert "Asked for an invoice" in [i["title"] for i in timeline["items"]]
    body = assert_problem(c.post(f"/api/v1/customers/{cid}/notes", json={"text": " "},
                                 headers=h), 422)
    assert "text" in body["detail"]


def test_api_dashboard(app: FastAPI, ws: Workspace) -> None:
    c = TestClient(app)
    body = c.get("/api/v1/dashboard", headers=bearer(ws, "ann")).json()
    assert list(body["sections"]) == SECTIONS
    assert body["sections"]["rfm"]["table"]["rows"]
    assert_problem(c.get("/api/v1/dashboard", headers=bearer(ws, "amy")), 403)
    body = assert_problem(c.get("/api/v1/dashboard?flows_from=soon",
                                headers=bearer(ws, "ann")), 422)
    assert "flows_from" in body["detail"]


def test_api_tasks_are_the_users(app: FastAPI, ws: Workspace) -> None:
    users = {u.username: u.id for u in list_users(ws.store)}
    for i in range(3):
        create_task(ws.store, TaskIn(title=f"Call back {i}", assignee_id=users["ann"],
                                     customer_id="C00000002"), actor="test")
    create_task(ws.store, TaskIn(title="Not Ann's", assignee_id=users["vic"]), actor="test")
    c = TestClient(app)
    body = c.get("/api/v1/tasks?page_size=2", headers=bearer(ws, "ann")).json()
    assert body["total"] == 3 and body["pages"] == 2 and len(body["rows"]) == 2
    assert all(r["title"].startswith("Call back") for r in body["rows"])
    from kehu.store.services import list_tasks

    amys = {t.id for t in list_tasks(ws.store, assignee_id=users["amy"])}
    got = c.get("/api/v1/tasks", headers=bearer(ws, "amy")).json()
    assert got["total"] == len(amys) and {r["id"] for r in got["rows"]} == amys
    assert not any(r["title"].startswith("Call back") for r in got["rows"])


def test_openapi_documents_the_data_api(app: FastAPI, ws: Workspace) -> None:
    schema = TestClient(app).get("/api/v1/openapi.json", headers=bearer(ws, "ann")).json()
    for path in ("/api/v1/customers", "/api/v1/customers/{customer_id}",
                 "/api/v1/customers/{customer_id}/timeline",
                 "/api/v1/customers/{customer_id}/notes", "/api/v1/dashboard",
                 "/api/v1/tasks"):
        assert path in schema["paths"], path
    params = {p["name"] for p in schema["paths"]["/api/v1/customers"]["get"]["parameters"]}
    assert {"q", "tiers", "min_risk", "sort", "page", "page_size"} <= params
    assert "CustomerPageOut" in schema["components"]["schemas"]


