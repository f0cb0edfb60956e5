"""``kehu quality``: the data-quality report."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from kehu.cli.common import JsonOpt, WorkspaceOpt, open_workspace
from kehu.cli.output import console, emit_json
from kehu.i18n import _


def quality(
    workspace: WorkspaceOpt = None,
    entity: Annotated[list[str] | None, typer.Option(help="Only these entities.")] = None,
    json: JsonOpt = False,
) -> None:
    """Data-quality report: completeness, validity, duplicates, orphans, outliers, coverage."""
    from kehu.model import entity as lookup
    from kehu.quality import build_report

    ws = open_workspace(workspace)
    names = [lookup(e).name for e in entity] if entity else None
    with console.status(_("Checking data quality…"), spinner="dots") if not json else _null():
        rep = build_report(ws, names)
    ws.close()
    if json:
        emit_json(rep.model_dump(mode="json"))
        return
    t = Table(title=_("Data quality — overall score {s}").format(
        s="-" if rep.overall_score is None else f"{rep.overall_score:.1f}"))
    for label in (_("entity"), _("rows"), _("rejected"), _("complete"), _("valid"),
                  _("duplicates"), _("orphans"), _("outlier columns"), _("score")):
        t.add_column(label, justify="left" if label == _("entity") else "right")
    for e in rep.entities:
        t.add_row(e.entity, f"{e.rows:,}", f"{e.rejected_at_import:,}", f"{e.completeness:.1%}",
                  f"{e.validity:.1%}", f"{e.exact_duplicates:,}", f"{sum(e.orphans.values()):,}",
                  f"{len(e.outliers)}", f"{e.score:.1f}")
    console.print(t)
    d = rep.suspected_duplicate_customers
    console.print(_("Suspected duplicate customers: {n} customers in {g} groups (same phone, "
                    "e-mail, ID number, or name and birth date).").format(
        n=f"{d['customers']:,}", g=f"{d['groups']:,}"))
    for g in d["examples"][:5]:
        console.print(f"  {g['rule']}: {', '.join(g['customer_ids'])}")
    for e in rep.entities:
        weak = [c for c in e.columns if (c.required and c.completeness < 1) or c.invalid]
        gaps = (e.date_coverage or {}).get("empty_months") or []
        if weak or gaps or e.rejected_by_reason:
            console.print(f"[bold]{e.entity}[/]")
            for c in weak:
                console.print("  " + _("{col}: {p} complete, {n} invalid").format(
                    col=c.name, p=f"{c.completeness:.1%}", n=c.invalid))
            if gaps:
                console.print("  " + _("months without rows: {m}").format(m=", ".join(gaps)))
            if e.rejected_by_reason:
                console.print("  " + _("rejected at import: {r}").format(r=", ".join(
                    f"{k} {v:,}" for k, v in e.rejected_by_reason.items())))
    if rep.empty_entities:
        console.print(_("Not imported yet: {e}").format(e=", ".join(rep.empty_entities)))


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *a: object) -> None:
        return None


def register(app: typer.Typer) -> None:
    app.command("quality")(quality)
