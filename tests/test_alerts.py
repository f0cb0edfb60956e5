"""Alerts: each rule kind fires exactly when its condition holds (hand-made warehouses and an
independent pandas reading of a generated company), once per condition (the store's unique
index refuses a second open task even under concurrent runs), the task lands with the right
account manager or team queue, its states behave, and the digest goes through a real SMTP
server — on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import smtplib
import socket
import threading
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default as email_policy
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from typer.testing import CliRunner

from kehu import Workspace
from kehu.alerts import (
    AlertRules,
    complete_task,
    dismiss_task,
    evaluate,
    run_alerts,
    save_rules,
    snooze_task,
)
from kehu.alerts.evaluate import DISPLAY_FACTS, compile_rule
from kehu.alerts.spec import FACTS
from kehu.analytics.run import RUNS_SCHEMA, RUNS_TABLE, SCORES_TABLE
from kehu.errors import KehuInputError, NotFoundError
from kehu.model import ENTITIES
from kehu.store.models import Task, User
from kehu.store.services import assign, unassign

D0 = date(2025, 6, 30)


def _table(entity: str, rows: list[dict[str, Any]]) -> pa.Table:
    schema = ENTITIES[entity].arrow_schema()
    return pa.Table.from_pydict({f.name: [r.get(f.name) for r in rows] for f in schema},
                                schema=schema)


def _rules(*items: dict[str, Any]) -> AlertRules:
    return AlertRules.parse(list(items))


def _users(ws: Workspace, *rows: dict[str, Any]) -> dict[str, int]:
    with ws.store.session() as s:
        users = [User(**r) for r in rows]
        s.add_all(users)
        s.flush()
        return {u.username: u.id for u in users}


def _tasks(ws: Workspace, **where: Any) -> list[Task]:
    with ws.store.session() as s:
        q = select(Task).order_by(Task.id)
        for k, v in where.items():
            q = q.where(getattr(Task, k) == v)
        return list(s.scalars(q))


@pytest.fixture
def small(tmp_path: Path, store_url: str) -> Iterator[Workspace]:
    """Four customers: A managed by E1 (a kehu user), B by E2 (a user), C by E9 (no user;
    team 广州组 in the warehouse), D without a manager; one contract each for A and B."""
    w = Workspace.init(tmp_path / "w", store_url=store_url, locale="en")
    w.warehouse.append("employees", _table("employees", [
        {"employee_id": "E1", "name": "周经理", "team": "北京组"},
        {"employee_id": "E2", "name": "吴经理", "team": "上海组"},
        {"employee_id": "E3", "name": "郑经理", "team": "上海组"},
        {"employee_id": "E9", "name": "王经理", "team": "广州组"}]))
    w.warehouse.append("customers", _table("customers", [
        {"customer_id": "A", "name": "张三", "account_manager_id": "E1",
         "birth_date": date(1990, 1, 2), "signup_date": date(2020, 1, 1)},
        {"customer_id": "B", "name": "李四", "account_manager_id": "E2"},
        {"customer_id": "C", "name": "王五", "account_manager_id": "E9"},
        {"customer_id": "D", "name": "赵六"}]))
    w.warehouse.append("contracts", _table("contracts", [
        {"contract_id": "K1", "customer_id": "A", "start_date": date(2024, 7, 31),
         "end_date": D0 + timedelta(days=31), "status": "active", "product_id": "P1"},
        {"contract_id": "K2", "customer_id": "B", "start_date": date(2024, 7, 31),
         "end_date": D0 + timedelta(days=10), "status": "cancelled", "product_id": "P1"},
        {"contract_id": "K3", "customer_id": "B", "start_date": date(2024, 7, 31),
         "end_date": D0 + timedelta(days=10), "product_id": "P2"}]))
    _users(w, {"username": "zhou", "employee_id": "E1", "email": "zhou@example.cn",
               "locale": "zh_CN"},
           {"username": "wu", "employee_id": "E2", "email": "wu@example.com", "locale": "en"},
           {"username": "zheng", "employee_id": "E3", "email": "zheng@example.cn"})
    yield w
    w.close()


MATURITY = {"name": "到期", "kind": "maturity", "days_ahead": 30, "due_in_days": 5}


# -- maturity, once per condition -----------------------------------------------------------


def test_maturity_fires_exactly_n_days_ahead_and_stays_one_task(small: Workspace) -> None:
    rules = _rules(MATURITY | {"product_ids": ["P1"]})
    end = D0 + timedelta(days=31)
    key = f"到期|maturity|A|K1@{end}"
    # 31 days ahead: not yet
    rep = run_alerts(small, rules, as_of=end - timedelta(days=31))
    assert (rep.fired, rep.created) == (0, 0)
    # 30 days ahead: exactly one task, for zhou (A's manager E1), due as_of + 5
    first = end - timedelta(days=30)
    rep = run_alerts(small, rules, as_of=first)
    assert (rep.fired, rep.created, rep.by_assignee) == (1, 1, {"zhou": 1})
    [t] = _tasks(small)
    assert t.dedup_key == key and t.due_date == first + timedelta(days=5)
    assert t.customer_id == "A" and t.priority == "normal" and t.origin == "alert:到期"
    assert "合约 K1" in t.title and "30" in t.title   # zhou reads Chinese
    # every later day of the window: still the one task
    for k in range(29, -1, -1):
        rep = run_alerts(small, rules, as_of=end - timedelta(days=k))
        assert (rep.fired, rep.created, rep.already_open) == (1, 0, 1), k
    rep = run_alerts(small, rules, as_of=end + timedelta(days=1))
    assert rep.fired == 0
    assert len(_tasks(small)) == 1
    # done: the occurrence never fires again ...
    complete_task(small.store, t.id, "zhou")
    rep = run_alerts(small, rules, as_of=end - timedelta(days=3), today=end + timedelta(400))
    assert (rep.fired, rep.created, rep.suppressed) == (1, 0, 1)
    # ... but a renewed contract (new end date) is a new occurrence
    c = small.warehouse.read("contracts").to_pandas()
    c.loc[c.contract_id == "K1", "end_date"] = end + timedelta(days=365)
    small.warehouse.overwrite("contracts", pa.Table.from_pandas(
        c, schema=ENTITIES["contracts"].arrow_schema(), preserve_index=False))
    rep = run_alerts(small, rules, as_of=end + timedelta(days=340))
    assert rep.created == 1 and len(_tasks(small)) == 2


def test_maturity_statuses_and_products(small: Workspace) -> None:
    def fired(**kw: Any) -> set[str]:
        rule = _rules(MATURITY | kw).rules[0]
        return {f.object_key.split("@")[0] for f in evaluate(small.engine, rule, D0).firings}

    # K2 is cancelled, K3 has no status (counts as active), K1 is 31 days away
    assert fired() == {"K3"}
    assert fired(statuses=None) == {"K2", "K3"}
    assert fired(statuses=["cancelled"], product_ids=["P1"]) == {"K2"}
    assert fired(days_ahead=31, product_ids=["P1", "P2"]) == {"K1", "K3"}


def test_dedup_survives_races_and_the_index_refuses_a_second_open_task(
        small: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    rules = _rules(MATURITY | {"days_ahead": 40})
    rep = run_alerts(small, rules, as_of=D0)
    assert rep.created == 2
    rep = run_alerts(small, rules, as_of=D0)
    assert (rep.created, rep.already_open) == (0, 2)
    key = _tasks(small)[0].dedup_key
    # the database itself refuses a second open (or snoozed) task for the condition
    for status in ("open", "snoozed"):
        with pytest.raises(IntegrityError), small.store.session() as s:
            s.add(Task(title="dup", dedup_key=key, status=status))
    with small.store.session() as s:  # closed ones do not count
        s.add(Task(title="old", dedup_key=key, status="done"))
    # a run that did not see the other run's tasks (the race) counts them as open
    import kehu.alerts.service as service

    monkeypatch.setattr(service, "_existing", lambda store, keys: {})
    rep = run_alerts(small, rules, as_of=D0)
    assert (rep.fired, rep.created, rep.already_open) == (2, 0, 2)
    assert len(_tasks(small, status="open")) == 2


def test_concurrent_runs_create_each_task_once(small: Workspace) -> None:
    rules = _rules(MATURITY | {"days_ahead": 40}, {"name": "bd", "kind": "birthday",
                                                   "days_ahead": 10})
    as_of = date(2025, 12, 28)
    small.warehouse.append("customers", _table("customers", [
        {"customer_id": f"X{i}", "birth_date": date(1980, 12, 29 + i % 3)}
        for i in range(60)]))
    others = [Workspace.open(small.root) for _ in range(3)]
    barrier = threading.Barrier(len(others))
    reports: list[Any] = []

    def go(w: Workspace) -> None:
        barrier.wait()
        reports.append(run_alerts(w, rules, as_of=as_of))

    threads = [threading.Thread(target=go, args=(w,)) for w in others]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for w in others:
        w.close()
    assert len(reports) == 3
    fired = reports[0].fired
    assert fired == 61  # A's birthday (Jan 2) and the 60 others
    assert sum(r.created for r in reports) == fired
    assert sum(r.already_open for r in reports) == 2 * fired
    assert len(_tasks(small)) == fired
    assert len({t.dedup_key for t in _tasks(small)}) == fired


# -- routing -----------------------------------------------------------------------------


def test_tasks_land_with_the_account_manager_or_a_team_queue(small: Workspace) -> None:
    small.warehouse.append("contracts", _table("contracts", [
        {"contract_id": f"K{c}9", "customer_id": c, "start_date": date(2024, 1, 1),
         "end_date": D0 + timedelta(days=5), "status": "active"} for c in "ACD"]))
    # the app-store assignment overrides the warehouse column: B is now zheng's (E3)
    assign(small.store, "B", "E3", "admin", since=D0 - timedelta(days=30))
    rep = run_alerts(small, _rules(MATURITY | {"name": "m1"}), as_of=D0, today=D0)
    route = {t.customer_id: (t.assignee_id, t.team) for t in _tasks(small)}
    ids = {u: i for i, u in _user_ids(small).items()}
    assert route == {"A": (ids["zhou"], None), "B": (ids["zheng"], None),
                     "C": (None, "广州组"),       # E9 has no kehu user: their warehouse team
                     "D": (None, "unassigned")}  # no manager at all
    assert rep.by_assignee == {"zhou": 1, "zheng": 1}
    assert rep.by_team == {"广州组": 1, "unassigned": 1}
    # the assignment ended: back to the warehouse column (wu, E2); a fallback team wins
    # over the manager's team; a rule for a team goes to that team whatever the manager
    unassign(small.store, "B", "admin", until=D0 - timedelta(days=1))
    rep = run_alerts(small, _rules(MATURITY | {"name": "m2", "fallback_team": "客服中心"}),
                     as_of=D0, today=D0)
    assert rep.by_assignee == {"zhou": 1, "wu": 1} and rep.by_team == {"客服中心": 2}
    rep = run_alerts(small, _rules(MATURITY | {"name": "m3", "assign_to": "续约组"}),
                     as_of=D0)
    assert rep.by_assignee == {} and rep.by_team == {"续约组": 4}


def _user_ids(ws: Workspace) -> dict[int, str]:
    with ws.store.session() as s:
        return {i: n for i, n in s.execute(select(User.id, User.username))}


# -- usage drop against pandas -----------------------------------------------------------


def _usage_tx(rng: np.random.Generator, n: int, as_of: date) -> list[dict[str, Any]]:
    rows = []
    for i in range(n):
        rate = rng.choice([2.0, 8.0, 30.0, 80.0])   # per-day spend: tiers regular … diamond
        factor = rng.choice([0.0, 0.3, 0.55, 0.9, 1.4])
        for k in range(0, 400, int(rng.integers(1, 5))):
            day = as_of - timedelta(days=k)
            amt = rate * (factor if k < 30 else 1.0) * rng.uniform(0.5, 1.5) * 3
            if amt > 0:
                rows.append({"transaction_id": f"T{i}-{k}", "customer_id": f"U{i:02d}",
                             "transaction_time": datetime.combine(day, datetime.min.time())
                             + timedelta(hours=int(rng.integers(0, 24))),
                             "amount": round(float(amt), 2), "kind": "purchase"})
            if rng.random() < 0.05:
                rows.append({"transaction_id": f"R{i}-{k}", "customer_id": f"U{i:02d}",
                             "transaction_time": datetime.combine(day, datetime.min.time()),
                             "amount": -round(float(amt), 2), "kind": "refund"})
    return rows


def _pandas_usage(tx: pd.DataFrame, as_of: date, pct: float, recent: int, base: int,
                  tiers: set[str], measure: str, min_base: float = 0.0) -> dict[str, float]:
    d = pd.Timestamp(as_of)
    day = tx.transaction_time.dt.normalize()
    use = tx[tx.kind != "refund"]
    uday = use.transaction_time.dt.normalize()
    agg = "sum" if measure == "amount" else "count"
    r = use[(uday > d - pd.Timedelta(days=recent)) & (uday <= d)].groupby(
        "customer_id").amount.agg(agg) / recent
    b = use[(uday > d - pd.Timedelta(days=recent + base)) & (uday <= d - pd.Timedelta(
        days=recent))].groupby("customer_id").amount.agg(agg) / base
    spend = tx[(day > d - pd.Timedelta(days=365)) & (day <= d)].groupby(
        "customer_id").amount.sum()
    tier = pd.cut(spend, [-np.inf, 1000, 5000, 20000, np.inf], right=False,
                  labels=["regular", "silver", "gold", "diamond"]).astype(str)
    df = pd.DataFrame({"recent": r, "base": b, "tier": tier})
    df["recent"] = df.recent.fillna(0.0)
    df = df[(df.base > 0) & (df.base > min_base) & df.tier.isin(tiers)]
    drop = 100 * (1 - df.recent / df.base)
    return drop[drop >= pct].to_dict()


def test_usage_drop_equals_pandas(tmp_path: Path) -> None:
    w = Workspace.init(tmp_path / "w")
    rng = np.random.default_rng(11)
    rows = _usage_tx(rng, 80, D0)
    w.warehouse.append("customers", _table("customers", [
        {"customer_id": f"U{i:02d}"} for i in range(80)]))
    w.warehouse.append("transactions", _table("transactions", rows))
    tx = pd.DataFrame(rows)
    for measure, pct, key, min_base in (("amount", 40, {"min_tier": "silver"}, 0.0),
                                        ("amount", 70, {"tiers": ["diamond"]}, 0.0),
                                        ("count", 50, {"min_tier": "regular"}, 0.1)):
        rule = _rules({"name": "u", "kind": "usage_drop", "pct": pct, "recent_days": 30,
                       "baseline_days": 90, "measure": measure, "key_customers": key,
                       "min_baseline": min_base}).rules[0]
        got = {f.customer_id: f.facts["drop_pct"] for f in
               evaluate(w.engine, rule, D0).firings}
        tiers = set(rule.key_customers.codes()) if rule.key_customers else set()
        exp = _pandas_usage(tx, D0, pct, 30, 90, tiers, measure, min_base)
        assert set(got) == set(exp), measure
        assert 3 <= len(got) < 80
        for c, v in exp.items():
            assert got[c] == pytest.approx(v, abs=1e-9)
    w.close()


# -- churn risk and tiers between runs ---------------------------------------------------


def _scores(w: Workspace, run_id: str, as_of: date, rows: dict[str, tuple[str, float]],
            complete: bool = True) -> None:
    w.warehouse.append(SCORES_TABLE, pa.table({
        "run_id": [run_id] * len(rows), "as_of": pa.array([as_of] * len(rows), pa.date32()),
        "customer_id": list(rows), "tier": [v[0] for v in rows.values()],
        "churn_risk": [v[1] for v in rows.values()]}), merge_schema=True)
    if complete:
        w.warehouse.append(RUNS_TABLE, pa.Table.from_pylist([{
            "run_id": run_id, "as_of": as_of, "started_at": datetime(2025, 1, 1),
            "finished_at": datetime(2025, 1, 1), "customers": len(rows), "details": "{}"}],
            schema=RUNS_SCHEMA))


def test_churn_risk_up_and_tier_change_between_the_latest_two_runs(small: Workspace) -> None:
    risk = _rules({"name": "risk", "kind": "churn_risk_up", "delta": 0.2, "min_risk": 0.4})
    tiers = _rules({"name": "down", "kind": "tier_change", "direction": "down"},
                   {"name": "up", "kind": "tier_change", "direction": "up"},
                   {"name": "any", "kind": "tier_change"})
    rep = run_alerts(small, risk, as_of=D0)
    assert rep.fired == 0 and "needs two analysis runs" in rep.notes[0]
    _scores(small, "20250531T0000-aa", date(2025, 5, 31),
            {"A": ("gold", 0.30), "B": ("gold", 0.10), "C": ("silver", 0.5),
             "D": ("regular", 0.05)})
    _scores(small, "20250630T0000-bb", date(2025, 6, 30),
            {"A": ("silver", 0.55), "B": ("diamond", 0.35), "C": ("silver", 0.75),
             "D": ("regular", None)})
    # an incomplete run (no _runs row) and a later one are not looked at
    _scores(small, "20250630T0900-cc", date(2025, 6, 30), {"A": ("regular", 0.0)},
            complete=False)
    _scores(small, "20250731T0000-dd", date(2025, 7, 31), {"A": ("regular", 0.0)})

    def got(rules: AlertRules) -> dict[str, set[tuple[str, str]]]:
        out: dict[str, set[tuple[str, str]]] = {}
        for r in rules.rules:
            out[r.name] = {(f.customer_id, f.object_key) for f in
                           evaluate(small.engine, r, D0).firings}
        return out

    pair = "20250531T0000-aa@20250630T0000-bb"
    # A: 0.30 → 0.55 (+0.25, ≥ 0.4); B: +0.25 but 0.35 < min_risk; C: +0.25 ≥ 0.4
    assert got(risk) == {"risk": {("A", pair), ("C", pair)}}
    assert got(tiers) == {"down": {("A", pair)}, "up": {("B", pair)},
                          "any": {("A", pair), ("B", pair)}}
    [a] = [f for f in evaluate(small.engine, risk.rules[0], D0).firings if f.customer_id == "A"]
    assert a.facts["risk"] == pytest.approx(0.55) and a.facts["change"] == pytest.approx(0.25)
    rep = run_alerts(small, AlertRules(rules=risk.rules + tiers.rules), as_of=D0)
    assert rep.created == 6
    titles = {t.customer_id + t.origin: t.title for t in _tasks(small)}
    assert "30%" in titles["Aalert:risk"] and "55%" in titles["Aalert:risk"]
    assert "金卡" in titles["Aalert:down"] and "银卡" in titles["Aalert:down"]  # zhou: zh
    assert "Gold" in titles["Balert:up"] and "Diamond" in titles["Balert:up"]  # wu: en
    # done or not, a pair of runs fires once; the next pair is a new occurrence
    for t in _tasks(small):
        complete_task(small.store, t.id, "x")
    assert run_alerts(small, AlertRules(rules=risk.rules + tiers.rules), as_of=D0,
                      today=D0 + timedelta(days=999)).created == 0
    rep = run_alerts(small, tiers, as_of=date(2025, 8, 1))
    assert rep.by_rule["down"]["created"] == 1  # A: silver → regular


# -- complaints and payments (state conditions, re-fire) ---------------------------------


def test_complaint_unresolved_and_refire_after_close(small: Workspace) -> None:
    t0 = datetime.combine(D0, datetime.min.time())
    small.warehouse.append("tickets", _table("tickets", [
        {"ticket_id": "T1", "customer_id": "A", "opened_time": t0 - timedelta(days=4, hours=15),
         "kind": "complaint", "status": "open"},
        {"ticket_id": "T2", "customer_id": "A", "opened_time": t0 - timedelta(days=2),
         "kind": "complaint"},
        {"ticket_id": "T3", "customer_id": "B", "opened_time": t0 - timedelta(days=9),
         "resolved_time": t0 + timedelta(days=1), "kind": "complaint", "status": "resolved"},
        {"ticket_id": "T4", "customer_id": "B", "opened_time": t0 - timedelta(days=9),
         "resolved_time": t0 - timedelta(days=1), "kind": "complaint"},
        {"ticket_id": "T5", "customer_id": "C", "opened_time": t0 - timedelta(days=9),
         "kind": "service_request"},
        {"ticket_id": "T6", "customer_id": "C", "opened_time": t0 - timedelta(days=9),
         "kind": "complaint", "status": "resolved", "category": "账单"},
        {"ticket_id": "T7", "customer_id": "D", "opened_time": t0 - timedelta(days=3),
         "kind": "complaint", "category": "网络"}]))
    rule = {"name": "c", "kind": "complaint_unresolved", "days": 3, "refire_days": 7}

    def fired(**kw: Any) -> dict[str, int]:
        r = _rules(rule | kw).rules[0]
        return {f.object_key: f.facts["days"] for f in evaluate(small.engine, r, D0).firings}

    assert fired() == {"T1": 5, "T3": 9, "T7": 3}
    assert fired(ticket_kind=None) == {"T1": 5, "T3": 9, "T5": 9, "T7": 3}
    assert fired(category=["网络"]) == {"T7": 3}
    rules = _rules(rule)
    today = date(2026, 1, 10)
    assert run_alerts(small, rules, as_of=D0, today=today).created == 3
    t1 = _tasks(small, dedup_key="c|complaint_unresolved|A|T1")[0]
    complete_task(small.store, t1.id, "zhou")
    # closed less than refire_days ago: not again; the completion time is the calendar's,
    # so the interval runs from the real day it was closed
    rep = run_alerts(small, rules, as_of=D0, today=date.today() + timedelta(days=6))
    assert (rep.created, rep.suppressed, rep.already_open) == (0, 1, 2)
    rep = run_alerts(small, rules, as_of=D0, today=date.today() + timedelta(days=7))
    assert (rep.created, rep.suppressed) == (1, 0)
    assert len(_tasks(small, dedup_key=t1.dedup_key)) == 2
    # a condition that no longer holds does not re-fire (T4 was resolved)
    assert "T4" not in fired()


def test_payment_overdue(small: Workspace) -> None:
    def bill(pid: str, due_ago: int | None, paid: date | None = None, amount: float = 100,
             paid_amount: float | None = None, invoice_ago: int = 60) -> dict[str, Any]:
        return {"payment_id": pid, "customer_id": "B",
                "invoice_date": D0 - timedelta(days=invoice_ago),
                "due_date": None if due_ago is None else D0 - timedelta(days=due_ago),
                "paid_date": paid, "amount_due": amount, "amount_paid": paid_amount}

    small.warehouse.append("payments", _table("payments", [
        bill("P1", 40), bill("P2", 40, paid=D0 - timedelta(days=30), paid_amount=100),
        bill("P3", 10, invoice_ago=20), bill("P4", 40, D0 - timedelta(days=35), 100, 70),
        bill("P5", 40, paid=D0 + timedelta(days=2), paid_amount=100),
        bill("P6", None, invoice_ago=80), bill("P7", 40, D0 - timedelta(days=35), 100, 20)]))
    rule = _rules({"name": "p", "kind": "payment_overdue", "days": 30,
                   "min_amount": 50}).rules[0]
    got = {f.object_key: (f.facts["days"], f.facts["outstanding"]) for f in
           evaluate(small.engine, rule, D0).firings}
    # P4 owes 30 < 50; P5 was paid only after the as-of day; P6 is due 30 days after its
    # invoice; P7 was partly paid (80 owed)
    assert got == {"P1": (40, 100.0), "P5": (40, 100.0), "P6": (50, 100.0),
                   "P7": (40, 80.0)}
    rep = run_alerts(small, AlertRules(rules=[rule]), as_of=D0)
    assert rep.by_assignee == {"wu": 4}
    assert "Invoice P6" in _tasks(small, dedup_key="p|payment_overdue|B|P6")[0].title


# -- birthdays and anniversaries -------------------------------------------------------------


def test_birthdays_across_the_year_end_and_on_29_february(small: Workspace) -> None:
    small.warehouse.append("customers", _table("customers", [
        {"customer_id": "E", "birth_date": date(1988, 12, 30), "signup_date": date(2024, 12,
                                                                                 31)},
        {"customer_id": "F", "birth_date": date(2000, 2, 29), "signup_date": date(2025, 12,
                                                                                31)},
        {"customer_id": "G", "birth_date": date(1970, 1, 1)}]))
    small.warehouse.append("churn_events", _table("churn_events", [
        {"churn_event_id": "X", "customer_id": "G", "churn_date": date(2024, 1, 1)}]))

    def fired(kind: str, as_of: date, days: int) -> dict[str, tuple[str, int]]:
        r = _rules({"name": kind, "kind": kind, "days_ahead": days}).rules[0]
        return {f.customer_id: (f.object_key, f.facts["days"]) for f in
                evaluate(small.engine, r, as_of).firings}

    dec30 = date(2025, 12, 30)
    # A was born on 2 January: 3 days after 30 December, next year
    assert fired("birthday", dec30, 3) == {"A": ("2026", 3), "E": ("2025", 0)}
    assert fired("birthday", dec30, 2) == {"E": ("2025", 0)}
    assert fired("birthday", date(2025, 12, 31), 2) == {"A": ("2026", 2)}
    # 29 February: on the 28th in other years, on the 29th in leap years
    assert fired("birthday", date(2025, 2, 26), 2) == {"F": ("2025", 2)}
    assert fired("birthday", date(2025, 2, 26), 1) == {}
    assert fired("birthday", date(2028, 2, 27), 2) == {"F": ("2028", 2)}
    assert fired("birthday", date(2028, 2, 27), 1) == {}
    # G churned: no birthday alert (skip_churned), unless asked for
    assert fired("birthday", date(2025, 12, 29), 4) == {"A": ("2026", 4), "E": ("2025", 1)}
    r = _rules({"name": "b", "kind": "birthday", "days_ahead": 4, "skip_churned": False})
    assert "G" in {f.customer_id for f in evaluate(small.engine, r.rules[0],
                                                   date(2025, 12, 29)).firings}
    # anniversaries: one year or more (F signed up on 31 December 2025: not yet)
    assert fired("anniversary", dec30, 3) == {"A": ("2026", 2), "E": ("2025", 1)}
    # one task a year, however many days of the window the run sees
    rules = _rules({"name": "bd", "kind": "birthday", "days_ahead": 3})
    for k in range(4):
        run_alerts(small, rules, as_of=dec30 + timedelta(days=k))
    assert {t.dedup_key for t in _tasks(small)} == {"bd|birthday|A|2026", "bd|birthday|E|2025"}
    run_alerts(small, rules, as_of=date(2026, 12, 30))
    assert len(_tasks(small, dedup_key="bd|birthday|A|2027")) == 1


# -- task states -----------------------------------------------------------------------------


def test_snooze_wake_dismiss_done(small: Workspace) -> None:
    rules = _rules(MATURITY | {"days_ahead": 40})
    run_alerts(small, rules, as_of=D0)
    a, b = _tasks(small)
    today = date.today()
    with pytest.raises(KehuInputError, match="'until' date must be after today"):
        snooze_task(small.store, a.id, today, "zhou")
    with pytest.raises(NotFoundError):
        snooze_task(small.store, 999_999, today + timedelta(days=1), "zhou")
    snooze_task(small.store, a.id, today + timedelta(days=7), "zhou")
    assert _tasks(small, id=a.id)[0].status == "snoozed"
    # snoozed counts as open: no second task, and not woken before its day
    rep = run_alerts(small, rules, as_of=D0, today=today + timedelta(days=6))
    assert (rep.created, rep.already_open, rep.woken) == (0, 2, 0)
    rep = run_alerts(small, rules, as_of=D0, today=today + timedelta(days=7))
    assert rep.woken == 1
    t = _tasks(small, id=a.id)[0]
    assert t.status == "open" and t.snoozed_until is None
    # snoozed tasks can be done or dismissed; closed ones cannot change again
    snooze_task(small.store, a.id, today + timedelta(days=3), "zhou")
    assert complete_task(small.store, a.id, "zhou").status == "done"
    assert dismiss_task(small.store, b.id, "wu").status == "dismissed"
    with pytest.raises(KehuInputError, match="already dismissed"):
        complete_task(small.store, b.id, "wu")
    with pytest.raises(KehuInputError, match="already done"):
        snooze_task(small.store, a.id, today + timedelta(days=3), "zhou")
    from kehu.store.services import audit_log

    actions = [e.action for e in audit_log(small.store, 50) if e.object_type == "task"]
    assert {"create", "snooze", "wake", "done", "dismissed"} <= set(actions)


# -- specs -------------------------------------------------------------------------------


@pytest.mark.parametrize(("rule", "message"), [
    ({"name": "m", "kind": "maturity"}, "rule 1 'm' (maturity): days_ahead: Field required"),
    ({"name": "m", "kind": "maturity", "days_ahead": "soon"},
     "rule 1 'm' (maturity): days_ahead: Input should be a valid integer"),
    ({"name": "u", "kind": "usage_drop", "pct": 120},
     "rule 1 'u' (usage_drop): pct: Input should be less than or equal to 100; got 120"),
    ({"name": "u", "kind": "usage_drop", "pct": 50, "key_customers": {"min_tier": "vip"}},
     "key_customers: unknown tier 'vip'; expected one of diamond, gold, silver, regular"),
    ({"name": "x", "kind": "maturty", "days_ahead": 3},
     "rule 1 'x': kind: expected one of maturity, usage_drop"),
    ({"name": "b", "kind": "birthday", "days_ahead": 3, "title": "{customer_name} {amount}"},
     "rule 1 'b' (birthday): title: unknown placeholder {amount}"),
    ({"name": "b", "kind": "birthday", "days_ahead": 3, "refire_days": 5},
     "rule 1 'b' (birthday): refire_days: Extra inputs are not permitted"),
    ({"name": "t", "kind": "tier_change", "direction": "sideways"},
     "rule 1 't' (tier_change): direction: Input should be 'up', 'down' or 'any'"),
])
def test_spec_errors_name_the_rule_and_field(rule: dict[str, Any], message: str) -> None:
    with pytest.raises(KehuInputError) as err:
        AlertRules.parse([rule], "rules.yaml")
    assert str(err.value).startswith("rules.yaml: ")
    assert message in str(err.value)


def test_default_rules_and_facts_match_the_expressions(small: Workspace) -> None:
    rs = AlertRules.default()
    assert {r.kind for r in rs.rules} == set(FACTS)
    _scores(small, "r1", D0 - timedelta(days=30), {"A": ("gold", 0.1)})
    _scores(small, "r2", D0, {"A": ("silver", 0.5)})
    for r in rs.rules:
        t = compile_rule(r, small.engine, D0).table
        assert t is not None
        cols = set(t.columns)
        assert set(FACTS[r.kind]) - DISPLAY_FACTS <= cols, r.kind
        assert {"customer_id", "customer_name", "account_manager_id"} <= cols
    # saved rules take over from the defaults, and round-trip
    mine = _rules(MATURITY, {"name": "生日", "kind": "birthday", "days_ahead": 5,
                             "enabled": False, "title": "{customer_name} 生日快乐"})
    save_rules(small.store, mine, "admin")
    from kehu.alerts import rules_in_force

    assert rules_in_force(small.store) == mine
    assert run_alerts(small, as_of=D0).rules == 1  # the disabled one does not run


# -- notification through SMTP -----------------------------------------------------------------


@pytest.fixture
def smtp() -> Iterator[tuple[int, list[EmailMessage]]]:
    from aiosmtpd.controller import Controller

    got: list[EmailMessage] = []

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            msg = BytesParser(policy=email_policy).parsebytes(envelope.content)
            got.append(msg)  # type: ignore[arg-type]
            return "250 OK"

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctl = Controller(Handler(), hostname="127.0.0.1", port=port)
    ctl.start()
    try:
        yield port, got
    finally:
        ctl.stop()


def test_digest_goes_through_smtp_once_per_assignee(small: Workspace,
                                                    smtp: tuple[int, list[EmailMessage]]) -> None:
    port, got = smtp
    fail = {"on": True}

    def notify(recipient: str, subject: str, body: str) -> None:
        if fail["on"] and recipient.startswith("wu@"):
            raise ConnectionRefusedError("mailbox unavailable")
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = "kehu@example.cn", recipient, subject
        msg.set_content(body)
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
            s.send_message(msg)

    small.warehouse.append("contracts", _table("contracts", [
        {"contract_id": "K5", "customer_id": "A", "start_date": date(2024, 1, 1),
         "end_date": D0 + timedelta(days=3), "status": "active"}]))
    rules = _rules(MATURITY | {"days_ahead": 40, "priority": "high"},
                   {"name": "quiet", "kind": "maturity", "days_ahead": 40,
                    "notify_email": False})
    rep = run_alerts(small, rules, as_of=D0, notify=notify)
    assert rep.created == 6 and rep.notified == 1
    assert set(rep.notify_failed) == {"wu"} and "mailbox unavailable" in rep.notify_failed["wu"]
    [mail] = got
    assert mail["To"] == "zhou@example.cn"
    assert mail["Subject"] == "kehu：您有新的提醒任务（2 项）"
    body = mail.get_content()
    assert "K1" in body and "K5" in body and "[高]" in body
    notified = {t.customer_id for t in _tasks(small) if t.notified_at is not None}
    assert notified == {"A"}   # the "quiet" rule's tasks are in the app only
    # the next run sends wu's digest (retry) and nothing again to zhou
    fail["on"] = False
    rep = run_alerts(small, rules, as_of=D0, notify=notify)
    assert rep.notified == 1 and rep.created == 0 and len(got) == 2
    assert got[1]["To"] == "wu@example.com"
    assert got[1]["Subject"] == "kehu: new alert tasks for you (1)"
    assert "K3" in got[1].get_content()
    rep = run_alerts(small, rules, as_of=D0, notify=notify)
    assert rep.notified == 0 and len(got) == 2


# -- CLI ---------------------------------------------------------------------------------------


def test_cli_rules_run_and_tasks(small: Workspace, tmp_path: Path) -> None:
    from kehu.cli.main import app

    run = CliRunner().invoke
    w = ["-w", str(small.root)]
    f = tmp_path / "rules.yaml"
    f.write_text("- {name: 到期, kind: maturity, days_ahead: 40}\n", encoding="utf-8")
    r = run(app, ["alerts", "rules", "--file", str(f), "--json", *w])
    assert r.exit_code == 0, r.output
    assert [x["name"] for x in json.loads(r.output)["rules"]] == ["到期"]
    f.write_text("- {name: x, kind: maturity, days_ahead: -2}\n", encoding="utf-8")
    r = run(app, ["alerts", "rules", "--file", str(f), *w])
    assert isinstance(r.exception, KehuInputError) and "days_ahead" in str(r.exception)
    r = run(app, ["alerts", "run", "--as-of", str(D0), "--json", *w])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["created"] == 2
    r = run(app, ["tasks", "list", "--assignee", "wu", "--json", *w])
    [task] = json.loads(r.output)["tasks"]
    assert task["assignee"] == "wu" and task["customer_id"] == "B"
    until = str(date.today() + timedelta(days=3))
    assert run(app, ["tasks", "snooze", str(task["id"]), "--until", until, *w]).exit_code == 0
    r = run(app, ["tasks", "list", "--status", "snoozed", "--json", *w])
    assert [x["id"] for x in json.loads(r.output)["tasks"]] == [task["id"]]
    assert run(app, ["tasks", "done", str(task["id"]), *w]).exit_code == 0
    r = run(app, ["tasks", "list", "--status", "all", *w])
    assert r.exit_code == 0 and "done" in r.output
    r = run(app, ["tasks", "list", "--status", "later", *w])
    assert isinstance(r.exception, KehuInputError) and "--status" in str(r.exception)


# -- a generated company -------------------------------------------------------------------


@pytest.fixture(scope="module")
def telco(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    from kehu.demo import generate
    from kehu.ingest.manifest import load_manifest

    base = tmp_path_factory.mktemp("alerts")
    s = generate("telco", 3000, seed=5, out=base / "src")
    w = Workspace.init(base / "ws")
    load_manifest(w, s.manifest)
    yield w
    w.close()


def test_demo_company_counts_equal_pandas(telco: Workspace) -> None:
    r = telco.warehouse.read
    cust = r("customers").to_pandas()
    tx = r("transactions").to_pandas()
    as_of = tx.transaction_time.max().date()
    d = pd.Timestamp(as_of)
    ch = r("churn_events").to_pandas()
    churned = set(ch[pd.to_datetime(ch.churn_date) <= d].customer_id)
    exp: dict[str, set[tuple[str, str]]] = {}
    c = r("contracts").to_pandas()
    days = (pd.to_datetime(c.end_date) - d).dt.days
    m = c[(days >= 0) & (days <= 30) & (c.status.isna() | (c.status == "active"))]
    exp["contract_maturity"] = {(x, f"{k}@{e}") for x, k, e in
                                zip(m.customer_id, m.contract_id, m.end_date, strict=True)}
    t = r("tickets").to_pandas()
    opened = t.opened_time.dt.normalize()
    open_ = ~(t.resolved_time.notna() & (t.resolved_time.dt.normalize() <= d)) & ~(
        t.resolved_time.isna() & (t.status == "resolved"))
    q = t[(opened <= d) & open_ & ((d - opened).dt.days >= 3) & (t.kind == "complaint")]
    exp["complaint_unresolved"] = set(zip(q.customer_id, q.ticket_id, strict=True))
    p = r("payments").to_pandas()
    p = p[pd.to_datetime(p.invoice_date) <= d]
    due = pd.to_datetime(p.due_date).fillna(pd.to_datetime(p.invoice_date)
                                            + pd.Timedelta(days=30))
    paid_by = p.paid_date.notna() & (pd.to_datetime(p.paid_date) <= d)
    owed = p.amount_due - np.where(paid_by, p.amount_paid.fillna(p.amount_due), 0.0)
    q = p[((d - due).dt.days >= 30) & (owed > 0) & (owed >= 50)]
    exp["payment_overdue"] = set(zip(q.customer_id, q.payment_id, strict=True))
    for kind, col in (("birthday", "birth_date"), ("anniversary", "signup_date")):
        hits = set()
        for cid, v in zip(cust.customer_id, cust[col], strict=True):
            if pd.isna(v):
                continue
            for y in (as_of.year, as_of.year + 1):
                day = 28 if (v.month, v.day) == (2, 29) and not (y % 4 == 0 and (
                    y % 100 != 0 or y % 400 == 0)) else v.day
                k = (date(y, v.month, day) - as_of).days
                if 0 <= k <= 7 and (kind == "birthday" or y - v.year >= 1):
                    hits.add((cid, str(y)))
        exp[kind] = hits
    drop = _pandas_usage(tx, as_of, 50, 30, 90, {"gold", "diamond"}, "amount", 1.0)
    exp["key_customer_usage_drop"] = {(x, "-") for x in drop}
    exp = {k: {(cid, o) for cid, o in v if cid not in churned} for k, v in exp.items()}

    rules = AlertRules.default()
    got = {rule.name: {(f.customer_id, f.object_key) for f in
                       evaluate(telco.engine, rule, as_of).firings} for rule in rules.rules}
    for name, want in exp.items():
        assert got[name] == want, name
        assert want, name   # each kind has something to find in the demo company
    # give two of the four employees a kehu user: their customers' tasks are theirs
    ids = _users(telco, {"username": "e0", "employee_id": "E0000", "email": "e0@x.cn"},
                 {"username": "e1", "employee_id": "E0001"})
    rep = run_alerts(telco, rules, as_of=as_of)
    assert rep.fired == sum(len(v) for v in exp.values())
    assert rep.created == rep.fired and rep.notes and "needs two analysis runs" in rep.notes[0]
    am = dict(zip(cust.customer_id, cust.account_manager_id, strict=True))
    per_emp = pd.Series([am.get(cid) for v in exp.values() for cid, _o in v]).value_counts()
    assert rep.by_assignee == {"e0": per_emp["E0000"], "e1": per_emp["E0001"]}
    assert sum(rep.by_team.values()) == rep.fired - per_emp["E0000"] - per_emp["E0001"]
    with telco.store.session() as s:
        n = s.scalar(select(Task.id).where(Task.assignee_id == ids["e0"]).limit(1))
    assert n is not None
    rep = run_alerts(telco, rules, as_of=as_of)
    assert (rep.created, rep.already_open) == (0, rep.fired)


class _PgEngine:
    """The alert expressions on PostgreSQL through Ibis: same rules, another engine."""

    def __init__(self, con: Any) -> None:
        self.con = con
        self.warehouse = self
        self._names = set(con.list_tables())

    def exists(self, name: str) -> bool:
        return name in self._names

    def table(self, name: str) -> Any:
        return self.con.table(name)

    def execute_arrow(self, expr: Any) -> pa.Table:
        return expr.to_pyarrow()


@pytest.mark.postgres
def test_the_same_firings_on_postgresql(telco: Workspace, pg_url: str, tmp_path: Path) -> None:
    import ibis
    from sqlalchemy import make_url

    w = Workspace.init(tmp_path / "w")
    names = ["customers", "contracts", "tickets", "payments", "transactions", "churn_events",
             "employees"]
    as_of = telco.warehouse.read("transactions", ["transaction_time"]).column(0).to_pandas(
        ).max().date()
    start = as_of - timedelta(days=400)   # what the rules look at: 365 days for tiers
    since = {"transactions": ("transaction_time", datetime.combine(start, datetime.min.time())),
             "payments": ("invoice_date", start)}
    for n in names:
        t = telco.warehouse.read(n)
        if n in since:  # both engines read the same, smaller copy
            col, start = since[n]
            t = t.filter(pc.greater_equal(t.column(col), pa.scalar(start, t.schema.field(
                col).type)))
        w.warehouse.append(n, t)
    ids = w.warehouse.read("customers", ["customer_id"]).column(0).to_pylist()
    rng = np.random.default_rng(2)
    tiers = ["diamond", "gold", "silver", "regular"]
    for run_id, day in (("r1", as_of - timedelta(days=30)), ("r2", as_of)):
        _scores(w, run_id, day, {c: (tiers[int(rng.integers(0, 4))], float(rng.random()))
                                 for c in ids})
    url = make_url(pg_url)
    con = ibis.postgres.connect(host=url.host, port=url.port or 5432, user=url.username,
                                password=url.password, database=url.database,
                                schema=pg_url.split("search_path%3D")[1])
    for n in [*names, SCORES_TABLE, RUNS_TABLE]:
        con.create_table(n, w.warehouse.read(n))
    con.raw_sql("ANALYZE")  # statistics, as autovacuum would gather them
    pg = _PgEngine(con)
    for rule in AlertRules.default().rules:
        a = evaluate(w.engine, rule, as_of)
        b = evaluate(pg, rule, as_of)  # type: ignore[arg-type]
        assert a.note is None and b.note is None
        assert [f.dedup_key for f in a.firings] == [f.dedup_key for f in b.firings], rule.name
        assert a.firings, rule.name
        for x, y in zip(a.firings, b.firings, strict=True):
            assert x.customer_name == y.customer_name
            assert x.account_manager_id == y.account_manager_id
            for k, v in x.facts.items():
                if isinstance(v, float):
                    assert y.facts[k] == pytest.approx(v, rel=1e-9), (rule.name, k)
                else:
                    assert str(y.facts[k])[:10] == str(v)[:10], (rule.name, k)
    con.disconnect()
    w.close()
