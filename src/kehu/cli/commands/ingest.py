"""``kehu import``, ``kehu imports`` and ``kehu rejects``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import pyarrow.csv as pcsv
import typer
from rich.table import Table

from kehu.cli.common import JsonOpt, WorkspaceOpt, open_workspace, require_positive
from kehu.cli.output import console, emit_json, err_console, progress
from kehu.i18n import _
from kehu.ingest import Importer, ReadOptions, plan_import, require_complete
from kehu.ingest.importer import FilePlan, ImportReport
from kehu.ingest.journal import completed_imports, reconcile, visible_rejects


def import_(
    entity: Annotated[str, typer.Argument(help="Entity to load: customers, transactions, "
                                          "products, contracts, interactions, tickets, "
                                          "payments, ... (see docs/data-model.md).")],
    files: Annotated[list[Path], typer.Argument(help="CSV, Excel .xlsx, Parquet or JSON Lines "
                                                "files, imported together in one commit.")],
    workspace: WorkspaceOpt = None,
    mapping: Annotated[Path | None, typer.Option(help="Mapping file (YAML) of source headers "
                                                 "to model columns.")] = None,
    save_mapping: Annotated[Path | None, typer.Option(
        help="Write the proposed mapping to this YAML file (to edit and pass with --mapping) "
        "and stop.")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Use the proposed mapping without "
                                      "asking when it is complete.")] = False,
    encoding: Annotated[str | None, typer.Option(help="Text encoding (default: detected; "
                                                 "utf-8, gbk, gb18030 ...).")] = None,
    delimiter: Annotated[str | None, typer.Option(help="Field delimiter (default: sniffed; "
                                                  "use 'tab' or 'whitespace').")] = None,
    sheet: Annotated[str | None, typer.Option(help="Excel sheet (default: the first).")] = None,
    fmt: Annotated[str | None, typer.Option("--format", help="Read as this format whatever "
                                            "the extension: csv, xlsx, parquet, jsonl.")] = None,
    no_header: Annotated[bool, typer.Option("--no-header", help="The file has no header row "
                                            "(name columns in the mapping).")] = False,
    generate_key: Annotated[bool, typer.Option(
        "--generate-key", help="The source has no id column: use '<file>:<row>' as the key "
        "(stable when the same file is re-imported).")] = False,
    no_check_references: Annotated[bool, typer.Option(
        "--no-check-references", help="Load facts even when their customer is unknown.")] = False,
    add_unknown_customers: Annotated[bool, typer.Option(
        "--add-unknown-customers", help="Create a minimal customer record for each unknown "
        "customer id instead of rejecting the row.")] = False,
    json: JsonOpt = False,
) -> None:
    """Import files into the warehouse: every row is loaded or rejected with its reason."""
    ws = open_workspace(workspace)
    opts = ReadOptions(encoding=encoding, delimiter=delimiter, header=not no_header,
                       sheet=sheet, batch_rows=ws.settings.ingest.batch_rows)
    plans = plan_import(ws, entity, [str(f) for f in files], mapping_file=mapping,
                        read_options=opts, generate_key=generate_key, fmt=fmt)
    if save_mapping:
        save_mapping.write_text(plans[0].mapping.to_yaml(), encoding="utf-8")
        if json:
            emit_json({"mapping": str(save_mapping), "complete": plans[0].proposal.complete})
        else:
            console.print(_("Wrote the proposed mapping to {path}; edit it and pass --mapping.")
                          .format(path=save_mapping))
        return
    if not json:
        for p in plans:
            _show_plan(p)
    interactive = sys.stdin.isatty() and not yes and not json
    if interactive:
        require_complete(plans)
        if not typer.confirm(_("Import with this mapping?"), default=True):
            raise typer.Exit(1)
    importer = Importer(ws, check_references=not no_check_references,
                        add_unknown_customers=add_unknown_customers)
    with progress(enabled=not json and sys.stderr.isatty()) as prog:
        task = prog.add_task(_("Importing {entity}").format(entity=entity), total=1000)

        def step(label: str, frac: float) -> None:
            prog.update(task, completed=int(frac * 1000), description=label)

        importer.progress = step
        report = importer.run(plans)
        prog.update(task, completed=1000)
    ws.close()
    if json:
        emit_json(report.to_dict())
    else:
        show_report(report)


def _show_plan(p: FilePlan) -> None:
    t = Table(title=_("{file} → {entity} ({fmt}, {enc})").format(
        file=p.path.name, entity=p.mapping.entity, fmt=p.reader.format,
        enc=p.reader.encoding or "-"), show_lines=False)
    t.add_column(_("source column"))
    t.add_column(_("kehu column"))
    inverse = {v: k for k, v in p.mapping.columns.items()}
    for h in p.reader.headers:
        if h in inverse:
            t.add_row(h, inverse[h])
        elif h in p.mapping.attributes:
            t.add_row(h, _("custom attribute attr_{name}").format(
                name=p.mapping.attributes[h].name))
        elif h in p.proposal.ambiguous:
            t.add_row(h, "[yellow]" + _("ambiguous: {opts}").format(
                opts=", ".join(p.proposal.ambiguous[h])) + "[/]")
        else:
            t.add_row(h, "[dim]" + _("not imported") + "[/]")
    err_console.print(t)
    if p.proposal.unmapped_required:
        err_console.print("[red]" + _("Required columns not found: {cols}").format(
            cols=", ".join(p.proposal.unmapped_required)) + "[/]")


def show_report(r: ImportReport) -> None:
    t = Table(title=_("Import {id} into {entity}").format(id=r.import_id, entity=r.entity))
    t.add_column(_("measure"))
    t.add_column(_("rows"), justify="right")
    for label, value in ((_("read"), r.read), (_("loaded"), r.loaded),
                         (_("rejected"), r.rejected), (_("inserted"), r.inserted),
                         (_("updated"), r.updated), (_("unchanged"), r.unchanged)):
        t.add_row(label, f"{value:,}")
    if r.created_customers:
        t.add_row(_("customers created"), f"{r.created_customers:,}")
    console.print(t)
    if r.reasons:
        console.print(_("Rejected by reason: {reasons}").format(
            reasons=", ".join(f"{k} {v:,}" for k, v in sorted(r.reasons.items()))))
        console.print(_("List them with: kehu rejects --import {id}").format(id=r.import_id))
    if r.ignored_columns:
        console.print(_("Columns not imported: {cols}").format(cols=", ".join(r.ignored_columns)))


def imports(workspace: WorkspaceOpt = None, json: JsonOpt = False) -> None:
    """List completed imports, newest first."""
    ws = open_workspace(workspace)
    reconcile(ws.warehouse)
    rows = completed_imports(ws.warehouse).drop_columns(["mapping"]).to_pylist()
    ws.close()  # close the engines' threads before the interpreter exits
    if json:
        emit_json(rows)
        return
    t = Table(title=_("Imports"))
    columns = {"import_id": _("import"), "entity": _("entity"), "finished_at": _("finished"),
               "read": _("read"), "loaded": _("loaded"), "rejected": _("rejected"),
               "inserted": _("inserted"), "updated": _("updated"), "unchanged": _("unchanged")}
    for label in columns.values():
        t.add_column(label)
    for r in rows:
        t.add_row(*[str(r[c]) for c in columns])
    console.print(t)


def rejects(
    workspace: WorkspaceOpt = None,
    import_id: Annotated[str | None, typer.Option("--import", help="Only this import.")] = None,
    entity: Annotated[str | None, typer.Option(help="Only this entity.")] = None,
    export: Annotated[Path | None, typer.Option(help="Write the rejects to this CSV file "
                                                "(UTF-8 with BOM, opens in Excel).")] = None,
    limit: Annotated[int, typer.Option(help="Rows to show.")] = 50,
    json: JsonOpt = False,
) -> None:
    """List (or export) rejected rows with file, row, column, value and reason."""
    require_positive("--limit", limit)
    ws = open_workspace(workspace)
    table = visible_rejects(ws.warehouse, import_id, entity)
    if export:
        with export.open("wb") as fh:
            fh.write(b"\xef\xbb\xbf")
            pcsv.write_csv(table, fh)
        if json:
            emit_json({"exported": table.num_rows, "file": str(export)})
        else:
            console.print(_("Exported {n} rejected rows to {path}").format(n=table.num_rows,
                                                                           path=export))
        return
    shown = table.slice(0, limit)
    if json:
        emit_json({"total": table.num_rows, "rows": shown.to_pylist()})
        return
    t = Table(title=_("Rejected rows: {n}").format(n=table.num_rows))
    for label in (_("file"), _("row"), _("column"), _("value"), _("reason")):
        t.add_column(label)
    for r in shown.to_pylist():
        t.add_row(*["" if r[c] is None else str(r[c]) for c in ("file", "row", "column",
                                                                 "value", "reason")])
    console.print(t)


def load(
    manifest: Annotated[Path, typer.Argument(help="Manifest (YAML or JSON) listing entities "
                                             "and their files.")],
    workspace: WorkspaceOpt = None,
    json: JsonOpt = False,
) -> None:
    """Import every file a manifest lists, in the order references need."""
    from kehu.ingest.manifest import load_manifest

    ws = open_workspace(workspace)
    with progress(enabled=not json and sys.stderr.isatty()) as prog:
        task = prog.add_task(_("Loading"), total=1000)

        def step(label: str, frac: float) -> None:
            prog.update(task, completed=int(frac * 1000), description=label)

        reports = load_manifest(ws, manifest, progress=step)
    ws.close()
    if json:
        emit_json([r.to_dict() for r in reports])
        return
    show_reports(reports)


def show_reports(reports: list[ImportReport]) -> None:
    """One table: per import, read / loaded / rejected / inserted / updated / unchanged."""
    t = Table(title=_("Imports"))
    t.add_column(_("entity"))
    t.add_column(_("files"))
    for label in (_("read"), _("loaded"), _("rejected"), _("inserted"), _("updated"),
                  _("unchanged")):
        t.add_column(label, justify="right")
    for r in reports:
        t.add_row(r.entity, ", ".join(Path(f).name for f in r.files),
                  *[f"{v:,}" for v in (r.read, r.loaded, r.rejected, r.inserted, r.updated,
                                       r.unchanged)])
    console.print(t)


def register(app: typer.Typer) -> None:
    app.command("load")(load)
    app.command("import")(import_)
    app.command("imports")(imports)
    app.command("rejects")(rejects)


__all__ = ["register", "show_report", "show_reports"]
