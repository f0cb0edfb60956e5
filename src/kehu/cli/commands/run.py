"""``kehu run``: the analysis run (RFM, classes, tiers, CLV per customer, with history)."""

from __future__ import annotations

from datetime import date
from typing import Annotated

import typer

from kehu.cli.common import JsonOpt, WorkspaceOpt, open_workspace
from kehu.cli.output import console, emit_json
from kehu.errors import KehuInputError
from kehu.i18n import _

ENGINES = ("duckdb", "spark")


def run(
    workspace: WorkspaceOpt = None,
    as_of: Annotated[str | None, typer.Option("--as-of", help="Date to compute for (default: "
                                              "the last transaction day).")] = None,
    alerts: Annotated[bool, typer.Option(
        "--alerts", help="Then evaluate the alert rules and create the tasks.")] = False,
    programmes: Annotated[bool, typer.Option(
        "--programmes", help="Then launch the due waves of the enabled lifecycle "
        "programmes, audiences from this run.")] = False,
    warm: Annotated[bool, typer.Option(
        "--warm/--no-warm", help="Then compute the dashboard in the company's language and "
        "the customer pages' lookup file, so the web app shows them at once.")] = True,
    engine: Annotated[str | None, typer.Option(
        "--engine", help="Engine of the analysis: duckdb or spark (default: the workspace "
        "setting engine.name). The steps after it (alerts, programmes, warming the web app) "
        "use DuckDB.", show_default=False)] = None,
    spark_master: Annotated[str | None, typer.Option(
        "--spark-master", help="Spark master URL for --engine spark, e.g. local[4], "
        "spark://host:7077, yarn (default: engine.spark_master, else Spark's own "
        "configuration, else local[*]).", show_default=False)] = None,
    json: JsonOpt = False,
) -> None:
    """Run the analyses and append per-customer results to the warehouse (customer_scores)."""
    from kehu.analytics.run import analysis_run
    from kehu.cli.common import cli_actor

    day = None
    if as_of:
        try:
            day = date.fromisoformat(as_of)
        except ValueError:
            raise KehuInputError(_("The '{name}' parameter must be a date like 2024-01-31. Got "
                                   "{v!r} instead.").format(name="--as-of", v=as_of)) from None
    if engine is not None and engine not in ENGINES:
        raise KehuInputError(_("The '{name}' parameter must be one of {allowed}. Got {v!r} "
                               "instead.").format(name="--engine", allowed=", ".join(ENGINES),
                                                  v=engine))
    ws = open_workspace(workspace)
    name = engine or ws.settings.engine.name
    if spark_master and name != "spark":
        raise KehuInputError(_("--spark-master needs --engine spark (or engine.name = "
                               "\"spark\" in the settings)."))
    ws.use_engine(name, spark_master)
    with console.status(_("Analysing…")) if not json else _Quiet():
        rep = analysis_run(ws, day)
    # what follows serves the web app, which always reads with DuckDB
    ws.use_engine("duckdb")
    extra: dict[str, object] = {"engine": name}
    if alerts:
        from kehu.alerts import run_alerts
        from kehu.alerts.notify import email_notifier

        extra["alerts"] = run_alerts(ws, as_of=rep.as_of, actor=cli_actor(),
                                     notify=email_notifier(ws.settings.channels)).to_dict()
    if programmes:
        from kehu.campaigns.programmes import run_programmes

        extra["programmes"] = run_programmes(ws, cli_actor(), rep.as_of).to_dict()
    if warm:
        from kehu.dashboard import warm as warm_dashboard

        with console.status(_("Preparing the dashboard…")) if not json else _Quiet():
            extra["dashboard_seconds"] = warm_dashboard(ws, (ws.settings.company.locale,))
            from kehu.customer360.lookup import prepare

            extra["customer_lookup_seconds"] = prepare(ws)
    ws.close()
    if json:
        emit_json({**rep.to_dict(), **extra})
        return
    console.print(_("Run {id} as of {d}: {n} customers scored in {s}s.").format(
        id=rep.run_id, d=rep.as_of, n=f"{rep.customers:,}", s=rep.seconds))
    if rep.clv:
        p = rep.clv["bgnbd"]
        console.print(_("BG/NBD r={r:.3f} alpha={alpha:.2f} a={a:.3f} b={b:.3f}; margin rate "
                        "{m:.0%}").format(m=rep.clv["margin_rate"], **p))
    for note in rep.notes:
        console.print(note)
    if "alerts" in extra:
        a: dict[str, object] = extra["alerts"]  # type: ignore[assignment]
        console.print(_("Alerts: {c} new tasks, {o} already open.").format(
            c=a.get("created"), o=a.get("already_open")))
    if "programmes" in extra:
        pr: dict[str, list[dict[str, object]]] = extra["programmes"]  # type: ignore[assignment]
        console.print(_("Programme waves launched: {ids}.").format(
            ids=", ".join(str(x["campaign_id"]) for x in pr["launched"]) or "-"))


class _Quiet:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *a: object) -> None:
        return None


def register(app: typer.Typer) -> None:
    app.command("run")(run)
