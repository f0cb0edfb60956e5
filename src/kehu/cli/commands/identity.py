"""``kehu identity run|review|decide|reopen|undo|status``: identity resolution across source
systems — one stable kehu customer key per person, a review queue for uncertain pairs, and a
journal of every merge that can be undone. Thin over :mod:`kehu.identity.service`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from kehu.cli.common import JsonOpt, WorkspaceOpt, cli_actor, open_workspace, require_positive
from kehu.cli.output import console, emit_json
from kehu.errors import KehuInputError
from kehu.i18n import _

app = typer.Typer(help="Identity resolution: link and deduplicate customers across source "
                       "systems into stable kehu customer keys.", no_args_is_help=True)
SpecOpt = Annotated[Path | None, typer.Option(
    "--spec", help="Identity spec (YAML; default: identity.yaml in the workspace, else the "
    "defaults).")]


def _show(values: dict[str, Any]) -> str:
    keys = ("name", "birth_date", "phone", "email", "id_number", "city", "source_system")
    return " · ".join(str(values[k]) for k in keys if values.get(k) not in (None, ""))


@app.command("run")
def run_cmd(workspace: WorkspaceOpt = None, spec: SpecOpt = None,
            retrain: Annotated[bool, typer.Option(
                "--retrain", help="Train the model again even if the spec and the fields "
                "are unchanged.")] = False,
            json: JsonOpt = False) -> None:
    """Resolve the warehouse's customers into kehu keys (respects every decision taken)."""
    from kehu.identity import service

    ws = open_workspace(workspace)
    res = service.run(ws, service.load_spec(ws, spec), actor=cli_actor(), retrain=retrain)
    if json:
        emit_json(res)
        return
    console.print(_("Identity run #{id}: {r} records → {c} customers ({t:.1f} s, model {m})."
                    ).format(id=res.run_id, r=f"{res.records:,}", c=f"{res.customers:,}",
                             t=res.seconds, m=_("trained") if res.trained else _("reused")))
    console.print(_("New keys {n}, merges {m}, splits {s}; {q} pairs wait for review.").format(
        n=f"{res.new_keys:,}", m=f"{res.merges:,}", s=f"{res.splits:,}",
        q=f"{res.review_pairs:,}"))
    if res.conflicts:
        console.print(_("{n} merge decisions could not be kept (they would join records "
                        "decided to be kept apart).").format(n=res.conflicts))


@app.command("review")
def review_cmd(workspace: WorkspaceOpt = None,
               status: Annotated[str, typer.Option(
                   "--status", help="pending, merge, keep_apart or all.")] = "pending",
               top: Annotated[int, typer.Option("--top", help="Pairs to show.")] = 20,
               json: JsonOpt = False) -> None:
    """The review queue: uncertain pairs, most likely matches first."""
    from kehu.identity import service

    require_positive("--top", top)
    ws = open_workspace(workspace)
    items = service.queue(ws, status=status, limit=top)
    if json:
        emit_json(items)
        return
    if not items:
        console.print(_("No pairs with status {s}.").format(s=status))
        return
    tab = Table(title=_("Review queue ({s})").format(s=status))
    for label in (_("pair"), _("probability"), _("record"), _("other record"), _("status")):
        tab.add_column(label)
    for it in items:
        p = "" if it.match_probability is None else f"{it.match_probability:.3f}"
        tab.add_row(str(it.pair_id), p,
                    f"{it.record_id_l} [{it.kehu_key_l}]\n{_show(it.left)}",
                    f"{it.record_id_r} [{it.kehu_key_r}]\n{_show(it.right)}", it.status)
    console.print(tab)
    console.print(_("Decide with: kehu identity decide PAIR merge|keep_apart"))


@app.command("decide")
def decide_cmd(
    pair: Annotated[str, typer.Argument(help="Pair number from the queue, or two customer "
                                        "ids joined by a comma (C1,W7).")],
    decision: Annotated[str, typer.Argument(help="merge or keep_apart.")],
    workspace: WorkspaceOpt = None,
    note: Annotated[str | None, typer.Option("--note", help="Why (kept with the "
                                             "decision).")] = None,
    json: JsonOpt = False,
) -> None:
    """Merge two records' customers or keep them apart; takes effect at once and on every
    later run."""
    from kehu.identity import service

    if decision not in ("merge", "keep_apart"):
        raise KehuInputError(_("The decision must be 'merge' or 'keep_apart'. Got {v!r} "
                               "instead.").format(v=decision))
    ws = open_workspace(workspace)
    if "," in pair:
        a, _sep, b = pair.partition(",")
        pair_id = service.pair_for(ws, a.strip(), b.strip(), actor=cli_actor())
    else:
        try:
            pair_id = int(pair)
        except ValueError:
            raise KehuInputError(_("PAIR must be a pair number or two customer ids like "
                                   "C1,W7. Got {v!r} instead.").format(v=pair)) from None
    res = service.decide(ws, pair_id, decision, actor=cli_actor(),  # type: ignore[arg-type]
                         note=note)
    if json:
        emit_json(res)
        return
    console.print(_("Pair #{id}: {d}; {n} records changed key ({keys}).").format(
        id=res.pair_id, d=res.status, n=res.changed_records, keys=", ".join(res.keys)))
    if res.journal_id:
        console.print(_("Journal entry #{j}; undo with: kehu identity undo {j}").format(
            j=res.journal_id))


@app.command("reopen")
def reopen_cmd(pair: Annotated[int, typer.Argument(help="Pair number from the queue.")],
               workspace: WorkspaceOpt = None, json: JsonOpt = False) -> None:
    """Put a decided pair back in the queue (a decision that changed no key, such as keeping
    apart two records that had two keys already); a decision that changed keys is undone
    with 'kehu identity undo' instead."""
    from kehu.identity import service

    ws = open_workspace(workspace)
    res = service.reopen(ws, pair, actor=cli_actor())
    if json:
        emit_json(res)
        return
    console.print(_("Pair #{id} reopened: it waits for a decision again; no key changed.")
                  .format(id=res.pair_id))


@app.command("undo")
def undo_cmd(entry: Annotated[int, typer.Argument(help="Journal entry number.")],
             workspace: WorkspaceOpt = None, json: JsonOpt = False) -> None:
    """Undo a merge or split from the journal: its records get their previous keys back."""
    from kehu.identity import service

    ws = open_workspace(workspace)
    res = service.undo(ws, entry, actor=cli_actor())
    if json:
        emit_json(res)
        return
    console.print(_("Entry #{e} undone (entry #{n}): {r} records have their previous keys "
                    "back.").format(e=entry, n=res.id, r=len(res.after)))


@app.command("status")
def status_cmd(workspace: WorkspaceOpt = None,
               journal: Annotated[bool, typer.Option(
                   "--journal", help="List the latest changes of keys too.")] = False,
               key: Annotated[str | None, typer.Option(
                   "--key", help="Only journal entries naming this kehu key.")] = None,
               top: Annotated[int, typer.Option("--top", help="Journal entries to show.")] = 20,
               json: JsonOpt = False) -> None:
    """Last run, customers and records, the queue, and (with --journal) the merge journal."""
    from kehu.identity import service

    require_positive("--top", top)
    ws = open_workspace(workspace)
    rep = service.status(ws)
    entries = service.journal(ws, limit=top, key=key) if journal or key or json else []
    if json:
        emit_json({"status": rep, "journal": entries})
        return
    if rep.last_run is None:
        console.print(_("Identity resolution has not run yet: kehu identity run"))
    else:
        r = rep.last_run
        console.print(_("Last run #{id} at {at} by {who}: {rec} records → {c} customers.")
                      .format(id=r["id"], at=r["finished_at"], who=r["actor"],
                              rec=f"{r['records']:,}", c=f"{r['customers']:,}"))
    console.print(_("Now: {rec} records, {c} customers; review queue {p} pending, {m} merged, "
                    "{a} kept apart; {j} journal entries.").format(
        rec=f"{rep.records:,}", c=f"{rep.customers:,}", p=rep.pending, m=rep.merged_pairs,
        a=rep.kept_apart_pairs, j=rep.journal_entries))
    if entries:
        tab = Table(title=_("Merge journal"))
        for label in (_("entry"), _("when"), _("who"), _("action"), _("key"), _("records"),
                      _("undone")):
            tab.add_column(label)
        for e in entries:
            what = f"{e.action} ({e.kind})"
            if e.retired:
                what += " ← " + ", ".join(e.retired)
            tab.add_row(str(e.id), str(e.at)[:19], e.actor, what, e.kehu_key,
                        str(e.records), str(e.undone_at)[:19] if e.undone_at else "")
        console.print(tab)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="identity")
