"""Running alert rules: firings become tasks in the app store for the customer's account
manager (or a team queue), once per condition, with an e-mail digest per person.

**Who gets the task.** A rule with ``assign_to: account_manager`` (the default) routes to the
customer's current account manager: the app-store assignment in force today
(:func:`kehu.store.services.assign`), else the warehouse ``customers.account_manager_id``;
that employee's kehu user (``User.employee_id``, active) is the assignee. Without one the
task goes to a team queue (``Task.team``): the rule's ``fallback_team``, else the account
manager's team in the warehouse ``employees`` table, else ``unassigned``. A rule with
``assign_to: <team>`` always goes to that team's queue.

**Once per condition.** A condition is identified by its dedup key ``rule|kind|customer|
object`` (:attr:`~kehu.alerts.evaluate.Firing.dedup_key`):

- while a task for the key is open or snoozed it does not fire again (the database refuses a
  second one too: a unique index on the key over open and snoozed tasks; a concurrent run
  that loses the race counts the condition as already open);
- *occurrences* — a contract's maturity on its end date, a birthday or an anniversary in a
  given year, a churn-risk rise or a tier change between two given runs — never fire again
  once a task existed, whatever became of it;
- *states* — usage down, a complaint unresolved, an invoice overdue — fire again after their
  task was closed (done, dismissed or cancelled) only when the condition still holds and the
  task was closed at least the rule's ``refire_days`` days before today.

**States of a task.** ``open`` → ``done`` | ``dismissed`` | ``cancelled`` (closed), or
``snoozed`` until a day: the next run on or after that day reopens it (``wake_snoozed``).

**Notification.** After a run, every assignee with open alert tasks not notified yet (from
rules with ``notify_email``) and an e-mail address gets one digest through ``notify(recipient,
subject, body)`` in their language; the tasks get ``notified_at``. A failed send is reported
and retried by the next run. In the app, the open tasks list is the notification.
"""

from __future__ import annotations

import contextvars
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError

from kehu.alerts.evaluate import Firing, display_facts, evaluate, render
from kehu.alerts.spec import AlertRule, AlertRules
from kehu.analytics.schemes import tier_scheme
from kehu.analytics.tiers import TierScheme
from kehu.errors import KehuInputError, NotFoundError, StoreError
from kehu.i18n import N_, _, set_locale
from kehu.store.models import Assignment, AuditEntry, Definition, Task, User
from kehu.store.models.crm import OPEN_STATUSES
from kehu.store.services import DefinitionIn, complete_task, save_definition

if TYPE_CHECKING:
    from kehu.store.db import AppStore
    from kehu.warehouse import Engine
    from kehu.workspace import Workspace

Notify = Callable[[str, str, str], None]
T = TypeVar("T")
DEFAULT_QUEUE = "unassigned"
ORIGIN = "alert:"
CHUNK = 500
PRIORITY_LABELS = {"low": N_("low"), "normal": N_("normal"), "high": N_("high")}
_RANK = {"high": 0, "normal": 1, "low": 2}


@dataclass
class AlertReport:
    """What a run did: conditions that hold (``fired``), tasks ``created``, conditions with a
    task still open or snoozed (``already_open``) and conditions not fired again because
    their occurrence was handled or their task was closed within the re-fire interval
    (``suppressed``); counts of created tasks per rule, per assignee (user name) and per team
    queue."""

    as_of: date
    today: date
    rules: int = 0
    fired: int = 0
    created: int = 0
    already_open: int = 0
    suppressed: int = 0
    woken: int = 0
    notified: int = 0
    by_rule: dict[str, dict[str, int]] = field(default_factory=dict)
    by_assignee: dict[str, int] = field(default_factory=dict)
    by_team: dict[str, int] = field(default_factory=dict)
    notify_failed: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    task_ids: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def _count(self, rule: str, what: str) -> None:
        r = self.by_rule.setdefault(rule, {"fired": 0, "created": 0, "already_open": 0,
                                           "suppressed": 0})
        r[what] += 1
        setattr(self, what, getattr(self, what) + 1)


# -- rules in force -------------------------------------------------------------------------


def saved_rules(store: AppStore) -> AlertRules | None:
    """The alert rules saved in the app store (in the order first saved); None if none."""
    with store.session() as s:
        defs = list(s.scalars(select(Definition).where(Definition.kind == "alert_rule")
                              .order_by(Definition.id)))
    if not defs:
        return None
    return AlertRules.parse([d.spec for d in defs], _("saved alert rules"))


def save_rules(store: AppStore, rules: AlertRules, actor: str) -> list[Definition]:
    """Save each rule as an ``alert_rule`` definition (a new version when the name exists).
    Rules saved before and not in ``rules`` stay; save one with ``enabled: false`` to stop
    it."""
    return [save_definition(store, DefinitionIn(kind="alert_rule", name=r.name,
                                                description=r.description, spec=spec), actor)
            for r, spec in zip(rules.rules, rules.dump(), strict=True)]


def rules_in_force(store: AppStore) -> AlertRules:
    """The saved rules, else the ones shipped with kehu."""
    return saved_rules(store) or AlertRules.default()


# -- task states ----------------------------------------------------------------------------


def snooze_task(store: AppStore, task_id: int, until: date, actor: str,
                today: date | None = None) -> Task:
    """Set an open (or snoozed) task aside until ``until`` (after today): the first alert run
    on or after that day reopens it."""
    today = today or date.today()
    if until <= today:
        raise KehuInputError(_("The 'until' date must be after today ({today}). Got {until} "
                               "instead.").format(today=today, until=until))
    with store.session() as s:
        row = s.get(Task, task_id)
        if row is None:
            raise NotFoundError(_("No task with id {id}.").format(id=task_id))
        if row.status not in OPEN_STATUSES:
            raise KehuInputError(_("Task {id} is already {status}.").format(
                id=task_id, status=row.status))
        row.status = "snoozed"
        row.snoozed_until = until
        s.add(AuditEntry(actor=actor, action="snooze", object_type="task",
                         object_id=str(task_id), details={"until": until.isoformat()}))
    return row


def dismiss_task(store: AppStore, task_id: int, actor: str) -> Task:
    """Close a task without doing it (the condition was not worth acting on)."""
    return complete_task(store, task_id, actor, status="dismissed")


def wake_snoozed(store: AppStore, today: date, actor: str = "system") -> int:
    """Reopen the snoozed tasks whose day has come; returns how many."""
    with store.session() as s:
        rows = list(s.scalars(select(Task).where(Task.status == "snoozed",
                                                 Task.snoozed_until <= today)))
        for row in rows:
            row.status = "open"
            row.snoozed_until = None
            s.add(AuditEntry(actor=actor, action="wake", object_type="task",
                             object_id=str(row.id)))
    return len(rows)


def find_user(store: AppStore, username: str) -> User:
    with store.session() as s:
        u = s.scalars(select(User).where(User.username == username)).first()
    if u is None:
        raise NotFoundError(_("No user named '{name}'.").format(name=username))
    return u


def task_rows(store: AppStore, tasks: Iterable[Task]) -> list[dict[str, Any]]:
    """Tasks as plain rows for a list (the assignee's user name instead of their id)."""
    tasks = list(tasks)
    ids = {t.assignee_id for t in tasks if t.assignee_id is not None}
    names: dict[int, str] = {}
    if ids:
        with store.session() as s:
            names = {i: n for i, n in s.execute(select(User.id, User.username)
                                                .where(User.id.in_(ids)))}
    return [{"id": t.id, "status": t.status, "due_date": t.due_date, "priority": t.priority,
             "customer_id": t.customer_id, "assignee": names.get(t.assignee_id or -1),
             "team": t.team, "title": t.title, "origin": t.origin,
             "snoozed_until": t.snoozed_until} for t in tasks]


# -- the run --------------------------------------------------------------------------------


def run_alerts(ws: Workspace, rules: AlertRules | Sequence[AlertRule] | None = None,
               as_of: date | None = None, actor: str = "system", notify: Notify | None = None,
               today: date | None = None) -> AlertReport:
    """Evaluate the rules (default: :func:`rules_in_force`) as of ``as_of`` (default: the
    last transaction day, else the last invoice day, else today), create the tasks, reopen
    snoozed tasks whose day has come and send the digests. ``today`` (default: the calendar
    day) times snoozing and re-firing."""
    from kehu.risk.service import default_as_of

    store = ws.store
    if rules is None:
        rs = rules_in_force(store).enabled()
    else:
        rs = [r for r in (rules.rules if isinstance(rules, AlertRules) else rules) if r.enabled]
    today = today or date.today()
    as_of = as_of or default_as_of(ws.engine)
    report = AlertReport(as_of=as_of, today=today, rules=len(rs))
    report.woken = wake_snoozed(store, today, actor)
    fired: list[tuple[AlertRule, Firing]] = []
    scheme = tier_scheme(ws)
    for rule in rs:
        out = evaluate(ws.engine, rule, as_of, scheme)
        if out.note:
            report.notes.append(_("Rule {name} skipped: {why}").format(name=rule.name,
                                                                       why=out.note))
        report.by_rule[rule.name] = {"fired": 0, "created": 0, "already_open": 0,
                                     "suppressed": 0}
        for f in out.firings:
            fired.append((rule, f))
            report._count(rule.name, "fired")
    if fired:
        _create_tasks(ws, fired, report, as_of, today, actor)
    if notify is not None:
        _notify(store, rs, notify, report)
    with store.session() as s:
        s.add(AuditEntry(actor=actor, action="alerts_run", object_type="alerts",
                         object_id=as_of.isoformat(),
                         details={k: getattr(report, k) for k in (
                             "fired", "created", "already_open", "suppressed", "woken",
                             "notified")}))
    return report


@dataclass
class _Route:
    assignee: User | None
    team: str | None


def _chunks(items: Sequence[T], n: int = CHUNK) -> Iterable[Sequence[T]]:
    for i in range(0, len(items), n):
        yield items[i:i + n]


def _routes(ws: Workspace, fired: list[tuple[AlertRule, Firing]], today: date
            ) -> dict[tuple[str, str], _Route]:
    """(rule name, customer id) -> the assignee or team queue."""
    store = ws.store
    wanted = sorted({f.customer_id for r, f in fired if r.assign_to == "account_manager"})
    manager: dict[str, str] = {}
    with store.session() as s:
        for part in _chunks(wanted):
            q = (select(Assignment.customer_id, Assignment.employee_id)
                 .where(Assignment.customer_id.in_(part), Assignment.valid_from <= today,
                        or_(Assignment.valid_to.is_(None), Assignment.valid_to > today))
                 .order_by(Assignment.valid_from, Assignment.id))
            manager.update({c: e for c, e in s.execute(q)})
    for _r, f in fired:
        if f.customer_id not in manager and f.account_manager_id:
            manager[f.customer_id] = str(f.account_manager_id)
    employees = sorted(set(manager.values()))
    users: dict[str, User] = {}
    with store.session() as s:
        for part in _chunks(employees):
            for u in s.scalars(select(User).where(User.employee_id.in_(part),
                                                  User.is_active.is_(True))
                               .order_by(User.id.desc())):
                users[str(u.employee_id)] = u  # the oldest account wins
    teams = _teams(ws.engine, [e for e in employees if e not in users])
    out: dict[tuple[str, str], _Route] = {}
    for rule, f in fired:
        if rule.assign_to != "account_manager":
            out[(rule.name, f.customer_id)] = _Route(None, rule.assign_to)
            continue
        emp = manager.get(f.customer_id)
        user = users.get(emp) if emp else None
        if user is not None:
            out[(rule.name, f.customer_id)] = _Route(user, None)
        else:
            team = rule.fallback_team or (teams.get(emp) if emp else None) or DEFAULT_QUEUE
            out[(rule.name, f.customer_id)] = _Route(None, team)
    return out


def _teams(eng: Engine, employee_ids: list[str]) -> dict[str, str]:
    if not employee_ids:
        return {}
    e = eng.table("employees")
    e = e.filter(e.employee_id.isin(employee_ids) & e.team.notnull())
    rows = eng.execute_arrow(e.select("employee_id", "team")).to_pylist()
    return {str(r["employee_id"]): str(r["team"]) for r in rows}


def _existing(store: AppStore, keys: list[str]) -> dict[str, list[tuple[str, datetime | None]]]:
    """dedup key -> [(status, closed or created at)] of the tasks it already has."""
    found: dict[str, list[tuple[str, datetime | None]]] = defaultdict(list)
    with store.session() as s:
        for part in _chunks(keys):
            q = select(Task.dedup_key, Task.status, Task.completed_at, Task.created_at).where(
                Task.dedup_key.in_(part))
            for key, status, done_at, created in s.execute(q):
                found[str(key)].append((status, done_at or created))
    return found


def _decide(rule: AlertRule, history: list[tuple[str, datetime | None]], today: date) -> str:
    """``create``, ``already_open`` or ``suppressed`` for a condition with this history."""
    if any(st in OPEN_STATUSES for st, _at in history):
        return "already_open"
    if not history:
        return "create"
    if rule.occurrence:
        return "suppressed"
    last = max((at for _st, at in history if at is not None), default=None)
    refire = int(getattr(rule, "refire_days", 0))
    if last is not None and (today - _local_day(last)).days < refire:
        return "suppressed"
    return "create"


def _local_day(at: datetime) -> date:
    """The local calendar day of a stored time (SQLite gives naive UTC times back)."""
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone().date()


def _in_locale(locale: str, fn: Callable[[], T]) -> T:
    """``fn()`` with ``locale`` in force, without changing the caller's locale."""
    def run() -> T:
        set_locale(locale)
        return fn()

    return contextvars.copy_context().run(run)


def _text(rule: AlertRule, f: Firing, as_of: date, scheme: TierScheme | None = None
          ) -> tuple[str, str]:
    values = display_facts(f, as_of, scheme)
    title = render(rule.title or _(rule.default_title()), values)[:300]
    lines = [_("Alert rule {rule} ({kind}) as of {as_of}.").format(rule=rule.name,
                                                                    kind=rule.kind,
                                                                    as_of=as_of)]
    if rule.description:
        lines.append(rule.description)
    lines += [f"{k}: {render('{v}', {'v': v})}" for k, v in values.items()
              if k not in ("rule", "as_of")]
    return title, "\n".join(lines)


def _create_tasks(ws: Workspace, fired: list[tuple[AlertRule, Firing]], report: AlertReport,
                  as_of: date, today: date, actor: str) -> None:
    store = ws.store
    history = _existing(store, [f.dedup_key for _r, f in fired])
    todo = []
    for rule, f in fired:
        verdict = _decide(rule, history.get(f.dedup_key, []), today)
        if verdict == "create":
            todo.append((rule, f))
        else:
            report._count(rule.name, verdict)
    if not todo:
        return
    routes = _routes(ws, todo, today)
    company = ws.settings.company.locale
    scheme = tier_scheme(ws)
    new: list[tuple[dict[str, Any], str]] = []
    for rule, f in todo:
        route = routes[(rule.name, f.customer_id)]
        locale = route.assignee.locale if route.assignee is not None else company
        title, description = _in_locale(locale, partial(_text, rule, f, as_of, scheme))
        new.append(({"customer_id": f.customer_id, "title": title, "description": description,
                     "assignee_id": route.assignee.id if route.assignee else None,
                     "team": route.team, "due_date": as_of + timedelta(days=rule.due_in_days),
                     "priority": rule.priority, "origin": ORIGIN + rule.name,
                     "dedup_key": f.dedup_key, "status": "open"},
                    route.assignee.username if route.assignee else ""))
    for part in _chunks(new):
        try:
            ids = _insert(store, [kw for kw, _u in part], actor)
            done = list(zip(part, ids, strict=True))
        except IntegrityError:
            # another run created some of these meanwhile: one by one, losers count as open
            done = []
            for item in part:
                try:
                    done.append((item, _insert(store, [item[0]], actor)[0]))
                except IntegrityError as exc:
                    if not _has_open(store, str(item[0]["dedup_key"])):
                        raise StoreError(_("Cannot create the alert task {key}: {err}").format(
                            key=item[0]["dedup_key"], err=str(exc).split("\n")[0])) from exc
                    report._count(str(item[0]["origin"])[len(ORIGIN):], "already_open")
        for (kw, username), task_id in done:
            report._count(str(kw["origin"])[len(ORIGIN):], "created")
            report.task_ids.append(task_id)
            if username:
                report.by_assignee[username] = report.by_assignee.get(username, 0) + 1
            else:
                team = str(kw["team"])
                report.by_team[team] = report.by_team.get(team, 0) + 1


def _insert(store: AppStore, rows: list[dict[str, Any]], actor: str) -> list[int]:
    """Insert the tasks and their audit entries in one transaction; their ids."""
    with store.session() as s:
        tasks = [Task(**kw) for kw in rows]
        s.add_all(tasks)
        s.flush()
        s.add_all([AuditEntry(actor=actor, action="create", object_type="task",
                              object_id=str(t.id), details={"origin": t.origin,
                                                            "dedup_key": t.dedup_key})
                   for t in tasks])
        return [t.id for t in tasks]


def _has_open(store: AppStore, key: str) -> bool:
    with store.session() as s:
        return s.scalars(select(Task.id).where(Task.dedup_key == key,
                                               Task.status.in_(OPEN_STATUSES))).first() \
            is not None


# -- notification ---------------------------------------------------------------------------


def digest(user: User, tasks: list[Task]) -> tuple[str, str]:
    """Subject and body of the e-mail telling ``user`` about ``tasks`` (current language)."""
    tasks = sorted(tasks, key=lambda t: (_RANK.get(t.priority, 1), t.due_date or date.max,
                                         t.id))
    subject = _("kehu: new alert tasks for you ({n})").format(n=len(tasks))
    lines = [_("Hello {name},").format(name=user.display_name or user.username), "",
             _("Alert rules created these tasks for you (due date, priority, title):"), ""]
    for t in tasks:
        lines.append(f"- {t.due_date or '-'}  [{_(PRIORITY_LABELS.get(t.priority, t.priority))}]"
                     f"  {t.title}  (#{t.id})")
    lines += ["", _("See and update them in kehu: kehu tasks list --assignee {user}").format(
        user=user.username)]
    return subject, "\n".join(lines)


def _notify(store: AppStore, rules: list[AlertRule], notify: Notify,
            report: AlertReport) -> None:
    origins = [ORIGIN + r.name for r in rules if r.notify_email]
    if not origins:
        return
    with store.session() as s:
        tasks = list(s.scalars(select(Task).where(
            Task.status == "open", Task.notified_at.is_(None), Task.assignee_id.is_not(None),
            Task.origin.in_(origins)).order_by(Task.id)))
        by_user: dict[int, list[Task]] = defaultdict(list)
        for t in tasks:
            by_user[int(t.assignee_id or 0)].append(t)
        users = {u.id: u for u in s.scalars(select(User).where(User.id.in_(list(by_user))))}
    for uid, items in by_user.items():
        user = users.get(uid)
        if user is None or not user.email or not user.is_active:
            continue
        subject, body = _in_locale(user.locale, partial(digest, user, items))
        try:
            notify(user.email, subject, body)
        except Exception as exc:  # a failed send must not lose the run: retried next time
            report.notify_failed[user.username] = f"{exc.__class__.__name__}: {exc}"
            continue
        now = datetime.now(UTC)
        with store.session() as s:
            for t in s.scalars(select(Task).where(Task.id.in_([t.id for t in items]))):
                t.notified_at = now
        report.notified += 1
