"""``kehu churn fit|list|warnings|rates|composition`` on a workspace, and ``kehu models``."""

from __future__ import annotations

import json as jsonlib
from datetime import date, timedelta
from typing import Annotated, Any

import typer
from rich.table import Table

from kehu.cli.common import (
    JsonOpt,
    WorkspaceOpt,
    open_workspace,
    parse_date,
    require_positive,
)
from kehu.cli.output import console, emit_json
from kehu.errors import KehuInputError
from kehu.i18n import _

AsOfOpt = Annotated[str | None, typer.Option("--as-of", help="Cut-off date (default: the last "
                                             "transaction day).", show_default=False)]


def _pct(v: Any) -> str:
    return "-" if v is None or v != v else f"{v:.1%}"


def _reasons(text: Any) -> str:
    from kehu.models.churn.reasons import render

    if not isinstance(text, str) or not text:
        return ""
    return "; ".join(render(r) for r in jsonlib.loads(text))


def add_commands(app: typer.Typer) -> None:
    app.command("fit")(fit)
    app.command("list")(list_risk)
    app.command("warnings")(warnings)
    app.command("rates")(rates)
    app.command("composition")(composition)


def fit(
    workspace: WorkspaceOpt = None,
    as_of: AsOfOpt = None,
    definition: Annotated[str, typer.Option("--definition", help="auto, events, "
                                            "non_contractual or contractual.")] = "auto",
    window: Annotated[int, typer.Option("--window", help="Churn window in days after the "
                                        "cut-off.")] = 90,
    max_rows: Annotated[int, typer.Option("--max-rows", help="Fit on a stratified sample of "
                                          "at most this many customers.")] = 100_000,
    json: JsonOpt = False,
) -> None:
    """Train a churn model on the workspace with a time-based hold-out and register it."""
    from kehu.models.churn.definition import KINDS, ChurnDefinition
    from kehu.models.churn.service import fit as fit_model

    if definition not in KINDS or definition == "label_column":
        raise KehuInputError(_("The '--definition' parameter must be one of {opts}. Got {v!r} "
                               "instead.").format(opts="auto, events, non_contractual, "
                                                  "contractual", v=definition))
    require_positive("--max-rows", max_rows)
    ws = open_workspace(workspace)
    try:
        d = ChurnDefinition(kind=definition, window_days=window)
    except ValueError as exc:
        raise KehuInputError(_("The '--window' parameter must be between 7 and 730 days. Got "
                               "{v} instead.").format(v=window)) from exc
    rep = fit_model(ws, parse_date("--as-of", as_of), d, max_rows=max_rows)
    if json:
        emit_json(rep.to_dict())
        return
    h = rep.holdout
    console.print(_("Registered {model}: {algo}, trained on {n} customers; churn in the "
                    "hold-out window {rate}.").format(model=rep.model_id, algo=rep.chosen_model,
                                                      n=f"{rep.train_rows:,}",
                                                      rate=_pct(h["positive_rate"])))
    tab = Table(title=_("Hold-out evaluation ({labels})").format(
        labels=rep.cutoffs.get("holdout_labels", rep.cutoffs.get("holdout", ""))))
    tab.add_column(_("metric"))
    tab.add_column(_("value"), justify="right")
    for name, value in ((_("ROC AUC"), f"{h['auc']:.3f}"), (_("PR AUC"), f"{h['pr_auc']:.3f}"),
                        (_("lift in the top 10%"), f"{h['lift_top_decile']:.2f}"),
                        (_("churners caught in the top 10%"), _pct(h["capture_top_decile"])),
                        (_("lift in the top 20%"), f"{h['lift_top_20']:.2f}"),
                        (_("churners caught in the top 20%"), _pct(h["capture_top_20"]))):
        tab.add_row(name, value)
    console.print(tab)
    imp = Table(title=_("Strongest churn drivers"))
    imp.add_column(_("feature"))
    imp.add_column(_("mean |contribution| (log-odds)"), justify="right")
    for row in rep.importance[:10]:
        imp.add_row(row["label"], f"{row['importance']:.3f}")
    console.print(imp)


def _latest_scores(ws: Any) -> Any:
    from kehu.analytics.run import SCORES_TABLE

    if not ws.warehouse.exists(SCORES_TABLE):
        raise KehuInputError(_("Grouping by {by} needs the scores of an analysis run: run "
                               "'kehu run' first.").format(by="churn_risk"))
    s = ws.engine.table(SCORES_TABLE)
    if "churn_risk" not in s.columns:
        raise KehuInputError(_("The latest analysis run has no churn scores: run 'kehu churn "
                               "fit', then 'kehu run'."))
    last = s.aggregate(r=s.run_id.max()).r.as_scalar()
    return s.filter((s.run_id == last) & s.churn_risk.notnull())


def list_risk(
    workspace: WorkspaceOpt = None,
    top: Annotated[int, typer.Option("--top", help="How many customers.")] = 20,
    customer: Annotated[str | None, typer.Option("--customer", help="Only this customer.")
                        ] = None,
    json: JsonOpt = False,
) -> None:
    """The customers most likely to churn (latest run) with their reasons."""
    import ibis

    require_positive("--top", top)
    ws = open_workspace(workspace)
    s = _latest_scores(ws)
    if customer:
        s = s.filter(s.customer_id == customer)
    df = s.order_by(ibis.desc("churn_risk")).limit(top).select(
        "customer_id", "tier", "clv", "churn_risk", "churn_reasons").to_pandas()
    df["reasons"] = [_reasons(t) for t in df.churn_reasons]
    if json:
        from kehu.models.churn.analytics import as_records

        emit_json(as_records(df))
        return
    tab = Table(title=_("Customers most likely to churn"))
    for head in (_("customer"), _("tier"), _("churn risk"), _("why")):
        tab.add_column(head)
    for r in df.itertuples():
        tab.add_row(r.customer_id, str(r.tier), _pct(r.churn_risk), r.reasons)
    console.print(tab)


def warnings(
    workspace: WorkspaceOpt = None,
    min_risk: Annotated[float, typer.Option("--min-risk", help="Risk that counts as high.")
                        ] = 0.3,
    jump: Annotated[float, typer.Option("--jump", help="Rise of risk since the previous run "
                                        "that raises a warning.")] = 0.15,
    spend_drop: Annotated[float, typer.Option("--spend-drop", help="Fall of 90-day spend "
                                              "(e.g. -0.3 = 30 %) that raises a warning.")
                          ] = -0.3,
    top: Annotated[int, typer.Option("--top", help="How many customers.")] = 50,
    json: JsonOpt = False,
) -> None:
    """Early warnings: high-value customers whose churn risk jumped or whose spending falls."""
    from kehu.models.churn.analytics import as_records, early_warnings

    require_positive("--top", top)
    ws = open_workspace(workspace)
    df = early_warnings(ws.engine, min_risk=min_risk, jump=jump, spend_drop=spend_drop,
                        limit=top)
    df["reasons"] = [_reasons(t) for t in df.churn_reasons]
    if json:
        emit_json(as_records(df))
        return
    names = {"risk_jump": _("risk jumped"), "spend_falling": _("spending falling"),
             "high_risk": _("high risk")}
    tab = Table(title=_("Early warnings: valuable customers at risk ({n})").format(n=len(df)))
    for head in (_("customer"), _("tier"), _("churn risk"), _("change"), _("signals"),
                 _("why")):
        tab.add_column(head)
    for r in df.itertuples():
        sig = ", ".join(names.get(x, x) for x in jsonlib.loads(r.signals))
        tab.add_row(r.customer_id, str(r.tier), _pct(r.churn_risk), _pct(r.risk_change), sig,
                    r.reasons)
    console.print(tab)


def _period(start: str | None, end: str | None, ws: Any) -> tuple[date, date]:
    from kehu.analytics.summary import last_transaction_day as last_day

    e = parse_date("--end", end) or last_day(ws.engine)
    s = parse_date("--start", start) or e - timedelta(days=365)
    return s, e


def rates(
    by: Annotated[str, typer.Option("--by", help="tier, rfm_class, lifecycle_stage, region, "
                                    "city, account_manager_id, customer_type, gender, "
                                    "product_id or segment (saved segments).")] = "tier",
    start: Annotated[str | None, typer.Option("--start", help="Start of the period (default: "
                                              "a year before --end).")] = None,
    end: Annotated[str | None, typer.Option("--end", help="End of the period (default: the "
                                            "last transaction day).")] = None,
    workspace: WorkspaceOpt = None,
    json: JsonOpt = False,
) -> None:
    """Churn rate in a period by a dimension: customers at risk at the start, churned by the end."""
    from kehu.models.churn.analytics import as_records, churn_rates

    ws = open_workspace(workspace)
    s, e = _period(start, end, ws)
    df = churn_rates(ws.engine, s, e, by).to_pandas()
    if json:
        emit_json({"start": s, "end": e, "by": by, "rows": as_records(df)})
        return
    tab = Table(title=_("Churn rate {start} .. {end} by {by}").format(start=s, end=e, by=by))
    for head in (by, _("customers"), _("churned"), _("rate")):
        tab.add_column(head, justify="right")
    for r in df.itertuples(index=False):
        tab.add_row(str(r[0]), f"{r.customers:,}", f"{r.churned:,}", _pct(r.rate))
    console.print(tab)


def composition(
    start: Annotated[str | None, typer.Option("--start", help="Start of the period.")] = None,
    end: Annotated[str | None, typer.Option("--end", help="End of the period.")] = None,
    workspace: WorkspaceOpt = None,
    json: JsonOpt = False,
) -> None:
    """Recorded churn by reason, destination (which competitor) and kind."""
    from kehu.models.churn.analytics import as_records, churn_composition

    ws = open_workspace(workspace)
    parts = churn_composition(ws.engine, parse_date("--start", start), parse_date("--end", end))
    if json:
        emit_json({k: as_records(v) for k, v in parts.items()})
        return
    titles = {"reason": _("Churn reasons"), "destination": _("Where churned customers went"),
              "kind": _("Kinds of churn")}
    for key, df in parts.items():
        tab = Table(title=titles[key])
        for head in (key, _("events"), _("share")):
            tab.add_column(head)
        for r in df.itertuples(index=False):
            tab.add_row(str(r[0]), f"{r.events:,}", _pct(r.share))
        console.print(tab)


models_app = typer.Typer(help="The model registry: trained models, their metrics and drift.",
                         no_args_is_help=True)


@models_app.command("list")
def models_list(
    kind: Annotated[str | None, typer.Option("--kind", help="Only this kind, e.g. churn.")
                    ] = None,
    workspace: WorkspaceOpt = None,
    json: JsonOpt = False,
) -> None:
    """Every trained model: id, kind, as-of date, algorithm, hold-out AUC."""
    from kehu.models.registry import list_models

    ws = open_workspace(workspace)
    recs = list_models(ws, kind)
    if json:
        emit_json([{k: v for k, v in r.to_dict().items() if k != "details"}
                   | {"holdout": r.details.get("holdout", {})} for r in recs])
        return
    tab = Table(title=_("Models"))
    for head in (_("model"), _("kind"), _("as of"), _("algorithm"), _("trained"), "AUC"):
        tab.add_column(head)
    for r in recs:
        auc = r.details.get("holdout", {}).get("auc")
        tab.add_row(r.model_id, r.kind, str(r.as_of), r.algorithm,
                    r.created_at.strftime("%Y-%m-%d %H:%M"),
                    "-" if auc is None else f"{auc:.3f}")
    console.print(tab)


@models_app.command("show")
def models_show(
    model_id: Annotated[str, typer.Argument(help="Model id, e.g. churn-v3.")],
    workspace: WorkspaceOpt = None,
    json: JsonOpt = False,
) -> None:
    """One model: data window, features, parameters, metrics, importance."""
    from kehu.models.registry import get

    ws = open_workspace(workspace)
    rec = get(ws, model_id)
    data = rec.to_dict()
    data["details"] = {k: v for k, v in rec.details.items()
                       if k not in ("reference", "score_reference")}
    if json:
        emit_json(data)
        return
    d = data["details"]
    console.print(_("{model}: {algo}, as of {as_of}, trained {at}").format(
        model=rec.model_id, algo=rec.algorithm, as_of=rec.as_of,
        at=rec.created_at.strftime("%Y-%m-%d %H:%M")))
    for key in ("cutoffs", "params", "holdout", "cv_scores"):
        if key in d:
            shown = {k: v for k, v in d[key].items() if k != "calibration"} \
                if isinstance(d[key], dict) else d[key]
            console.print(f"[bold]{key}[/]: {jsonlib.dumps(shown, ensure_ascii=False)}")
    imp = Table(title=_("Strongest churn drivers"))
    imp.add_column(_("feature"))
    imp.add_column(_("mean |contribution| (log-odds)"), justify="right")
    for row in d.get("importance", [])[:15]:
        imp.add_row(row["label"], f"{row['importance']:.3f}")
    console.print(imp)
