"""``kehu segment``: evaluate, export, compare and save segment specs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from kehu.cli.common import JsonOpt, WorkspaceOpt, open_workspace
from kehu.cli.output import console, emit_json
from kehu.i18n import _

app = typer.Typer(help="Segments: rule-based groups of customers (YAML specs).",
                  no_args_is_help=True)
SpecArg = Annotated[Path, typer.Argument(help="Segment spec (YAML).")]


@app.command("eval")
def eval_(
    spec: SpecArg,
    workspace: WorkspaceOpt = None,
    export: Annotated[Path | None, typer.Option(help="Write the members to .csv (Chinese "
                                                "headers), .xlsx or .parquet.")] = None,
    snapshot: Annotated[bool, typer.Option("--snapshot", help="Record the membership in the "
                                           "warehouse (segment_members).")] = False,
    json: JsonOpt = False,
) -> None:
    """Size and value of a segment; optionally export or snapshot its members."""
    from kehu.segments import SegmentSpec, evaluate
    from kehu.segments import export as export_members
    from kehu.store import services as sv

    ws = open_workspace(workspace)
    s = SegmentSpec.load(spec)
    res = evaluate(ws, s, snapshot=snapshot)
    out = res.to_dict()
    if export:
        out["exported"] = export_members(ws, s, export)
        out["file"] = str(export)
        sv.record(ws.store, "cli", "export", "segment", s.name,
                  {"file": str(export), "rows": out["exported"]})
    ws.close()
    if json:
        emit_json(out)
        return
    console.print(_("Segment {name} as of {d}: {n} customers ({p} of {t}); revenue {r}, "
                    "CLV {c}.").format(
        name=res.name, d=res.as_of, n=f"{res.size:,}", p=f"{res.share:.1%}",
        t=f"{res.customers_total:,}", r=f"¥{res.revenue or 0:,.0f}", c=f"¥{res.clv or 0:,.0f}"))
    if export:
        console.print(_("Exported {n} rows to {path}").format(n=out["exported"], path=export))


@app.command("overlap")
def overlap_cmd(
    specs: Annotated[list[Path], typer.Argument(help="Two or more segment specs.")],
    workspace: WorkspaceOpt = None,
    json: JsonOpt = False,
) -> None:
    """How many customers each pair of segments shares."""
    from kehu.errors import KehuInputError
    from kehu.segments import SegmentSpec, overlap

    if len(specs) < 2:
        raise KehuInputError(_("Give at least two segment specs to compare."))
    ws = open_workspace(workspace)
    rows = overlap(ws, [SegmentSpec.load(p) for p in specs])
    ws.close()
    if json:
        emit_json(rows)
        return
    t = Table(title=_("Segment overlap"))
    for label in ("A", "B", _("size A"), _("size B"), _("both"), "Jaccard"):
        t.add_column(label)
    for r in rows:
        t.add_row(r["a"], r["b"], f"{r['a_size']:,}", f"{r['b_size']:,}", f"{r['both']:,}",
                  f"{r['jaccard']:.2f}")
    console.print(t)


@app.command("save")
def save(spec: SpecArg, workspace: WorkspaceOpt = None, json: JsonOpt = False) -> None:
    """Save (or version) a segment definition in the app store."""
    from kehu.segments import SegmentSpec
    from kehu.store import services as sv

    ws = open_workspace(workspace)
    s = SegmentSpec.load(spec)
    d = sv.save_definition(ws.store, sv.DefinitionIn(kind="segment", name=s.name,
                                                     description=s.description,
                                                     spec=s.model_dump(mode="json",
                                                                       by_alias=True)), "cli")
    ws.close()
    if json:
        emit_json({"name": d.name, "version": d.version})
    else:
        console.print(_("Saved segment {name} (version {v}).").format(name=d.name, v=d.version))


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="segment")
