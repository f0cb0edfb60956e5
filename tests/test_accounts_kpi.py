"""Service levels by tier, account managers' portfolios and the CRM programme's KPIs — each
checked against an independent pandas computation on the same demo tables; the app-store
parts on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from kehu import Workspace
from kehu.accounts import (
    ServiceLevels,
    apply_to_offer,
    load_service_levels,
    portfolios,
    save_service_levels,
    service_level_breaches,
    service_level_for,
)
from kehu.analytics.run import SCORES_TABLE, analysis_run
from kehu.analytics.tiers import TierScheme
from kehu.cli.main import app
from kehu.customer360 import customer_360
from kehu.demo import generate
from kehu.errors import KehuInputError, NotFoundError
from kehu.ingest.manifest import load_manifest
from kehu.kpi import crm_kpis
from kehu.store import services as sv
from kehu.store.db import AppStore
from kehu.store.models import Assignment, AuditEntry, Task, User

AS_OF = date(2025, 12, 20)      # mid-month: the last month is partial
OLD = date(2025, 6, 30)         # a second (copied) run, to check which run is used
THEN = date(2024, 12, 20)       # a year before AS_OF
DAY = pd.Timedelta(days=1)


@dataclass
class Frames:
    tx: pd.DataFrame
    cust: pd.DataFrame
    churn: pd.DataFrame
    tickets: pd.DataFrame
    surveys: pd.DataFrame
    scores: pd.DataFrame


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    base = tmp_path_factory.mktemp("akpi")
    s = generate("retail", 5000, seed=21, out=base / "src")
    w = Workspace.init(base / "ws")
    load_manifest(w, s.manifest)
    analysis_run(w, AS_OF)
    # an earlier run: the same rows with doubled values, as of OLD
    t = w.warehouse.read(SCORES_TABLE)
    df = t.to_pandas()
    df["run_id"], df["as_of"] = "00000000T000000-old", OLD
    df["current_value"] *= 2
    w.warehouse.append(SCORES_TABLE, pa.Table.from_pandas(df, schema=t.schema,
                                                          preserve_index=False))
    return w


@pytest.fixture(scope="module")
def frames(demo: Workspace) -> Frames:
    r = demo.warehouse.read
    tx = r("transactions").to_pandas()
    tx["day"] = tx.transaction_time.dt.normalize()
    cust = r("customers").to_pandas()
    cust["signup"] = pd.to_datetime(cust.signup_date)
    churn = r("churn_events").to_pandas()
    churn["day"] = pd.to_datetime(churn.churn_date)
    return Frames(tx, cust, churn, r("tickets").to_pandas(), r("surveys").to_pandas(),
                  r(SCORES_TABLE).to_pandas())


# -- reference computations (pandas) --------------------------------------------------------


def _stage_class(f: Frames, d: date) -> pd.Series:
    """prospect / churned / live of every customer known on ``d`` (lifecycle rules)."""
    ts = pd.Timestamp(d)
    buys = f.tx[(f.tx.kind.fillna("") != "refund") & (f.tx.day <= ts)]
    last = buys.groupby("customer_id").day.max()
    known = set(f.cust.customer_id[f.cust.signup.isna() | (f.cust.signup <= ts)]) | set(last.index)
    idx = pd.Index(sorted(known))
    last = last.reindex(idx)
    event = f.churn[f.churn.day <= ts].groupby("customer_id").day.max().reindex(idx)
    out = pd.Series("live", index=idx)
    out[(event.notna() & ~(last > event)) | ((ts - last).dt.days > 365)] = "churned"
    out[last.isna()] = "prospect"
    return out


def _months(n: int, as_of: date = AS_OF) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    periods = pd.period_range(end=pd.Period(as_of, "M"), periods=n, freq="M")
    return [(p.start_time, min(p.end_time.normalize(), pd.Timestamp(as_of))) for p in periods]


def _tier_on(f: Frames, d: pd.Timestamp) -> pd.Series:
    w = f.tx[(f.tx.day <= d) & (f.tx.day > d - pd.Timedelta(days=365))]
    spend = w.groupby("customer_id").amount.sum().reindex(f.cust.customer_id, fill_value=0.0)
    tiers = TierScheme().tiers
    code = np.select([spend >= t.cut for t in tiers[:-1]], [t.code for t in tiers[:-1]],
                     tiers[-1].code)
    return pd.Series(code, index=spend.index)


def _value_by_tier(f: Frames, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    m = f.tx[(f.tx.day >= start) & (f.tx.day <= end)].copy()
    m["margin"] = m.amount - m.cost.fillna(0)
    per = m.groupby("customer_id")[["amount", "margin"]].sum()
    per["tier"] = per.index.map(_tier_on(f, start - DAY)).fillna("regular")
    g = per.groupby("tier").agg(revenue=("amount", "sum"), margin=("margin", "sum"),
                                buyers=("amount", "size"))
    return g.reindex([t.code for t in TierScheme().tiers], fill_value=0)


def _growth(a: float, b: float) -> float | None:
    return None if b <= 0 else a / b - 1


def _close(got: Any, want: Any) -> bool:
    if want is None or (isinstance(want, float) and np.isnan(want)):
        return got is None or (isinstance(got, float) and np.isnan(got))
    return got is not None and bool(np.isclose(got, want, rtol=1e-9, atol=1e-9))


def _same(a: Any, b: Any, where: str = "") -> None:
    """Equal JSON, floats up to rounding (engine sums may add in another order)."""
    if isinstance(a, dict) and isinstance(b, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _same(x, y, f"{where}[{i}]")
    elif isinstance(a, float) or isinstance(b, float):
        assert _close(a, b), (where, a, b)
    else:
        assert a == b, (where, a, b)


# -- service levels -------------------------------------------------------------------------


def _table(**changes: dict[str, Any]) -> dict[str, Any]:
    t = ServiceLevels.default().model_dump()["tiers"]
    for tier, change in changes.items():
        t[tier] = {**t.get(tier, {}), **change}
    return {"tiers": t}


@pytest.mark.parametrize("data,expected", [
    (_table(gold={"max_discount": 1.5}), "tiers.gold.max_discount: Input should be less than "
                                         "or equal to 1"),
    (_table(silver={"response_hours": 0}), "tiers.silver.response_hours: Input should be "
                                           "greater than 0"),
    (_table(silver={"max_discunt": 0.1}), "tiers.silver.max_discunt: Extra inputs are not "
                                          "permitted"),
    (_table(regular={"channels": ["sms", "fax"]}), "tiers.regular.channels: Value error, "
                                                   "unknown channel 'fax'"),
    (_table(platinum={"response_hours": 1, "max_discount": 0.5}), "unknown tier 'platinum'"),
    ({"tiers": {"钻石卡": {"response_hours": 1, "max_discount": 0.3}}},
     "no service level for tier(s) gold, silver, regular"),
    ({"tiers": {"gold": {"response_hours": 1, "max_discount": 0.3},
                "金卡": {"response_hours": 1, "max_discount": 0.3}}}, "tier 'gold' is given twice"),
])
def test_validation_errors_name_the_tier_and_field(data: dict, expected: str) -> None:
    with pytest.raises(KehuInputError) as e:
        ServiceLevels.parse(data, "levels.yaml")
    assert str(e.value).startswith("levels.yaml: invalid service levels: ")
    assert expected in str(e.value)


def test_tier_names_are_read_as_codes_and_channels_normalised() -> None:
    t = _table(regular={"channels": ["短信", "App", "sms"]})["tiers"]
    t["钻石卡"] = t.pop("diamond")
    levels = ServiceLevels.parse({"tiers": t})
    assert list(levels.tiers) == ["diamond", "gold", "silver", "regular"]
    assert levels.tiers["regular"].channels == ["sms", "app"]
    assert levels.tiers["regular"].allows_channel("短信")
    assert not levels.tiers["regular"].allows_channel("hotline")
    assert levels.tiers["gold"].allows_channel("hotline")  # no list: every channel


def test_offer_discount_is_capped_by_tier() -> None:
    levels = ServiceLevels.default()
    for code, lv in levels.tiers.items():
        below = lv.max_discount / 2
        assert levels.apply_to_offer(code, below) == (below, False, "")
        allowed, capped, reason = levels.apply_to_offer(code, lv.max_discount + 0.05)
        assert allowed == lv.max_discount and capped
        assert f"capped at {lv.max_discount:.0%}" in reason
        assert levels.apply_to_offer(code, lv.max_discount)[1] is False  # at the cap: allowed
    assert apply_to_offer("金卡", 0.5)[:2] == (0.20, True)
    assert apply_to_offer("Diamond", 0.25)[:2] == (0.25, False)
    custom = ServiceLevels.parse(_table(regular={"max_discount": 0.0}))
    assert apply_to_offer("regular", 0.1, custom)[:2] == (0.0, True)
    with pytest.raises(KehuInputError, match="Unknown tier 'platinum'"):
        apply_to_offer("platinum", 0.1)
    with pytest.raises(KehuInputError, match="'discount' parameter must be a fraction"):
        apply_to_offer("gold", 1.2)


def test_service_levels_saved_in_the_app_store(store_url: str) -> None:
    store = AppStore(store_url)
    store.upgrade()
    assert load_service_levels(store) == ServiceLevels.default()
    mine = ServiceLevels.parse(_table(gold={"max_discount": 0.25, "channels": ["app"]}))
    assert save_service_levels(store, mine, actor="admin").version == 1
    again = ServiceLevels.parse(_table(gold={"max_discount": 0.15}))
    assert save_service_levels(store, again, actor="admin").version == 2
    assert load_service_levels(store).tiers["gold"].max_discount == 0.15
    assert apply_to_offer("gold", 0.2, load_service_levels(store))[:2] == (0.15, True)
    with store.session() as s:
        audit = [(a.action, a.object_type) for a in s.query(AuditEntry).order_by(AuditEntry.id)]
    assert audit == [("create", "service_levels"), ("update", "service_levels")]
    store.dispose()


def test_customer_360_shows_the_service_level(demo: Workspace, frames: Frames) -> None:
    run = frames.scores[frames.scores.as_of == AS_OF].set_index("customer_id")
    cid = run.index[run.tier == "gold"][0]
    c = customer_360(demo, cid, limit=1)
    assert c.service_level is not None
    assert c.service_level["tier"] == "gold" and c.service_level["tier_source"] == "run"
    assert c.service_level["max_discount"] == 0.20
    assert c.service_level["dedicated_manager"] is True
    # before any run: the tier is computed from the transactions
    early = date(2024, 3, 31)
    got = service_level_for(demo, cid, as_of=early)
    assert got.tier_source == "computed"
    assert got.tier == _tier_on(frames, pd.Timestamp(early))[cid]
    with pytest.raises(NotFoundError, match="No customer with id 'NOPE'"):
        service_level_for(demo, "NOPE", as_of=early)


def test_breaches_equal_pandas(demo: Workspace, frames: Frames) -> None:
    got = service_level_breaches(demo, AS_OF, days=90)
    t = frames.tickets.copy()
    end = pd.Timestamp(AS_OF) + DAY
    t = t[(t.opened_time >= end - pd.Timedelta(days=90)) & (t.opened_time < end)]
    done = t.resolved_time.notna() & (t.resolved_time < end)
    finish = t.resolved_time.where(done, end)
    t["hours"] = (finish - t.opened_time).dt.total_seconds() / 3600
    run = frames.scores[frames.scores.as_of == AS_OF].set_index("customer_id").tier
    targets = {k: v.response_hours for k, v in ServiceLevels.default().tiers.items()}
    t["target"] = t.customer_id.map(run).fillna("regular").map(targets)
    want = t[t.hours > t.target].set_index("ticket_id")
    assert len(want) > 50 and set(got.ticket_id) == set(want.index)
    g = got.set_index("ticket_id").loc[want.index]
    np.testing.assert_allclose(g.hours, want.hours, rtol=1e-9)
    np.testing.assert_allclose(g.target_hours, want.target)
    assert (g.open == ~done[t.hours > t.target].to_numpy()).all()
    assert list(got.hours_over) == sorted(got.hours_over, reverse=True)


# -- the app store: assignments, users, tasks (SQLite and PostgreSQL) -----------------------

TASKS: list[dict[str, Any]] = [
    # user key, customer, due, status, completed at (UTC)
    {"user": "u900", "due": date(2025, 12, 1), "status": "open"},
    {"user": "u900", "due": date(2025, 12, 25), "status": "open"},
    {"user": "u900", "due": None, "status": "open"},
    {"user": "u900", "due": date(2025, 11, 1), "status": "snoozed"},
    {"user": "u900", "due": date(2025, 11, 2), "status": "done",
     "done": datetime(2025, 11, 1, 3, tzinfo=UTC)},
    {"user": "u001", "due": date(2025, 12, 19), "status": "open"},
    {"user": "nobody", "due": date(2025, 12, 2), "status": "open"},
    {"user": None, "customer": "E0002", "due": None, "status": "open"},     # a customer of E0002
    {"user": None, "customer": "leaver", "due": date(2025, 10, 1), "status": "open"},
    # done on time / late by the business day (Asia/Shanghai is UTC+8)
    {"user": None, "due": date(2025, 11, 10), "status": "done",
     "done": datetime(2025, 11, 9, 4, tzinfo=UTC)},
    {"user": None, "due": date(2025, 11, 10), "status": "done",
     "done": datetime(2025, 11, 10, 20, tzinfo=UTC)},
    {"user": None, "due": date(2025, 11, 15), "status": "cancelled"},
    {"user": None, "due": date(2025, 11, 15), "status": "dismissed"},
    {"user": None, "due": date(2025, 12, 5), "status": "done",
     "done": datetime(2025, 12, 1, 9, tzinfo=UTC)},
    {"user": None, "due": date(2024, 11, 1), "status": "done",
     "done": datetime(2024, 10, 1, tzinfo=UTC)},
]


@pytest.fixture
def ws_store(demo: Workspace, store_url: str) -> Iterator[Workspace]:
    """The demo warehouse with a fresh app store at ``store_url``, filled with assignments,
    users and tasks."""
    settings = demo.settings.model_copy(deep=True)
    settings.store.url = store_url
    w = Workspace(demo.root, settings)
    store = w.store
    wh = demo.warehouse.read("customers", ["customer_id", "account_manager_id"]).to_pandas() \
        .sort_values("customer_id")
    of = {e: list(wh.customer_id[wh.account_manager_id == e]) for e in ("E0001", "E0002",
                                                                       "E0003")}
    nobody = list(wh.customer_id[wh.account_manager_id.isna()])
    tx = demo.warehouse.read("transactions", ["customer_id", "transaction_time"]).to_pandas()
    bought_2024 = set(tx.customer_id[(tx.transaction_time >= pd.Timestamp(2024, 9, 1))
                                     & (tx.transaction_time < pd.Timestamp(2024, 12, 1))])
    of["E0003"] = [c for c in of["E0003"] if c in bought_2024]  # live a year before AS_OF
    for c in of["E0001"][:20]:                     # moved to E0900 in June
        sv.assign(store, c, "E0900", "t", since=date(2025, 6, 1))
    for c in of["E0002"][:10]:                     # tracked, then unassigned in March
        sv.assign(store, c, "E0002", "t", since=date(2023, 1, 1))
        sv.unassign(store, c, "t", until=date(2025, 3, 1))
    for c in of["E0003"][:5]:                      # E0901 in 2024, E0902 from 2025
        sv.assign(store, c, "E0901", "t", since=date(2024, 1, 1))
        sv.assign(store, c, "E0902", "t", since=date(2025, 1, 1))
    for c in nobody[:5]:                           # newly managed
        sv.assign(store, c, "E0900", "t", since=date(2025, 10, 1))
    with store.session() as s:
        users = {"u900": User(username="u900", employee_id="E0900", role="account_manager"),
                 "u001": User(username="u001", employee_id="E0001", role="account_manager"),
                 "nobody": User(username="nobody", role="analyst")}
        s.add_all(users.values())
        s.flush()
        for i, t in enumerate(TASKS):
            cust = {"E0002": of["E0002"][-1], "leaver": of["E0002"][0]}.get(t.get("customer"))
            s.add(Task(title=f"t{i}", customer_id=cust, due_date=t["due"], status=t["status"],
                       assignee_id=users[t["user"]].id if t["user"] else None,
                       completed_at=t.get("done")))
    yield w
    w.close()


def _managers(wh: dict[str, Any], rows: list[tuple], d: date) -> dict[str, str]:
    """customer -> manager on ``d``: a valid store assignment, none once the store's ended,
    else the warehouse's."""
    out = {c: e for c, e in wh.items() if isinstance(e, str) and e}
    by: dict[str, list[tuple]] = {}
    for r in rows:
        by.setdefault(r[0], []).append(r)
    for c, rs in by.items():
        valid = [r for r in rs if r[2] <= d and (r[3] is None or r[3] > d)]
        if valid:
            out[c] = max(valid, key=lambda r: (r[2], r[4]))[1]
        elif any(r[2] <= d for r in rs):
            out.pop(c, None)
    return out


def test_portfolios_equal_pandas(ws_store: Workspace, frames: Frames) -> None:
    got = portfolios(ws_store, as_of=AS_OF).set_index("employee_id")
    with ws_store.store.session() as s:
        rows = [(a.customer_id, a.employee_id, a.valid_from, a.valid_to, a.id)
                for a in s.query(Assignment)]
    wh = dict(zip(frames.cust.customer_id, frames.cust.account_manager_id, strict=True))
    now, then = _managers(wh, rows, AS_OF), _managers(wh, rows, THEN)
    st_now, st_then = _stage_class(frames, AS_OF), _stage_class(frames, THEN)
    run = frames.scores[frames.scores.as_of == AS_OF].set_index("customer_id")
    buys = frames.tx[frames.tx.kind.fillna("") != "refund"]
    first = buys.groupby("customer_id").day.min()
    p = pd.DataFrame({"employee_id": pd.Series(now)})
    p = p[p.index.isin(st_now.index)]
    p["stage"] = st_now.reindex(p.index)
    p["first"] = first.reindex(p.index)
    p = p.join(run[["current_value", "clv", "churn_risk"]], how="left")
    b = pd.DataFrame({"employee_id": pd.Series(then)})
    b = b[b.index.isin(st_then.index[st_then == "live"])]
    b["kept"] = st_now.reindex(b.index) != "churned"
    g = p.groupby("employee_id")
    want = pd.concat({
        "customers": g.size(), "live_customers": g.stage.apply(lambda s: (s == "live").sum()),
        "new_customers": g["first"].apply(lambda s: ((s > pd.Timestamp(THEN))
                                                      & (s <= pd.Timestamp(AS_OF))).sum()),
        "current_value": g.current_value.sum(), "clv": g.clv.sum(),
        "churn_risk_mean": g.churn_risk.mean(),
        "high_risk": g.churn_risk.apply(lambda s: (s >= 0.3).sum()),
        # retention: the manager's live customers a year ago, not churned now
        "retention_base": b.groupby("employee_id").size(),
        "retained": b.groupby("employee_id").kept.sum(),
        # tasks: open or snoozed; the assignee's employee, else the customer's manager now
        "tasks_open": pd.Series({"E0900": 4, "E0001": 1, "E0002": 1}),
        "tasks_overdue": pd.Series({"E0900": 2, "E0001": 1, "E0002": 0})}, axis=1)
    counts = ["customers", "live_customers", "new_customers", "current_value", "clv",
              "high_risk", "retention_base", "retained", "tasks_open", "tasks_overdue"]
    want[counts] = want[counts].fillna(0)
    want["retention_12m"] = want.retained / want.retention_base.where(want.retention_base > 0)
    assert {"E0900", "E0901", "E0902"} <= set(got.index)
    assert "E0901" not in now.values() and got.loc["E0901", "customers"] == 0
    assert got.loc["E0901", "retention_base"] == want.loc["E0901", "retention_base"] > 0
    assert set(got.index) == set(want.index)
    for col in want.columns:
        for emp in want.index:
            assert _close(got.loc[emp, col], want.loc[emp, col]), (emp, col, got.loc[emp, col],
                                                                  want.loc[emp, col])
    assert got.loc["E0001", "name"] and list(got.current_value) == sorted(
        got.current_value, reverse=True)
    with pytest.raises(NotFoundError, match="No account manager with id 'E7777'"):
        portfolios(ws_store, as_of=AS_OF, employee_id="E7777")


def test_cli_portfolio_of_one_manager_on_an_earlier_day(demo: Workspace,
                                                        frames: Frames) -> None:
    """``kehu portfolio E0001 --as-of OLD --json`` reads the run as of then (the copied run
    with doubled values)."""
    run = CliRunner().invoke
    root, env = str(demo.root), {"KEHU_LANG": "en"}
    res = run(app, ["portfolio", "E0001", "--as-of", str(OLD), "--json", "-w", root], env=env)
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert [r["employee_id"] for r in rows] == ["E0001"]
    old_run = frames.scores[frames.scores.as_of == OLD].set_index("customer_id")
    mine = frames.cust.customer_id[frames.cust.account_manager_id == "E0001"]
    mine = mine[mine.isin(_stage_class(frames, OLD).index)]
    assert rows[0]["customers"] == len(mine)
    assert _close(rows[0]["current_value"], old_run.current_value.reindex(mine).sum())
    res = run(app, ["portfolio", "--as-of", str(OLD), "-w", root], env=env)
    assert res.exit_code == 0 and "portfolios" in res.stdout, res.output


def test_kpi_tasks_done_on_time(ws_store: Workspace) -> None:
    rep = crm_kpis(ws_store, months=3, as_of=AS_OF)
    months = {m["month"]: m for m in rep.months}
    tz = ZoneInfo("Asia/Shanghai")
    counted = [t for t in TASKS if t["due"] is not None and date(2025, 10, 1) <= t["due"] <= AS_OF
               and t["status"] not in ("cancelled", "dismissed")]
    for label in ("2025-10", "2025-11", "2025-12"):
        mine = [t for t in counted if t["due"].strftime("%Y-%m") == label]
        ok = [t for t in mine if t["status"] == "done"
              and t["done"].astimezone(tz).date() <= t["due"]]
        m = months[label]
        assert (m["tasks_due"], m["tasks_on_time"]) == (len(mine), len(ok))
        assert _close(m["tasks_on_time_share"], len(ok) / len(mine) if mine else None)
    assert (months["2025-11"]["tasks_due"], months["2025-11"]["tasks_on_time"]) == (4, 2)
    assert rep.headline["tasks"] == {"due": 9, "on_time": 3, "share": 3 / 9}


def test_saved_levels_reach_the_customer_360(ws_store: Workspace, frames: Frames) -> None:
    save_service_levels(ws_store.store, ServiceLevels.parse(_table(silver={
        "max_discount": 0.12, "channels": ["app"]})), "admin")
    run = frames.scores[frames.scores.as_of == AS_OF].set_index("customer_id")
    cid = run.index[run.tier == "silver"][0]
    c = customer_360(ws_store, cid, limit=1)
    assert c.service_level is not None
    assert (c.service_level["max_discount"], c.service_level["channels"]) == (0.12, ["app"])
    assert service_level_for(ws_store, cid).level.max_discount == 0.12


# -- the KPIs -------------------------------------------------------------------------------

CAMPAIGNS = [
    {"campaign_id": "A", "start_date": date(2025, 3, 5), "incremental_margin": 5000.0,
     "cost": 2000.0, "roi": 1.5},
    {"campaign_id": "B", "start_date": "2025-03-20", "incremental_margin": -100.0,
     "cost": 400.0, "roi": -1.25},
    {"campaign_id": "C", "start_date": date(2025, 11, 1), "incremental_margin": None,
     "cost": 300.0, "roi": None},
    {"campaign_id": "D", "start_date": date(2024, 1, 1), "incremental_margin": 10.0,
     "cost": 1.0, "roi": 9.0},
]


@pytest.fixture(scope="module")
def report(demo: Workspace) -> Any:
    calls = []

    def results(ws: Workspace, start: date, end: date) -> list[dict[str, Any]]:
        calls.append((start, end))
        return CAMPAIGNS

    rep = crm_kpis(demo, months=12, as_of=AS_OF, campaign_results=results)
    assert calls == [(date(2025, 1, 1), AS_OF)]
    return rep


def test_kpi_retention_equals_pandas(report: Any, frames: Frames) -> None:
    months = _months(12)
    assert [m["month"] for m in report.months] == [s.strftime("%Y-%m") for s, _e in months]
    assert [m["partial"] for m in report.months] == [False] * 11 + [True]
    for (s, e), m in zip(months, report.months, strict=True):
        a, b = _stage_class(frames, (s - DAY).date()), _stage_class(frames, e.date())
        base = a.index[a == "live"]
        lost = (b.reindex(base) == "churned").sum()
        bought_a, bought_b = a.index[a != "prospect"], b.index[b != "prospect"]
        assert (m["customers_start"], m["churned"]) == (len(base), lost), m["month"]
        assert _close(m["retention_rate"], (len(base) - lost) / len(base))
        assert m["new_customers"] == len(bought_b.difference(bought_a))
        assert m["customers_end"] == (b == "live").sum()
    a = _stage_class(frames, date(2024, 12, 31))
    base = a.index[a == "live"]
    kept = (_stage_class(frames, AS_OF).reindex(base) != "churned").sum()
    r = report.headline["retention"]
    assert (r["customers_start"], r["retained"]) == (len(base), kept)
    assert 0.5 < r["rate"] < 1 and report.headline["retention_rate_last_month"] == \
        report.months[-1]["retention_rate"]


def test_kpi_value_by_tier_equals_pandas(report: Any, frames: Frames) -> None:
    codes = [t.code for t in TierScheme().tiers]
    months = _months(25)          # the report's 12, the year before, and one for the first MoM
    vals = [_value_by_tier(frames, s, e) for s, e in months]
    ly_cut = _value_by_tier(frames, pd.Timestamp(2024, 12, 1), pd.Timestamp(2024, 12, 20))
    got = {(t["month"], t["tier"]): t for t in report.tiers}
    assert len(got) == 12 * 4
    now_sum = pd.DataFrame(0.0, index=codes, columns=["revenue", "margin"])
    before_sum = now_sum.copy()
    for i in range(13, 25):
        label = months[i][0].strftime("%Y-%m")
        cur, prev = vals[i], vals[i - 1]
        ly = ly_cut if i == 24 else vals[i - 12]
        now_sum += cur[["revenue", "margin"]]
        before_sum += ly[["revenue", "margin"]]
        for code in codes:
            g = got[(label, code)]
            for k in ("revenue", "margin", "buyers"):
                assert _close(g[k], float(cur.loc[code, k])), (label, code, k)
            for k in ("revenue", "margin"):
                assert _close(g[f"{k}_mom"], _growth(cur.loc[code, k], prev.loc[code, k]))
                assert _close(g[f"{k}_yoy"], _growth(cur.loc[code, k], ly.loc[code, k]))
        m = next(x for x in report.months if x["month"] == label)
        assert _close(m["revenue"], float(cur.revenue.sum()))
    growth = report.headline["value_growth"]
    for code in codes:
        assert _close(growth[code]["revenue"], now_sum.loc[code, "revenue"])
        assert _close(growth[code]["margin_prev_year"], before_sum.loc[code, "margin"])
        assert _close(growth[code]["revenue_yoy"], _growth(now_sum.loc[code, "revenue"],
                                                           before_sum.loc[code, "revenue"]))
    assert _close(growth["all"]["revenue"], now_sum.revenue.sum())
    assert got[("2025-06", "diamond")]["tier_name"] == "Diamond"


def test_kpi_satisfaction_and_complaints_equal_pandas(report: Any, frames: Frames) -> None:
    s, t = frames.surveys, frames.tickets
    hours = (t.resolved_time - t.opened_time).dt.total_seconds() / 3600
    comp = t.kind == "complaint"
    for (start, end), m in zip(_months(12), report.months, strict=True):
        stop = end + DAY
        ans = s[(s.survey_time >= start) & (s.survey_time < stop)]
        nps = ans[ans.kind == "nps"].score
        assert m["nps_answers"] == len(nps)
        assert _close(m["nps"], 100 * ((nps >= 9).mean() - (nps <= 6).mean())
                      if len(nps) else None)
        csat = ans[ans.kind == "csat"].score
        assert _close(m["csat"], csat.mean() if len(csat) else None)
        res = (t.resolved_time >= start) & (t.resolved_time < stop)
        assert _close(m["ticket_satisfaction"], t[res].satisfaction.mean())
        assert m["complaints_resolved"] == (res & comp).sum()
        assert _close(m["resolution_hours_median"], hours[res & comp].median())
        opened = (t.opened_time >= start) & (t.opened_time < stop) & comp
        assert m["complaints_opened"] == opened.sum()
    period = (s.survey_time >= pd.Timestamp(2025, 1, 1)) & (s.survey_time < pd.Timestamp(AS_OF)
                                                            + DAY)
    nps = s[period & (s.kind == "nps")].score
    h = report.headline
    assert _close(h["satisfaction"]["nps"], 100 * ((nps >= 9).mean() - (nps <= 6).mean()))
    res = (t.resolved_time >= pd.Timestamp(2025, 1, 1)) \
        & (t.resolved_time < pd.Timestamp(AS_OF) + DAY) & comp
    assert _close(h["complaints"]["resolution_hours_median"], hours[res].median())
    assert h["complaints"]["resolved"] == res.sum() > 100


def test_kpi_campaigns(report: Any) -> None:
    months = {m["month"]: m for m in report.months}
    mar = months["2025-03"]
    assert (mar["campaigns"], mar["campaign_incremental_margin"], mar["campaign_cost"]) == \
        (2, 4900.0, 2400.0)
    assert _close(mar["campaign_roi"], (4900 - 2400) / 2400)
    nov = months["2025-11"]
    assert (nov["campaigns"], nov["campaign_incremental_margin"], nov["campaign_cost"],
            nov["campaign_roi"]) == (1, None, 300.0, None)
    assert months["2025-05"]["campaigns"] == 0 and months["2025-05"]["campaign_roi"] is None
    c = report.headline["campaigns"]
    assert (c["campaigns"], c["incremental_margin"], c["cost"], c["reason"]) == \
        (3, 4900.0, 2700.0, None)
    assert _close(c["roi"], (4900 - 2400) / 2400)


def test_kpi_report_is_json_safe_and_validates_months(demo: Workspace, report: Any) -> None:
    d = report.to_dict()
    assert json.loads(json.dumps(d, allow_nan=False)) == d
    assert d["as_of"] == "2025-12-20" and d["months"][0]["start"] == "2025-01-01"
    for bad in (0, 121, 2.5):
        with pytest.raises(KehuInputError, match="'months' parameter must be an int between"):
            crm_kpis(demo, months=bad, as_of=AS_OF)  # type: ignore[arg-type]


# -- the CLI --------------------------------------------------------------------------------


def test_cli_kpi_and_service_levels(demo: Workspace, tmp_path: Path) -> None:
    root = str(demo.root)
    run = CliRunner().invoke
    env = {"KEHU_LANG": "en"}
    res = run(app, ["kpi", "--months", "2", "--as-of", str(AS_OF), "--json", "-w", root],
              env=env)
    assert res.exit_code == 0, res.output
    got = json.loads(res.stdout)
    from kehu.campaigns.measure import campaign_results

    # the CLI passes the campaigns' measured results
    _same(got, crm_kpis(demo, months=2, as_of=AS_OF,
                        campaign_results=campaign_results).to_dict())
    c = got["headline"]["campaigns"]
    measured = campaign_results(demo, date.fromisoformat(got["start"]), AS_OF)
    assert c["campaigns"] == len(measured) and c["reason"] is None
    assert "not available" in crm_kpis(demo, months=2, as_of=AS_OF).to_dict()[
        "headline"]["campaigns"]["reason"]
    res = run(app, ["kpi", "--months", "1", "--as-of", str(AS_OF), "-w", root], env=env)
    assert res.exit_code == 0 and "retention" in res.stdout, res.output
    res = run(app, ["servicelevels", "show", "--json", "-w", root], env=env)
    assert json.loads(res.stdout)["version"] is None
    good = tmp_path / "levels.yaml"
    good.write_text("tiers:\n  钻石卡: {dedicated_manager: true, response_hours: 1, "
                    "max_discount: 0.35}\n  gold: {response_hours: 6, max_discount: 0.2}\n"
                    "  silver: {response_hours: 24, max_discount: 0.1}\n"
                    "  regular: {response_hours: 72, max_discount: 0.05}\n", encoding="utf-8")
    res = run(app, ["servicelevels", "set", str(good), "--json", "-w", root], env=env)
    assert res.exit_code == 0, res.output
    shown = json.loads(run(app, ["servicelevels", "show", "--json", "-w", root],
                           env=env).stdout)
    assert shown["version"] == 1 and shown["tiers"]["diamond"]["max_discount"] == 0.35
    assert run(app, ["servicelevels", "show", "-w", root], env=env).exit_code == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text(good.read_text(encoding="utf-8").replace("0.2}", "2}"), encoding="utf-8")
    res = run(app, ["servicelevels", "set", str(bad), "-w", root], env=env)
    assert isinstance(res.exception, KehuInputError)
    assert "tiers.gold.max_discount" in str(res.exception)
    assert load_service_levels(demo.store).tiers["diamond"].max_discount == 0.35
    from kehu.store.models import Definition

    with demo.store.session() as s:  # leave the module's workspace as it was
        s.query(Definition).filter(Definition.kind == "service_levels").delete()


def test_portfolios_kept_in_memory_see_every_change(ws_store: Workspace) -> None:
    """The second call is served from memory, yet a moved customer, a new task and a saved
    lifecycle rule change show at once (each is part of the cache key, or counted live)."""
    from kehu.accounts import portfolio as pf
    from kehu.analytics.schemes import lifecycle_rules, save_lifecycle_rules

    first = portfolios(ws_store, as_of=AS_OF).set_index("employee_id")
    assert len(pf._BASE) >= 1
    again = portfolios(ws_store, as_of=AS_OF).set_index("employee_id")
    pd.testing.assert_frame_equal(first, again)
    wh = ws_store.warehouse.read("customers", ["customer_id", "account_manager_id"]) \
        .to_pandas()
    with ws_store.store.session() as s:
        tracked = {a.customer_id for a in s.query(Assignment)}
    moved = sorted(set(wh.customer_id[wh.account_manager_id == "E0003"]) - tracked)[0]
    sv.assign(ws_store.store, moved, "E0002", "t", since=date(2025, 1, 1))
    sv.create_task(ws_store.store, sv.TaskIn(title="call back", customer_id=moved,
                                             due_date=date(2020, 1, 1)), actor="t")
    after = portfolios(ws_store, as_of=AS_OF).set_index("employee_id")
    assert after.loc["E0003", "customers"] == first.loc["E0003", "customers"] - 1
    assert after.loc["E0002", "customers"] == first.loc["E0002", "customers"] + 1
    assert after.loc["E0002", "tasks_open"] == first.loc["E0002", "tasks_open"] + 1
    assert after.loc["E0002", "tasks_overdue"] == first.loc["E0002", "tasks_overdue"] + 1
    # lifecycle rules where nobody stays live for more than a day: fewer live customers
    rules = lifecycle_rules(ws_store).model_copy(update={"active_days": 1, "dormant_days": 2})
    save_lifecycle_rules(ws_store, rules, actor="t")
    strict = portfolios(ws_store, as_of=AS_OF).set_index("employee_id")
    assert strict.live_customers.sum() < after.live_customers.sum()
