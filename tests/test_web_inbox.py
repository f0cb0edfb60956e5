"""The task inbox (/inbox) and its API: exactly the tasks each user may see (compared with the
store and the warehouse read directly), filters and order, done / snooze / dismiss changing
the store and the audit log, scope (another manager's task is a 404), roles, CSRF, zh_CN.

One demo workspace (3,000 customers, one analysis run) with the alert rules run once, a team
manager ``mia`` added to amy's team through an employees import, and a second account
manager ``abe``."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import pandas as pd
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from kehu.alerts import AlertRules, run_alerts
from kehu.alerts.inbox import InboxQuery, inbox, task_scope
from kehu.ingest import Importer, plan_import, require_complete
from kehu.settings import WebSection
from kehu.store.models import AuditEntry, Task
from kehu.store.services import TaskIn, create_task
from kehu.store.users import UserIn, create_user, list_users
from kehu.web import create_app
from kehu.workspace import Workspace
from web_support import (
    PASSWORD,
    SECRET,
    assert_problem,
    bearer,
    busiest_manager,
    demo_workspace,
    signed_in,
    web_app,
)

TEAM_MANAGER = "E9001"


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    base = tmp_path_factory.mktemp("inbox")
    w = demo_workspace(base)
    yield w
    w.close()


def _app(ws: Workspace, account_manager: str) -> FastAPI:
    """The app with the users of every role, without the dashboard warming thread (it would
    query the workspace's DuckDB connection while the tests do)."""
    web_app(ws, account_manager)
    settings = ws.settings.model_copy(update={"web": WebSection(  # type: ignore[call-arg]
        secret_key=SECRET, cookie_secure=False, login_max_failures=1000,
        warm_on_start=False)})
    return create_app(settings, ws)


@pytest.fixture(scope="module")
def setup(ws: Workspace, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Users, mia's employee record in amy's team, the alert tasks and two manual tasks."""
    amy_emp = busiest_manager(ws)
    customers = ws.warehouse.read("customers").to_pandas()
    employees = ws.warehouse.read("employees").to_pandas()
    team = str(employees.set_index("employee_id").team[amy_emp])
    other = next(e for e in customers.account_manager_id.value_counts().index
                 if e != amy_emp and employees.set_index("employee_id").team.get(e) != team)
    src = tmp_path_factory.mktemp("emp") / "team_manager.csv"
    src.write_text(f"员工编号,姓名,团队,岗位\n{TEAM_MANAGER},团队经理,{team},manager\n",
                   encoding="utf-8")
    plans = plan_import(ws, "employees", [src])
    require_complete(plans)
    Importer(ws).run(plans)
    app = _app(ws, amy_emp)
    for name, role, emp in [("mia", "manager", TEAM_MANAGER),
                            ("abe", "account_manager", str(other))]:
        create_user(ws.store, UserIn(username=name, role=role, password=PASSWORD,  # type: ignore[arg-type]
                                     locale="en", employee_id=emp), actor="test")
    rep = run_alerts(ws, actor="test")
    assert rep.created > 50
    users = {u.username: u for u in list_users(ws.store)}
    abe_customer = str(customers[customers.account_manager_id == other].customer_id.iloc[0])
    abe_task = create_task(ws.store, TaskIn(title="Call back about the renewal",
                                            customer_id=abe_customer,
                                            assignee_id=users["abe"].id,
                                            due_date=date.today() + timedelta(days=3),
                                            priority="high"), actor="test").id
    amy_task = create_task(ws.store, TaskIn(title="Prepare the branch visit",
                                            assignee_id=users["amy"].id,
                                            due_date=date.today() + timedelta(days=2)),
                           actor="test").id
    return {"app": app, "amy_emp": amy_emp, "other": str(other), "team": team,
            "users": users, "abe_task": abe_task, "amy_task": amy_task}


@pytest.fixture(scope="module")
def app(setup: dict[str, Any]) -> Iterator[FastAPI]:
    application: FastAPI = setup["app"]
    with TestClient(application):  # runs the lifespan once for the module
        yield application


@pytest.fixture(scope="module")
def clients(app: FastAPI) -> dict[str, TestClient]:
    return {u: signed_in(app, u) for u in ("ada", "ann", "max", "amy", "vic", "mia", "abe")}


def _tasks(ws: Workspace) -> pd.DataFrame:
    with ws.store.session() as s:
        rows = s.execute(select(Task.id, Task.customer_id, Task.assignee_id, Task.team,
                                Task.status, Task.due_date, Task.priority, Task.origin)).all()
    return pd.DataFrame(rows, columns=["id", "customer_id", "assignee_id", "team", "status",
                                       "due_date", "priority", "origin"])


def _api_ids(c: TestClient, **params: Any) -> list[int]:
    ids: list[int] = []
    page = 1
    while True:
        r = c.get("/api/v1/inbox", params={**params, "page": page, "page_size": 200})
        assert r.status_code == 200, r.text
        body = r.json()
        ids += [t["id"] for t in body["rows"]]
        if page >= body["pages"]:
            assert len(ids) == body["total"]
            return ids
        page += 1


def _csrf(c: TestClient, path: str = "/inbox") -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', c.get(path).text)
    assert m
    return m.group(1)


# -- who sees what --------------------------------------------------------------------------


def test_each_user_sees_exactly_their_tasks(ws: Workspace, setup: dict[str, Any],
                                            clients: dict[str, TestClient]) -> None:
    tasks = _tasks(ws)
    customers = ws.warehouse.read("customers").to_pandas()
    employees = ws.warehouse.read("employees").to_pandas()
    users = setup["users"]
    managed = customers.groupby("account_manager_id").customer_id.apply(set).to_dict()
    # amy: assigned to her, or about a customer she manages
    amy = tasks[(tasks.assignee_id == users["amy"].id)
                | tasks.customer_id.isin(managed[setup["amy_emp"]])]
    # mia: her team's users, queue and customers (the team is amy's: the import put her there)
    members = set(employees[employees.team == setup["team"]].employee_id) | {TEAM_MANAGER}
    assert {setup["amy_emp"], TEAM_MANAGER} <= members
    member_users = {u.id for u in users.values() if u.employee_id in members}
    member_customers = set().union(*(managed.get(e, set()) for e in members))
    mia = tasks[tasks.assignee_id.isin(member_users) | (tasks.team == setup["team"])
                | tasks.customer_id.isin(member_customers)]
    expected = {"ada": set(tasks.id), "ann": set(tasks.id), "max": set(tasks.id),
                "amy": set(amy.id), "mia": set(mia.id)}
    assert setup["abe_task"] not in expected["amy"] | expected["mia"]
    assert setup["amy_task"] in expected["amy"] and setup["amy_task"] in expected["mia"]
    assert 0 < len(expected["amy"]) < len(tasks) and len(expected["mia"]) < len(tasks)
    for user, want in expected.items():
        got = _api_ids(clients[user], status="all")
        assert len(got) == len(set(got))
        assert set(got) == want, user
        # the page shows the same as the service asked directly
        scope = task_scope(ws, users[user])
        direct = inbox(ws, scope, InboxQuery(status="all", page_size=50))
        html = clients[user].get("/inbox", params={"status": "all"}).text
        assert [int(i) for i in re.findall(r'<tr id="task-(\d+)"', html)] == \
            [r["id"] for r in direct.rows]
        assert f"{direct.total:,} tasks" in html


def test_rows_link_to_the_customer_and_show_recent_alerts(
        ws: Workspace, setup: dict[str, Any], clients: dict[str, TestClient]) -> None:
    html = clients["amy"].get("/inbox").text
    rows = re.findall(r'<tr id="task-\d+".*?</tr>', html, re.S)
    linked = [r for r in rows if "/customers/" in r]
    assert linked
    for r in linked[:5]:
        cid = re.search(r'href="/customers/([^"]+)"', r)
        assert cid and clients["amy"].get(f"/customers/{cid.group(1)}").status_code == 200
    # recent alerts: the newest alert tasks amy may see
    section = html[html.index('id="h-alerts"'):]
    tasks = _tasks(ws)
    alerts = tasks[tasks.origin.fillna("").str.startswith("alert:")]
    mine = set(_api_ids(clients["amy"], status="all"))
    shown = re.findall(r'href="/customers/([^"]+)"', section)
    assert shown and set(shown) <= set(alerts[alerts.id.isin(mine)].customer_id)


# -- filters and order ----------------------------------------------------------------------


def test_filters_and_sort(ws: Workspace, clients: dict[str, TestClient]) -> None:
    tasks = _tasks(ws)
    today = date.today()
    c = clients["ada"]
    open_ = tasks[tasks.status == "open"]
    assert set(_api_ids(c)) == set(open_.id)
    assert set(_api_ids(c, due="overdue")) == \
        set(open_[open_.due_date.map(lambda d: d is not None and d < today)].id)
    assert set(_api_ids(c, due="none")) == set(open_[open_.due_date.isna()].id)
    assert set(_api_ids(c, kind="manual")) == set(open_[open_.origin.isna()].id)
    kinds = {r.name: r.kind for r in AlertRules.default().rules}
    origin_kind = open_.origin.map(lambda o: kinds.get(o[6:]) if isinstance(o, str) else None)
    for kind in ("complaint_unresolved", "birthday"):
        assert set(_api_ids(c, kind=kind)) == set(open_[origin_kind == kind].id), kind
    rank = {"high": 0, "normal": 1, "low": 2}
    rows = c.get("/api/v1/inbox", params={"sort": "priority", "page_size": 200}).json()["rows"]
    assert [rank[r["priority"]] for r in rows] == sorted(rank[r["priority"]] for r in rows)
    rows = c.get("/api/v1/inbox", params={"page_size": 200}).json()["rows"]
    dues = [r["due_date"] for r in rows if r["due_date"]]
    assert dues == sorted(dues)
    # the page filters the same way; HTMX gets only the table
    part = c.get("/inbox", params={"kind": "manual"}, headers={"HX-Request": "true"}).text
    assert "<html" not in part and f"{len(open_[open_.origin.isna()]):,} tasks" in part
    assert c.get("/inbox", params={"due": "someday"}).status_code == 400
    assert_problem(c.get("/api/v1/inbox", params={"status": "maybe"}), 422)


# -- done, snooze, dismiss ------------------------------------------------------------------


def _task(ws: Workspace, task_id: int) -> Task:
    with ws.store.session() as s:
        t = s.get(Task, task_id)
    assert t is not None
    return t


def _audited(ws: Workspace, task_id: int, action: str, actor: str) -> list[AuditEntry]:
    with ws.store.session() as s:
        return list(s.scalars(select(AuditEntry).where(
            AuditEntry.object_type == "task", AuditEntry.object_id == str(task_id),
            AuditEntry.action == action, AuditEntry.actor == actor)))


def _open_ids(c: TestClient, n: int) -> list[int]:
    ids = _api_ids(c, kind="maturity") + _api_ids(c)
    return list(dict.fromkeys(ids))[:n]


def test_done_snooze_dismiss_with_htmx(ws: Workspace, clients: dict[str, TestClient]) -> None:
    c = clients["amy"]
    token = _csrf(c)
    done_id, snooze_id, dismiss_id = _open_ids(c, 3)
    hx = {"HX-Request": "true", "X-CSRF-Token": token}
    r = c.post(f"/inbox/{done_id}/done", headers=hx)
    assert r.status_code == 200 and r.text.lstrip().startswith(f'<tr id="task-{done_id}"')
    assert "Done" in r.text and "/done" not in r.text  # closed: no more buttons
    assert _task(ws, done_id).status == "done" and _task(ws, done_id).completed_at
    assert _audited(ws, done_id, "done", "amy")

    until = date.today() + timedelta(days=10)
    r = c.post(f"/inbox/{snooze_id}/snooze", data={"until": until.isoformat()}, headers=hx)
    assert r.status_code == 200 and "Snoozed" in r.text
    t = _task(ws, snooze_id)
    assert (t.status, t.snoozed_until) == ("snoozed", until)
    audit = _audited(ws, snooze_id, "snooze", "amy")
    assert audit and audit[-1].details == {"until": until.isoformat()}

    r = c.post(f"/inbox/{dismiss_id}/dismiss", headers=hx)
    assert r.status_code == 200 and _task(ws, dismiss_id).status == "dismissed"
    assert _audited(ws, dismiss_id, "dismissed", "amy")

    # closing a closed task: the row with the problem (422), nothing changes
    r = c.post(f"/inbox/{done_id}/dismiss", headers=hx)
    assert r.status_code == 422 and "already done" in r.text
    assert _task(ws, done_id).status == "done"


def test_bad_snooze_date_is_refused(ws: Workspace, clients: dict[str, TestClient]) -> None:
    c = clients["amy"]
    token = _csrf(c)
    (task_id,) = _open_ids(c, 1)
    before = _task(ws, task_id)
    for bad in ((date.today() - timedelta(days=1)).isoformat(), "next week", ""):
        r = c.post(f"/inbox/{task_id}/snooze", data={"until": bad, "csrf_token": token})
        assert r.status_code == 422, bad
        assert 'class="error"' in r.text and "until" in r.text
        after = _task(ws, task_id)
        assert (after.status, after.snoozed_until) == (before.status, before.snoozed_until)
    # a plain form post (no HTMX) that works goes back to the inbox
    r = c.post(f"/inbox/{task_id}/done", data={"csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/inbox"
    assert _task(ws, task_id).status == "done"


def test_api_actions(ws: Workspace, clients: dict[str, TestClient]) -> None:
    c = clients["amy"]
    auth = bearer(ws, "amy")
    a, b, d = _open_ids(c, 3)
    r = c.post(f"/api/v1/tasks/{a}/done", headers=auth)
    assert r.status_code == 200 and r.json()["status"] == "done"
    assert _audited(ws, a, "done", "amy (token)")
    until = date.today() + timedelta(days=5)
    r = c.post(f"/api/v1/tasks/{b}/snooze", json={"until": until.isoformat()}, headers=auth)
    assert r.status_code == 200 and r.json()["snoozed_until"] == until.isoformat()
    assert _task(ws, b).status == "snoozed"
    r = c.post(f"/api/v1/tasks/{d}/dismiss", headers=auth)
    assert r.status_code == 200 and _task(ws, d).status == "dismissed"
    assert_problem(c.post(f"/api/v1/tasks/{a}/done", headers=auth), 400)
    past = (date.today() - timedelta(days=1)).isoformat()
    assert_problem(c.post(f"/api/v1/tasks/{d}/snooze", json={"until": past}, headers=auth),
                   400)
    assert_problem(c.post(f"/api/v1/tasks/{b}/snooze", json={"until": "soon"}, headers=auth),
                   422)
    assert_problem(c.post("/api/v1/tasks/0/done", headers=auth), 422)
    assert_problem(c.post(f"/api/v1/tasks/{2**63}/done", headers=auth), 422)


# -- scope, roles, CSRF ---------------------------------------------------------------------


def test_another_managers_task_is_not_found(ws: Workspace, setup: dict[str, Any],
                                            clients: dict[str, TestClient]) -> None:
    theirs = setup["abe_task"]
    for user in ("amy", "mia"):
        c = clients[user]
        token = _csrf(c)
        for action in ("done", "dismiss", "snooze"):
            r = c.post(f"/inbox/{theirs}/{action}", data={"csrf_token": token,
                                                          "until": "2099-01-01"})
            assert r.status_code == 404, (user, action)
            assert_problem(c.post(f"/api/v1/tasks/{theirs}/{action}",
                                  headers={"X-CSRF-Token": token},
                                  json={"until": "2099-01-01"} if action == "snooze" else None),
                           404)
        # the same answer as for a task that does not exist
        missing = c.post("/api/v1/tasks/999999/done", headers={"X-CSRF-Token": token}).json()
        other = c.post(f"/api/v1/tasks/{theirs}/done", headers={"X-CSRF-Token": token}).json()
        assert missing["detail"].replace("999999", str(theirs)) == other["detail"]
    assert _task(ws, theirs).status == "open"
    assert theirs in _api_ids(clients["abe"])
    assert theirs in _api_ids(clients["max"])  # a manager without a known team: every task


def test_roles_and_sign_in(app: FastAPI, clients: dict[str, TestClient],
                           setup: dict[str, Any]) -> None:
    for user in ("ada", "ann", "max", "amy", "mia"):
        assert clients[user].get("/inbox").status_code == 200, user
        assert clients[user].get("/api/v1/inbox").status_code == 200, user
    vic = clients["vic"]
    assert vic.get("/inbox").status_code == 403
    assert_problem(vic.get("/api/v1/inbox"), 403)
    token = _csrf(clients["ada"])
    assert_problem(vic.post(f"/api/v1/tasks/{setup['amy_task']}/done",
                            headers={"X-CSRF-Token": _csrf(vic, "/")}), 403)
    anon = TestClient(app)
    r = anon.get("/inbox", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login?next=")
    assert_problem(anon.get("/api/v1/inbox"), 401)
    assert_problem(anon.post(f"/api/v1/tasks/{setup['amy_task']}/done",  # CSRF passed
                             headers={"X-CSRF-Token": _csrf(anon, "/login")}), 401)
    # CSRF: a cookie-authenticated write without the token is refused
    ada = clients["ada"]
    assert ada.post(f"/inbox/{setup['amy_task']}/done").status_code == 403
    assert ada.post(f"/inbox/{setup['amy_task']}/done",
                    headers={"X-CSRF-Token": "wrong"}).status_code == 403
    assert ada.post(f"/inbox/{setup['amy_task']}/done", data={"csrf_token": token},
                    follow_redirects=False).status_code == 303


# -- the team page ---------------------------------------------------------------------------


def _team_want(ws: Workspace, members: set[str]) -> pd.DataFrame:
    """Per account manager of ``members`` with customers or open tasks: customers known on
    the last transaction day, the latest run's current value, and open tasks (the
    assignee's employee, else the customer's manager) — read straight from the tables."""
    from kehu.store.models import User

    cust = ws.warehouse.read("customers").to_pandas()
    tx = ws.warehouse.read("transactions", ["customer_id", "transaction_time"]).to_pandas()
    as_of = tx.transaction_time.max().normalize()
    known = cust[cust.signup_date.isna() | (pd.to_datetime(cust.signup_date) <= as_of)
                 | cust.customer_id.isin(tx.customer_id)]
    known = known[known.account_manager_id.isin(members)]
    scores = ws.warehouse.read("customer_scores").to_pandas()
    scores = scores[scores.run_id == scores.run_id.max()].set_index("customer_id")
    tasks = _tasks(ws)
    with ws.store.session() as s:
        emp_of = dict(s.execute(select(User.id, User.employee_id)).all())
    manager_of = dict(zip(cust.customer_id, cust.account_manager_id, strict=True))
    open_ = tasks[tasks.status.isin(["open", "snoozed"])]
    owner = [emp_of.get(a) if pd.notna(a) else manager_of.get(c)
             for a, c in zip(open_.assignee_id, open_.customer_id, strict=True)]
    task_counts = pd.Series([o for o in owner if o in members], dtype=object).value_counts()
    want = pd.DataFrame({
        "customers": known.groupby("account_manager_id").size(),
        "current_value": scores.current_value.reindex(known.customer_id).groupby(
            known.account_manager_id.to_numpy()).sum(),
        "tasks_open": task_counts})
    return want.fillna(0)


def test_team_page_shows_a_managers_own_team(ws: Workspace, setup: dict[str, Any],
                                             clients: dict[str, TestClient]) -> None:
    employees = ws.warehouse.read("employees").to_pandas()
    team = setup["team"]
    members = set(employees.employee_id[employees.team == team])
    want = _team_want(ws, members)
    for params in ({}, {"team": "a team mia does not lead"}):   # a manager sees only theirs
        r = clients["mia"].get("/api/v1/portfolios", params=params)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["team"] == team
        got = {row["employee_id"]: row for row in body["rows"]}
        assert set(got) == set(want.index)
    for emp, w in want.iterrows():
        assert got[emp]["customers"] == w.customers, emp
        assert got[emp]["current_value"] == pytest.approx(w.current_value, rel=1e-9), emp
        assert got[emp]["tasks_open"] == w.tasks_open, emp
        assert got[emp]["team"] == team
    values = [row["current_value"] for row in body["rows"]]
    assert values == sorted(values, reverse=True)
    html = clients["mia"].get("/team").text
    assert f"<h1>Team · {team}</h1>" in html and 'name="team"' not in html  # no other team
    assert re.findall(r'data-employee="([^"]+)"', html) == [row["employee_id"]
                                                           for row in body["rows"]]
    assert f'/customers?manager={setup["amy_emp"]}' in html
    assert 'data-echarts="chart-portfolios"' in html
    total = int(want.customers.sum())
    assert re.search(r"<span>Customers</span><strong>" + f"{total:,}" + "</strong>", html)


def test_team_page_every_team_or_one_for_admins(ws: Workspace, setup: dict[str, Any],
                                                clients: dict[str, TestClient]) -> None:
    employees = ws.warehouse.read("employees").to_pandas()
    teams = sorted(set(employees.team.dropna()))
    for who in ("ada", "ann", "max"):   # max is a manager without an employee record
        html = clients[who].get("/team").text
        assert re.findall(r'<option value="([^"]+)"', html) == teams, who
        body = clients[who].get("/api/v1/portfolios").json()
        assert body["team"] is None
        ids = {row["employee_id"] for row in body["rows"]}
        assert set(_team_want(ws, set(employees.employee_id)).index) <= ids
    other_team = next(t for t in teams if t != setup["team"])
    members = set(employees.employee_id[employees.team == other_team])
    body = clients["ada"].get("/api/v1/portfolios", params={"team": other_team}).json()
    assert {row["employee_id"] for row in body["rows"]} == set(_team_want(ws, members).index)
    r = clients["ada"].get("/api/v1/portfolios", params={"team": "火星团队"})
    assert "No team named '火星团队'" in assert_problem(r, 404)["detail"]
    for who in ("amy", "abe", "vic"):
        assert clients[who].get("/team").status_code == 403
        assert_problem(clients[who].get("/api/v1/portfolios"), 403)


def test_team_page_in_chinese(clients: dict[str, TestClient]) -> None:
    from kehu.i18n import catalogue

    zh = catalogue("zh_CN")
    html = clients["mia"].get("/team", params={"lang": "zh_CN"}).text
    assert '<html lang="zh-CN">' in html
    for msgid in ("Account managers' portfolios", "Retention, 12 months", "Open tasks"):
        assert zh[msgid] and zh[msgid] in html, msgid


# -- language -------------------------------------------------------------------------------


def test_inbox_in_chinese(clients: dict[str, TestClient]) -> None:
    from kehu.i18n import catalogue

    zh = catalogue("zh_CN")
    html = clients["amy"].get("/inbox", params={"lang": "zh_CN"}).text
    assert '<html lang="zh-CN">' in html
    for msgid in ("Recent alerts", "Due date", "Snooze", "Dismiss", "Overdue"):
        assert f">{zh[msgid]}<" in html, msgid
        assert f">{msgid}<" not in html, msgid
    assert re.search(r"\d{4}年\d{1,2}月\d{1,2}日", html)  # dates in Chinese


def test_catalogue_covers_the_new_strings() -> None:
    """Every message of this area's pages has a Chinese translation in the catalogue (with
    the same placeholders)."""
    import string

    from kehu.i18n import catalogue
    from kehu.i18n.messages import extract

    mine = re.compile(r"web/routes/(inbox|team|data|models|settings)\.py$|web/templates/(inbox|"
                      r"_inbox_\w+|team|data\w*|_data_\w+|models?|_model_card|settings)\.html$|"
                      r"alerts/inbox\.py$|models/cards\.py$|ingest/history\.py$")
    zh = catalogue("zh_CN")
    missing = []
    for msgid, places in extract().items():
        if not any(mine.search(f.replace("\\", "/")) for f, _line in places):
            continue
        text = zh.get(msgid)
        if not text:
            missing.append(msgid)
            continue
        fields = {f for _t, f, _s, _c in string.Formatter().parse(msgid) if f}
        assert fields == {f for _t, f, _s, _c in string.Formatter().parse(text) if f}, msgid
    assert not missing, missing
