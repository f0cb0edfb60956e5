"""``kehu cube``: any measure by any dimension, with filters (OLAP)."""

from __future__ import annotations

from datetime import date
from typing import Annotated

import typer
from rich.table import Table

from kehu.cli.common import JsonOpt, WorkspaceOpt, open_workspace
from kehu.cli.output import console, emit_json
from kehu.errors import KehuInputError
from kehu.i18n import _


def cube_command(
    measure: Annotated[list[str], typer.Option("--measure", "-m", help="Measure (repeat): "
                                               "revenue, margin, orders, transactions, buyers, "
                                               "avg_order_value, customers, clv, churn_risk, "
                                               "nps.")],
    by: Annotated[list[str] | None, typer.Option("--by", "-b", help="Dimension (repeat): year, "
                                                 "quarter, month, region, city, category, "
                                                 "subcategory, product_id, channel, tier, "
                                                 "rfm_class, lifecycle_stage, "
                                                 "account_manager_id, gender.")] = None,
    where: Annotated[list[str] | None, typer.Option(
        "--where", help="Filter DIMENSION=VALUE[,VALUE…] (repeat).")] = None,
    start: Annotated[str | None, typer.Option("--from", help="First day (transactions).")
                     ] = None,
    end: Annotated[str | None, typer.Option("--to", help="Last day (transactions).")] = None,
    workspace: WorkspaceOpt = None,
    json: JsonOpt = False,
) -> None:
    """Answer a cube query; add a finer level of a hierarchy to --by to drill down."""
    from kehu.analytics.cube import CubeQuery, Filter, cube, drill_down
    from kehu.specfiles import validated

    filters = []
    for w in where or []:
        if "=" not in w:
            raise KehuInputError(_("The '--where' parameter must look like region=广东 or "
                                   "tier=gold,diamond. Got {v!r} instead.").format(v=w))
        k, v = w.split("=", 1)
        filters.append(validated(Filter, {"dimension": k.strip(), "values": [
            x.strip() for x in v.split(",") if x.strip()]}, "--where", "filter"))
    q = CubeQuery(measures=measure, by=by or [], where=filters,
                  start=_d("--from", start), end=_d("--to", end))
    ws = open_workspace(workspace)
    rows = cube(ws.engine, q).to_pyarrow().to_pylist()
    ws.close()
    if json:
        emit_json({"query": q.model_dump(mode="json"), "rows": rows})
        return
    t = Table(title=_("{m} by {b}").format(m=", ".join(measure), b=", ".join(by or ["-"])))
    for c in (by or []) + measure:
        t.add_column(c, justify="right" if c in measure else "left")
    for r in rows:
        t.add_row(*["" if r[c] is None else (f"{r[c]:,.2f}" if isinstance(r[c], float)
                                              else f"{r[c]:,}" if isinstance(r[c], int)
                                              else str(r[c])) for c in (by or []) + measure])
    console.print(t)
    nxt = [d for d in (drill_down(b) for b in by or []) if d and d not in (by or [])]
    if nxt:
        console.print(_("Drill down with --by {d}.").format(d=" --by ".join(nxt)))


def _d(name: str, v: str | None) -> date | None:
    if v is None:
        return None
    try:
        return date.fromisoformat(v)
    except ValueError:
        raise KehuInputError(_("The '{name}' parameter must be a date like 2024-01-31. Got "
                               "{v!r} instead.").format(name=name, v=v)) from None


def register(app: typer.Typer) -> None:
    app.command("cube")(cube_command)
