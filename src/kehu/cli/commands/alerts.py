"""``kehu alerts rules|run`` and ``kehu tasks list|done|snooze|dismiss``: alert rules that turn
conditions into tasks for account managers, and the tasks themselves."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from kehu.cli.common import JsonOpt, WorkspaceOpt, open_workspace, parse_date
from kehu.cli.output import console, emit_json
from kehu.errors import KehuInputError
from kehu.i18n import _

app = typer.Typer(help="Alert rules: maturity, usage drop, churn risk, tiers, complaints, "
                  "overdue payments, birthdays — tasks for the account manager.",
                  no_args_is_help=True)
tasks_app = typer.Typer(help="Tasks: list them, mark them done, snooze or dismiss them.",
                        no_args_is_help=True)
ACTOR = "cli"
TaskId = Annotated[int, typer.Argument(help="Task id (see 'kehu tasks list').")]


@app.command("rules")
def rules_cmd(
    file: Annotated[Path | None, typer.Option("--file", help="Alert rules (YAML) to validate "
                                              "and save in the app store.")] = None,
    workspace: WorkspaceOpt = None, json: JsonOpt = False,
) -> None:
    """The alert rules in force (saved, else the defaults); with --file, save new ones."""
    from kehu.alerts import AlertRules, rules_in_force, save_rules

    ws = open_workspace(workspace)
    if file is not None:
        save_rules(ws.store, AlertRules.load(file), ACTOR)
    rs = rules_in_force(ws.store)
    ws.close()
    if json:
        emit_json({"saved": file is not None, "rules": rs.dump()})
        return
    if file is not None:
        console.print(_("Saved {n} alert rules from {path}.").format(n=len(rs.rules), path=file))
    tab = Table(title=_("Alert rules"))
    for label in (_("rule"), _("kind"), _("enabled"), _("priority"), _("assign to"),
                  _("condition")):
        tab.add_column(label)
    common = {"name", "kind", "enabled", "priority", "assign_to", "title", "description",
              "due_in_days", "fallback_team", "notify_email", "skip_churned"}
    for r in rs.rules:
        cond = ", ".join(f"{k}={v}" for k, v in r.model_dump(exclude_defaults=True).items()
                         if k not in common)
        tab.add_row(r.name, r.kind, "✓" if r.enabled else "-", r.priority, r.assign_to, cond)
    console.print(tab)


@app.command("run")
def run_cmd(
    workspace: WorkspaceOpt = None,
    as_of: Annotated[str | None, typer.Option("--as-of", help="Day to look from (default: the "
                                              "last transaction day).")] = None,
    json: JsonOpt = False,
) -> None:
    """Evaluate the alert rules and create the tasks (once per condition)."""
    from kehu.alerts import run_alerts
    from kehu.alerts.notify import email_notifier

    ws = open_workspace(workspace)
    rep = run_alerts(ws, as_of=parse_date("--as-of", as_of), actor=ACTOR,
                     notify=email_notifier(ws.settings.channels))
    ws.close()
    if json:
        emit_json(rep.to_dict())
        return
    console.print(_("Alerts as of {d}: {f} conditions hold; {c} new tasks, {o} already open, "
                    "{s} handled before; {w} snoozed tasks reopened.").format(
        d=rep.as_of, f=f"{rep.fired:,}", c=f"{rep.created:,}", o=f"{rep.already_open:,}",
        s=f"{rep.suppressed:,}", w=rep.woken))
    for note in rep.notes:
        console.print(f"  {note}")
    tab = Table(title=_("Alerts per rule"))
    for label in (_("rule"), _("fired"), _("new tasks"), _("already open"),
                  _("handled before")):
        tab.add_column(label)
    for name, c in rep.by_rule.items():
        tab.add_row(name, f"{c['fired']:,}", f"{c['created']:,}", f"{c['already_open']:,}",
                    f"{c['suppressed']:,}")
    console.print(tab)
    who = [(_("user {name}").format(name=k), v) for k, v in rep.by_assignee.items()]
    who += [(_("team {name}").format(name=k), v) for k, v in rep.by_team.items()]
    if who:
        console.print(_("New tasks for: {who}.").format(
            who=", ".join(f"{k} {v:,}" for k, v in sorted(who, key=lambda x: -x[1]))))


@tasks_app.command("list")
def list_cmd(
    workspace: WorkspaceOpt = None,
    assignee: Annotated[str | None, typer.Option("--assignee", help="User name.")] = None,
    team: Annotated[str | None, typer.Option("--team", help="Team queue.")] = None,
    status: Annotated[str, typer.Option("--status", help="open, snoozed, done, dismissed, "
                                        "cancelled or all.")] = "open",
    json: JsonOpt = False,
) -> None:
    """Tasks, soonest due first (default: the open ones)."""
    from kehu.alerts.service import find_user, task_rows
    from kehu.store.models.crm import TASK_STATUSES
    from kehu.store.services import list_tasks

    if status != "all" and status not in TASK_STATUSES:
        raise KehuInputError(_("The '{name}' parameter must be one of {opts}. Got {v!r} "
                               "instead.").format(name="--status",
                                                  opts=", ".join((*TASK_STATUSES, "all")),
                                                  v=status))
    ws = open_workspace(workspace)
    uid = find_user(ws.store, assignee).id if assignee else None
    rows = task_rows(ws.store, list_tasks(ws.store, assignee_id=uid,
                                          status=None if status == "all" else status,
                                          team=team))
    ws.close()
    if json:
        emit_json({"tasks": rows})
        return
    tab = Table(title=_("Tasks ({n})").format(n=len(rows)))
    for label in (_("id"), _("status"), _("due"), _("priority"), _("customer"),
                  _("assignee"), _("title")):
        tab.add_column(label)
    for r in rows:
        tab.add_row(str(r["id"]), r["status"], _cell(r["due_date"]), r["priority"],
                    _cell(r["customer_id"]), r["assignee"] or _cell(r["team"]), r["title"])
    console.print(tab)


def _cell(v: Any) -> str:
    return "" if v is None else str(v)


@tasks_app.command("done")
def done_cmd(task_id: TaskId, workspace: WorkspaceOpt = None) -> None:
    """Mark a task done."""
    from kehu.store.services import complete_task

    ws = open_workspace(workspace)
    complete_task(ws.store, task_id, ACTOR)
    ws.close()
    console.print(_("Task {id} done.").format(id=task_id))


@tasks_app.command("snooze")
def snooze_cmd(
    task_id: TaskId,
    until: Annotated[str, typer.Option("--until", help="Day the task comes back (after "
                                       "today).")],
    workspace: WorkspaceOpt = None,
) -> None:
    """Set a task aside until a day; the next alert run on or after it reopens the task."""
    from kehu.alerts import snooze_task

    day = parse_date("--until", until)
    assert day is not None
    ws = open_workspace(workspace)
    snooze_task(ws.store, task_id, day, ACTOR)
    ws.close()
    console.print(_("Task {id} snoozed until {d}.").format(id=task_id, d=day))


@tasks_app.command("dismiss")
def dismiss_cmd(task_id: TaskId, workspace: WorkspaceOpt = None) -> None:
    """Close a task without acting on it."""
    from kehu.alerts import dismiss_task

    ws = open_workspace(workspace)
    dismiss_task(ws.store, task_id, ACTOR)
    ws.close()
    console.print(_("Task {id} dismissed.").format(id=task_id))


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="alerts")
    root.add_typer(tasks_app, name="tasks")
