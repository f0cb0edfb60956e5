"""``kehu datasets``: the data sets bundled with kehu."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from kehu.cli.common import JsonOpt, WorkspaceOpt, open_workspace
from kehu.cli.output import console, emit_json
from kehu.i18n import _

app = typer.Typer(help="Data sets bundled with kehu (CDNOW).", no_args_is_help=True)


@app.command("list")
def list_(json: JsonOpt = False) -> None:
    """List the bundled data sets."""
    from kehu.datasets import DATASETS

    rows = [{"name": d.name, "entity": d.entity, "file": str(d.path),
             "description": d.description} for d in DATASETS.values()]
    if json:
        emit_json(rows)
        return
    t = Table(title=_("Bundled data sets"))
    t.add_column(_("name"))
    t.add_column(_("description"))
    for r in rows:
        t.add_row(r["name"], r["description"])
    console.print(t)


@app.command("load")
def load(
    name: Annotated[str, typer.Argument(help="Data set name, e.g. cdnow.")],
    workspace: WorkspaceOpt = None,
    json: JsonOpt = False,
) -> None:
    """Import a bundled data set through the normal importer (with its mapping file)."""
    from kehu.datasets import load as load_dataset

    ws = open_workspace(workspace)
    report = load_dataset(ws, name)
    ws.close()
    if json:
        emit_json(report.to_dict())
    else:
        from kehu.cli.commands.ingest import show_report

        show_report(report)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="datasets")
