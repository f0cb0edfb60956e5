"""``kehu simulate``: project promotion scenarios against the baseline before launch."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from kehu.cli.common import JsonOpt, WorkspaceOpt, open_workspace
from kehu.cli.output import console, emit_json
from kehu.i18n import N_, _

#: table columns: measure and label (translated when shown)
COLUMNS = (("affected", N_("affected")), ("revenue", N_("revenue")),
           ("delta_revenue", N_("Δ revenue")), ("margin", N_("margin")),
           ("delta_margin", N_("Δ margin")), ("discount_cost", N_("discount cost")),
           ("incremental_margin", N_("incremental margin")))


def _table(title: str, rows: list[dict[str, Any]], by_segment: bool) -> Table:
    t = Table(title=title)
    if by_segment:
        t.add_column(_("segment"))
    t.add_column(_("scenario"))
    for _key, label in COLUMNS:
        t.add_column(_(label), justify="right")
    for r in rows:
        t.add_row(*([r["segment"]] if by_segment else []), r["scenario"], f"{r['affected']:,}",
                  *[f"¥{r[k]:,.0f}" for k, _label in COLUMNS[1:]])
    return t


def simulate_cmd(
    scenarios: Annotated[Path, typer.Argument(help="Scenario file (YAML).",
                                              show_default=False)],
    workspace: WorkspaceOpt = None,
    as_of: Annotated[datetime | None, typer.Option(
        "--as-of", formats=["%Y-%m-%d"], help="Project from the behaviour up to this day "
        "(default: the last transaction day).")] = None,
    by: Annotated[str | None, typer.Option(
        "--by", help="Break down by tier, rfm_class, lifecycle_stage, region, city, "
        "account_manager_id, gender or customer_type (default: the file's segment_by).")
    ] = None,
    json: JsonOpt = False,
) -> None:
    """Project revenue, margin and affected customers of promotion scenarios (discounts,
    price plans, bundles) against the baseline, by segment."""
    from kehu.simulate import Simulation, simulate

    ws = open_workspace(workspace)
    sim = Simulation.load(scenarios)
    res = simulate(ws, sim, as_of=as_of.date() if as_of else None, segment_by=by)
    ws.close()
    if json:
        emit_json(res.to_dict())
        return
    console.print(_("Simulation {name}: behaviour {start} to {end} projected over {h} days; "
                    "{n} customers.").format(
        name=res.name, start=res.base_start, end=res.as_of, h=res.horizon_days,
        n=f"{res.overall[0]['customers']:,}"))
    console.print(_table(_("Scenarios against the baseline"), res.overall, False))
    console.print(_table(_("By {by}").format(by=res.segment_by),
                         sorted(res.by_segment, key=lambda r: r["segment"]), True))
    best = max(res.overall[1:], key=lambda r: r["delta_margin"])
    console.print(_("Best margin: {s} ({d} against the baseline).").format(
        s=best["scenario"], d=f"¥{best['delta_margin']:+,.0f}"))


def register(root: typer.Typer) -> None:
    root.command("simulate")(simulate_cmd)
