"""Account managers' portfolios (客户经理制, MISSION C7): per manager, their customers, the
value and churn risk in them, their open and overdue tasks and how many customers they kept.

Who manages a customer on a day: the app store's :class:`~kehu.store.models.Assignment`
valid that day; a customer with store assignments that all ended by then has no manager; a
customer the store has no assignment for (yet) keeps the warehouse's
``customers.account_manager_id`` (which has no history, so it is used for every day).

Per manager, as of ``as_of`` (default: the last transaction day):

- ``customers``: assigned customers known on ``as_of`` (signed up or bought by then);
  ``live_customers``: those neither prospects nor churned (lifecycle stages);
- ``new_customers``: assigned customers whose first purchase fell in the 12 months up to
  ``as_of``;
- ``current_value``, ``clv``: sums over the customers of the latest analysis run on or before
  ``as_of`` (empty before the first run); ``churn_risk_mean`` the mean churn risk of those
  scored, ``high_risk`` how many have a risk of at least ``high_risk`` (default 0.3, the early
  warnings' threshold);
- ``tasks_open``: tasks open or snoozed now, ``tasks_overdue`` those due before ``as_of``
  (today when no ``as_of`` is given) — a task counts for the employee of its assignee
  (``User.employee_id``), an unassigned task for the current manager of its customer;
- ``retention_12m`` = ``retained / retention_base``: of the customers the manager had a year
  before ``as_of`` that were live then (lifecycle stage not prospect or churned), the share
  not churned on ``as_of`` (the same definition as the monthly retention of
  :mod:`kehu.kpi.service`).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Collection, Sequence
from datetime import date
from typing import TYPE_CHECKING, Any

import ibis
import pandas as pd
import pyarrow as pa
from ibis.expr.types import Table

from kehu.analytics.lifecycle import STAGES, LifecycleRules, lifecycle
from kehu.errors import KehuInputError, NotFoundError
from kehu.i18n import _

if TYPE_CHECKING:
    from kehu.workspace import Workspace

#: lifecycle stages of a customer who has bought and is not lost (dormant included)
LIVE_STAGES = tuple(s for s in STAGES if s not in ("prospect", "churned"))
#: churn risk from which a customer counts as at high risk
HIGH_RISK = 0.3
COLUMNS = ["employee_id", "name", "team", "customers", "live_customers", "new_customers",
           "current_value", "clv", "churn_risk_mean", "high_risk", "tasks_open", "tasks_overdue",
           "retention_base", "retained", "retention_12m"]


def year_before(d: date) -> date:
    """The same day a year earlier (28 February for 29 February).

    >>> year_before(date(2024, 2, 29)), year_before(date(2025, 6, 30))
    (datetime.date(2023, 2, 28), datetime.date(2024, 6, 30))
    """
    try:
        return d.replace(year=d.year - 1)
    except ValueError:
        return d.replace(year=d.year - 1, day=28)


def stages_on(ws: Workspace, d: date, rules: LifecycleRules | None = None) -> Table:
    """``customer_id, stage``: the lifecycle stage of every customer known on ``d`` (by
    ``rules``, default: the workspace's)."""
    from kehu.analytics.schemes import lifecycle_rules

    eng = ws.engine
    return lifecycle(eng.table("transactions"), eng.table("customers"),
                     eng.table("churn_events"), d, rules or lifecycle_rules(ws))


def store_assignments(ws: Workspace) -> Table:
    """The app store's assignments as an Ibis table (id, customer_id, employee_id,
    valid_from, valid_to)."""
    from sqlalchemy import select

    from kehu.store.models import Assignment

    with ws.store.session() as s:
        rows = s.execute(select(Assignment.id, Assignment.customer_id, Assignment.employee_id,
                                Assignment.valid_from, Assignment.valid_to)).all()
    cols: list[Sequence[Any]] = list(zip(*rows, strict=True)) if rows else [()] * 5
    return ibis.memtable(pa.table({
        "id": pa.array(cols[0], pa.int64()), "customer_id": pa.array(cols[1], pa.string()),
        "employee_id": pa.array(cols[2], pa.string()),
        "valid_from": pa.array(cols[3], pa.date32()), "valid_to": pa.array(cols[4], pa.date32())}))


def managers_on(ws: Workspace, d: date, assignments: Table | None = None) -> Table:
    """``customer_id, employee_id`` of every customer with an account manager on ``d``."""
    a = store_assignments(ws) if assignments is None else assignments
    day = ibis.literal(d)
    cur = a.filter((a.valid_from <= day) & (a.valid_to.isnull() | (a.valid_to > day)))
    w = ibis.window(group_by=cur.customer_id, order_by=[ibis.desc(cur.valid_from),
                                                        ibis.desc(cur.id)])
    cur = cur.mutate(_rn=ibis.row_number().over(w))
    cur = cur.filter(cur._rn == 0).select("customer_id", _store=cur.employee_id)
    tracked = a.filter(a.valid_from <= day).select("customer_id").distinct().mutate(
        _tracked=ibis.literal(True))
    c = ws.engine.table("customers").select("customer_id", "account_manager_id")
    j = c.left_join(cur, "customer_id").left_join(tracked, "customer_id")
    emp = ibis.cases((j._store.notnull(), j._store),
                     (j._tracked.notnull(), ibis.null("string")),
                     else_=j.account_manager_id)
    out = j.select(customer_id=c.customer_id, employee_id=emp)
    return out.filter(out.employee_id.notnull() & (out.employee_id != ""))


def _scores(ws: Workspace, as_of: date) -> Table | None:
    from kehu.accounts.service_levels import run_scores

    sc = run_scores(ws, as_of)
    if sc is None:
        return None
    cols = {c: sc[c].cast("float64") if c in sc.columns else ibis.null("float64")
            for c in ("current_value", "clv", "churn_risk")}
    return sc.select("customer_id", **cols)


def portfolios(ws: Workspace, as_of: date | None = None, employee_id: str | None = None,
               high_risk: float = HIGH_RISK, employee_ids: Collection[str] | None = None
               ) -> pd.DataFrame:
    """One row per account manager (or only ``employee_id``, or only those of
    ``employee_ids`` who have customers or open tasks), highest current value first; the
    columns are :data:`COLUMNS`, defined in the module documentation."""
    from kehu.analytics.summary import last_transaction_day

    if not 0 <= high_risk <= 1:
        raise KehuInputError(_("The 'high_risk' parameter must be a fraction between 0 and 1. "
                               "Got {v!r} instead.").format(v=high_risk))
    eng = ws.engine
    tasks_day = as_of or date.today()
    as_of = as_of or last_transaction_day(eng)
    assignments = store_assignments(ws)
    if employee_id is not None and employee_id not in _known_employees(ws, assignments):
        raise NotFoundError(_("No account manager with id '{id}': no employee record, "
                              "customers or user with that id. Check the id (ids are "
                              "case-sensitive).").format(id=employee_id))
    now, ret, scored = _base(ws, as_of, high_risk, assignments)
    if employee_id is not None:
        now = now[now.employee_id == employee_id]
        ret = ret[ret.employee_id == employee_id]
    tasks = _tasks(ws, managers_on(ws, as_of, assignments), tasks_day)
    emp = eng.table("employees").select("employee_id", "name", "team").to_pandas()
    ids = set(now.employee_id) | set(ret.employee_id) | set(tasks.employee_id)
    if employee_id is not None:
        ids = {employee_id}
    elif employee_ids is not None:
        ids &= set(employee_ids)
    out = pd.DataFrame({"employee_id": sorted(ids)}, dtype=object)
    out = out.merge(emp.drop_duplicates("employee_id"), how="left", on="employee_id") \
        .merge(now, how="left", on="employee_id").merge(ret, how="left", on="employee_id") \
        .merge(tasks, how="left", on="employee_id")
    for c in ("customers", "live_customers", "new_customers", "tasks_open", "tasks_overdue",
              "retention_base", "retained", *(("high_risk",) if scored else ())):
        out[c] = out[c].fillna(0).astype("int64")
    if scored:
        for c in ("current_value", "clv"):
            out[c] = out[c].fillna(0.0).astype("float64")
    else:
        for c in ("current_value", "clv", "churn_risk_mean", "high_risk"):
            out[c] = float("nan")
    out["retention_12m"] = (out.retained / out.retention_base.where(out.retention_base > 0)) \
        .astype("float64")
    out = out[COLUMNS].sort_values(["current_value", "customers", "employee_id"],
                                   ascending=[False, False, True], na_position="last")
    return out.reset_index(drop=True)


#: computed portfolios kept per workspace, day and data (see :func:`_base`)
_BASE: OrderedDict[tuple[Any, ...], tuple[pd.DataFrame, pd.DataFrame, bool]] = OrderedDict()
_BASE_LOCK = threading.Lock()
_BASE_SIZE = 8


def _base(ws: Workspace, as_of: date, high_risk: float, assignments: Table
          ) -> tuple[pd.DataFrame, pd.DataFrame, bool]:
    """Every manager's current figures and 12-month retention (:func:`_current`,
    :func:`_retained`) and whether a run scored them. They scan the warehouse (seconds at
    1 M customers), so they are kept in memory, keyed by the workspace and its store, the
    day, the Delta versions of the tables they read, the lifecycle rules' version and a
    fingerprint of the store's assignments (rows, newest id, end dates): any change in those
    gives a new key.
    The tasks, which change all day, are not in here: :func:`portfolios` counts them on
    every call. Simultaneous cold calls compute once."""
    from kehu.analytics.run import SCORES_TABLE
    from kehu.analytics.schemes import get_lifecycle_rules

    a = assignments.to_pyarrow()
    ends = [d for d in a.column("valid_to").to_pylist() if d is not None]
    fingerprint = (a.num_rows, max(a.column("id").to_pylist(), default=None), len(ends),
                   max(ends, default=None))
    rules, rules_version = get_lifecycle_rules(ws)
    key = (str(ws.root), ws.store.url, as_of, high_risk, rules_version, fingerprint,
           tuple(ws.warehouse.head_version(t) for t in (
               "customers", "transactions", "churn_events", "employees", SCORES_TABLE)))
    with _BASE_LOCK:
        hit = _BASE.get(key)
        if hit is not None:
            _BASE.move_to_end(key)
            return hit
        then = year_before(as_of)
        now_stage = stages_on(ws, as_of, rules)
        scores = _scores(ws, as_of)
        now = _current(ws, managers_on(ws, as_of, assignments), now_stage, scores, then, as_of,
                       high_risk)
        ret = _retained(ws, managers_on(ws, then, assignments), then, now_stage, rules)
        _BASE[key] = (now, ret, scores is not None)
        while len(_BASE) > _BASE_SIZE:
            _BASE.popitem(last=False)
        return _BASE[key]


def _current(ws: Workspace, managers: Table, stages: Table, scores: Table | None, then: date,
             as_of: date, high_risk: float) -> pd.DataFrame:
    """Per manager: customers, live and new customers, value and churn risk."""
    tx = ws.engine.table("transactions")
    buys = tx.filter(tx.kind.isnull() | (tx.kind != "refund"))
    first = buys.group_by("customer_id").aggregate(
        _first=buys.transaction_time.min().cast("date"))
    p = managers.join(stages, "customer_id").left_join(first, "customer_id")
    p = p.select(managers.customer_id, managers.employee_id, p.stage, p._first)
    if scores is not None:
        p = p.left_join(scores, "customer_id").drop("customer_id_right")
    aggs = {
        "customers": p.count(),
        "live_customers": p.stage.isin(LIVE_STAGES).cast("int64").sum(),
        "new_customers": ((p._first > ibis.literal(then)) & (p._first <= ibis.literal(as_of)))
        .cast("int64").sum(),
    }
    if scores is not None:
        aggs.update(current_value=p.current_value.sum(), clv=p.clv.sum(),
                    churn_risk_mean=p.churn_risk.mean(),
                    high_risk=(p.churn_risk >= high_risk).cast("int64").sum())
    return p.group_by("employee_id").aggregate(**aggs).to_pandas()


def _retained(ws: Workspace, managers_then: Table, then: date, stages_now: Table,
              rules: LifecycleRules | None = None) -> pd.DataFrame:
    """Per manager a year ago: their customers live then, and how many are not churned now."""
    st = stages_on(ws, then, rules).rename(_then="stage")
    base = managers_then.join(st.filter(st._then.isin(LIVE_STAGES)), "customer_id")
    base = base.left_join(stages_now, "customer_id")
    return base.group_by(base.employee_id).aggregate(
        retention_base=base.count(),
        retained=(base.stage.fill_null("churned") != "churned").cast("int64").sum()).to_pandas()


def _known_employees(ws: Workspace, assignments: Table) -> set[str]:
    """Employee ids in the employees table, the customers' managers, the store's
    assignments or its users."""
    from sqlalchemy import select

    from kehu.store.models import User

    eng = ws.engine
    c = eng.table("customers")
    ids = set(eng.table("employees").employee_id.to_pyarrow().to_pylist())
    ids |= set(c.select("account_manager_id").distinct().to_pyarrow().column(0).to_pylist())
    ids |= set(assignments.select("employee_id").distinct().to_pyarrow().column(0).to_pylist())
    with ws.store.session() as s:
        ids |= set(s.scalars(select(User.employee_id).where(User.employee_id.is_not(None))))
    return {i for i in ids if i}


def _tasks(ws: Workspace, managers: Table, day: date) -> pd.DataFrame:
    """``employee_id, tasks_open, tasks_overdue`` from the app store's open tasks."""
    from sqlalchemy import select

    from kehu.store.models import Task, User
    from kehu.store.models.crm import OPEN_STATUSES

    with ws.store.session() as s:
        rows = s.execute(select(Task.customer_id, Task.due_date, Task.assignee_id,
                                User.employee_id).outerjoin(User, Task.assignee_id == User.id)
                         .where(Task.status.in_(OPEN_STATUSES))).all()
    t = pd.DataFrame(rows, columns=["customer_id", "due_date", "assignee_id", "employee_id"])
    if t.empty:
        return pd.DataFrame({"employee_id": pd.Series([], dtype=object),
                             "tasks_open": pd.Series([], dtype="int64"),
                             "tasks_overdue": pd.Series([], dtype="int64")})
    orphans = t.assignee_id.isna() & t.customer_id.notna()
    if orphans.any():
        ids = sorted(set(t.customer_id[orphans]))
        m = managers.filter(managers.customer_id.isin(ids)).to_pandas()
        t.loc[orphans, "employee_id"] = t.customer_id[orphans].map(
            dict(zip(m.customer_id, m.employee_id, strict=True)))
    t = t[t.employee_id.notna()]
    overdue = t.due_date.map(lambda d: d is not None and not pd.isna(d) and d < day)
    return (t.assign(tasks_overdue=overdue.astype("int64"))
            .groupby("employee_id", as_index=False)
            .agg(tasks_open=("customer_id", "size"), tasks_overdue=("tasks_overdue", "sum")))


def warm_portfolios(ws: Workspace) -> None:
    """Compute today's portfolios once (kept in memory: see :func:`_base`), so the team page
    and the account managers' dashboards answer at once; nothing before data is loaded.

    >>> import tempfile
    >>> from kehu.workspace import Workspace
    >>> warm_portfolios(Workspace.init(tempfile.mkdtemp()))
    """
    try:
        portfolios(ws)
    except (NotFoundError, KehuInputError):   # no customers or transactions yet
        return


def team_of(ws: Workspace, employee_id: str) -> tuple[str | None, set[str]]:
    """The employee's team (None when unknown) and its members: the employees of that team
    and those reporting to ``employee_id``, the employee included."""
    if ws.warehouse.version("employees") is None:
        return None, {employee_id}
    e = ws.engine.table("employees")
    cols = set(e.columns)
    rows = e.filter(e.employee_id == employee_id).select(
        team=e.team if "team" in cols else ibis.null("string")).to_pyarrow().to_pylist()
    team = rows[0]["team"] if rows and rows[0]["team"] else None
    cond = ibis.literal(False)
    if team is not None:
        cond = cond | (e.team == team)
    if "manager_id" in cols:
        cond = cond | (e.manager_id == employee_id)
    members = set(e.filter(cond).employee_id.to_pyarrow().to_pylist())
    return team, {str(m) for m in members if m} | {employee_id}


def teams(ws: Workspace) -> list[tuple[str, set[str]]]:
    """Every team in the employees table with its members' employee ids, by team name."""
    if ws.warehouse.version("employees") is None:
        return []
    e = ws.engine.table("employees")
    if "team" not in e.columns:
        return []
    out: dict[str, set[str]] = {}
    for r in e.select("employee_id", "team").to_pyarrow().to_pylist():
        if r["team"] and r["employee_id"]:
            out.setdefault(str(r["team"]), set()).add(str(r["employee_id"]))
    return sorted(out.items())
