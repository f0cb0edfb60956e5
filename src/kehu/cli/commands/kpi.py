"""``kehu kpi``: the CRM programme's monthly KPIs; ``kehu portfolio``: account managers'
portfolios; ``kehu servicelevels show|set``: the service-level table by tier."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from kehu.cli.common import JsonOpt, WorkspaceOpt, cli_actor, open_workspace, parse_date
from kehu.cli.output import console, emit_json
from kehu.i18n import _

AsOfOpt = Annotated[str | None, typer.Option("--as-of", help="Day to look from (default: the "
                                             "last transaction day).")]
levels_app = typer.Typer(help="The service-level table by tier: dedicated manager, response "
                         "time, discount authority, priority queue, channels.",
                         no_args_is_help=True)


def _pct(v: float | None) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.1%}"


def _num(v: Any, digits: int = 0) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:,.{digits}f}"


def kpi(
    workspace: WorkspaceOpt = None,
    months: Annotated[int, typer.Option("--months", help="Calendar months to report, ending "
                                        "with the month of the as-of day.")] = 12,
    as_of: AsOfOpt = None, json: JsonOpt = False,
) -> None:
    """Monthly KPIs of the CRM programme: retention, value by tier, campaigns, NPS / CSAT,
    complaint resolution, tasks done on time."""
    from kehu.campaigns.measure import campaign_results
    from kehu.kpi import crm_kpis

    ws = open_workspace(workspace)
    rep = crm_kpis(ws, months=months, as_of=parse_date("--as-of", as_of),
                   campaign_results=campaign_results)
    ws.close()
    if json:
        emit_json(rep.to_dict())
        return
    h = rep.headline
    r = h["retention"]
    console.print(_("CRM KPIs {start} – {end}: retention {rate} ({kept} of {base} customers "
                    "kept); last month {last}.").format(
        start=rep.start, end=rep.as_of, rate=_pct(r["rate"]), kept=_num(r["retained"]),
        base=_num(r["customers_start"]), last=_pct(h["retention_rate_last_month"])))
    g = h["value_growth"]["all"]
    console.print(_("Revenue {rev} ({yoy} on a year earlier), margin {mar} ({myoy}).").format(
        rev=_num(g["revenue"]), yoy=_pct(g["revenue_yoy"]), mar=_num(g["margin"]),
        myoy=_pct(g["margin_yoy"])))
    c = h["campaigns"]
    if c["reason"] is None:
        console.print(_("Campaigns: {n}, incremental margin {m}, cost {c}, ROI {roi}.").format(
            n=c["campaigns"], m=_num(c["incremental_margin"]), c=_num(c["cost"]),
            roi=_pct(c["roi"])))
    s, t, k = h["satisfaction"], h["tasks"], h["complaints"]
    console.print(_("NPS {nps} ({n} answers), CSAT {csat}; complaints resolved in a median "
                    "{hours} hours; tasks on time {tasks}.").format(
        nps=_num(s["nps"], 1), n=s["nps_answers"], csat=_num(s["csat"], 2),
        hours=_num(k["resolution_hours_median"], 1), tasks=_pct(t["share"])))
    tab = Table(title=_("By month"))
    for label in (_("month"), _("customers"), _("retention"), _("new"), _("revenue"),
                  _("margin"), _("NPS"), _("CSAT"), _("complaint hours"), _("tasks on time"),
                  _("campaign ROI")):
        tab.add_column(label)
    for m in rep.months:
        tab.add_row(m["month"] + ("*" if m["partial"] else ""), _num(m["customers_start"]),
                    _pct(m["retention_rate"]), _num(m["new_customers"]), _num(m["revenue"]),
                    _num(m["margin"]), _num(m["nps"], 1), _num(m["csat"], 2),
                    _num(m["resolution_hours_median"], 1), _pct(m["tasks_on_time_share"]),
                    _pct(m["campaign_roi"]))
    console.print(tab)
    tiers = Table(title=_("Value by tier over the period"))
    for label in (_("tier"), _("revenue"), _("vs a year earlier"), _("margin"),
                  _("vs a year earlier")):
        tiers.add_column(label)
    from kehu.accounts.service_levels import tier_name

    for code, v in h["value_growth"].items():
        tiers.add_row(_("all") if code == "all" else tier_name(code), _num(v["revenue"]),
                      _pct(v["revenue_yoy"]), _num(v["margin"]), _pct(v["margin_yoy"]))
    console.print(tiers)
    for note in rep.notes:
        console.print(note)


def portfolio(
    employee_id: Annotated[str | None, typer.Argument(help="One account manager's employee "
                                                      "id (default: all).")] = None,
    workspace: WorkspaceOpt = None, as_of: AsOfOpt = None, json: JsonOpt = False,
) -> None:
    """Account managers' portfolios: customers, value, churn risk, tasks, retention."""
    from kehu.accounts import portfolios

    ws = open_workspace(workspace)
    df = portfolios(ws, as_of=parse_date("--as-of", as_of), employee_id=employee_id)
    ws.close()
    rows = df.to_dict("records")
    if json:
        emit_json([{k: None if isinstance(v, float) and math.isnan(v) else v
                    for k, v in r.items()} for r in rows])
        return
    tab = Table(title=_("Account managers' portfolios"))
    for label in (_("employee"), _("name"), _("team"), _("customers"), _("new"),
                  _("current value"), _("CLV"), _("mean churn risk"), _("high risk"),
                  _("tasks open"), _("overdue"), _("retention 12m")):
        tab.add_column(label)
    for r in rows:
        tab.add_row(r["employee_id"], r["name"] or "", r["team"] or "", _num(r["customers"]),
                    _num(r["new_customers"]), _num(r["current_value"]), _num(r["clv"]),
                    _pct(r["churn_risk_mean"]), _num(r["high_risk"]), _num(r["tasks_open"]),
                    _num(r["tasks_overdue"]), _pct(r["retention_12m"]))
    console.print(tab)


def _show(levels: Any, version: int | None, json: bool) -> None:
    from kehu.accounts.service_levels import tier_name

    if json:
        emit_json({"version": version, **levels.model_dump(mode="json")})
        return
    console.print(_("Service levels, version {v}.").format(v=version) if version else
                  _("Service levels: the built-in default (none saved yet)."))
    tab = Table()
    for label in (_("tier"), _("dedicated manager"), _("response hours"), _("max discount"),
                  _("priority queue"), _("channels")):
        tab.add_column(label)
    for code, lv in levels.tiers.items():
        tab.add_row(f"{tier_name(code)} ({code})", _("yes") if lv.dedicated_manager else _("no"),
                    f"{lv.response_hours:g}", f"{lv.max_discount:.0%}",
                    _("yes") if lv.priority_queue else _("no"),
                    ", ".join(lv.channels) if lv.channels else _("all"))
    console.print(tab)


@levels_app.command("show")
def levels_show(workspace: WorkspaceOpt = None, json: JsonOpt = False) -> None:
    """Show the service-level table in force."""
    from kehu.accounts.service_levels import get_service_levels

    ws = open_workspace(workspace)
    levels, version = get_service_levels(ws.store)
    ws.close()
    _show(levels, version, json)


@levels_app.command("set")
def levels_set(
    file: Annotated[Path, typer.Argument(help="Service-level table (YAML or JSON).")],
    workspace: WorkspaceOpt = None, json: JsonOpt = False,
) -> None:
    """Validate a service-level table and save it as the workspace's (a new version)."""
    from kehu.accounts.service_levels import ServiceLevels, save_service_levels

    levels = ServiceLevels.load(file)
    ws = open_workspace(workspace)
    row = save_service_levels(ws.store, levels, cli_actor())
    ws.close()
    _show(levels, row.version, json)


def register(app: typer.Typer) -> None:
    app.command("kpi")(kpi)
    app.command("portfolio")(portfolio)
    app.add_typer(levels_app, name="servicelevels")
