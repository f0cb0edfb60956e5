"""``kehu run``: the analysis run (RFM, classes, tiers, CLV per customer, with history)."""

from __future__ import annotations

from datetime import date
from typing import Annotated

import typer

from kehu.cli.common import JsonOpt, WorkspaceOpt, open_workspace
from kehu.cli.output import console, emit_json
from kehu.errors import KehuInputError
from kehu.i18n import _


def run(
    workspace: WorkspaceOpt = None,
    as_of: Annotated[str | None, typer.Option("--as-of", help="Date to compute for (default: "
                                              "the last transaction day).")] = None,
    json: JsonOpt = False,
) -> None:
    """Run the analyses and append per-customer results to the warehouse (customer_scores)."""
    from kehu.analytics.run import analysis_run

    day = None
    if as_of:
        try:
            day = date.fromisoformat(as_of)
        except ValueError:
            raise KehuInputError(_("The '{name}' parameter must be a date like 2024-01-31. Got "
                                   "{v!r} instead.").format(name="--as-of", v=as_of)) from None
    ws = open_workspace(workspace)
    with console.status(_("Analysing…")) if not json else _Quiet():
        rep = analysis_run(ws, day)
    ws.close()
    if json:
        emit_json(rep.to_dict())
        return
    console.print(_("Run {id} as of {d}: {n} customers scored in {s}s.").format(
        id=rep.run_id, d=rep.as_of, n=f"{rep.customers:,}", s=rep.seconds))
    if rep.clv:
        p = rep.clv["bgnbd"]
        console.print(_("BG/NBD r={r:.3f} alpha={alpha:.2f} a={a:.3f} b={b:.3f}; margin rate "
                        "{m:.0%}").format(m=rep.clv["margin_rate"], **p))
    for note in rep.notes:
        console.print(note)


class _Quiet:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *a: object) -> None:
        return None


def register(app: typer.Typer) -> None:
    app.command("run")(run)
