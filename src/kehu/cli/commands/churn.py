"""``kehu churn evaluate|train|score``: churn models straight on a customer table file (no
workspace needed); the workspace commands are in :mod:`churn_workspace`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from kehu.cli.common import JsonOpt
from kehu.cli.output import console, emit_json, progress
from kehu.errors import KehuInputError
from kehu.i18n import _

app = typer.Typer(help="Churn prediction on a customer table (one row per customer).",
                  no_args_is_help=True)

FileArg = Annotated[Path, typer.Argument(help="Customer table: CSV (UTF-8 or GBK), Excel, "
                                         "Parquet or JSON Lines.", show_default=False)]
LabelOpt = Annotated[str, typer.Option("--label", help="Column that says who churned.",
                                       show_default=False)]
PositiveOpt = Annotated[str, typer.Option("--positive", help="Value of --label that means "
                                          "churned, e.g. Yes (case and spaces ignored).",
                                          show_default=False)]
IdOpt = Annotated[str | None, typer.Option("--id", help="Customer id column (kept out of the "
                                           "features, written next to the scores).")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Random seed (folds, LightGBM).")]


def _check_int(name: str, value: int, minimum: int) -> None:
    if value < minimum:
        raise KehuInputError(_("The '{name}' parameter must be an int >= {min}. Got {v} instead."
                               ).format(name=name, min=minimum, v=value))


def _metric_rows(res: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (_("customers"), f"{res['n']:,}"),
        (_("churn rate"), f"{res['positive_rate']:.1%}"),
        (_("ROC AUC (mean over folds)"), f"{res['auc']:.3f} ± {res['auc_std']:.3f}"),
        (_("PR AUC (average precision)"), f"{res['pr_auc']:.3f}"),
        (_("lift in the top 10%"), f"{res['lift_top_decile']:.2f}"),
        (_("churners caught in the top 10%"), f"{res['capture_top_decile']:.1%}"),
        (_("lift in the top 20%"), f"{res['lift_top_20']:.2f}"),
        (_("churners caught in the top 20%"), f"{res['capture_top_20']:.1%}"),
        (_("model"), _model_name(res["model"])),
        (_("rows without a label (excluded)"), f"{res['excluded_rows']:,}"),
    ]


def _model_name(key: str) -> str:
    return {"lightgbm": _("LightGBM"), "logistic": _("logistic regression"),
            "blend": _("LightGBM + logistic blend")}.get(key, key)


def _reason(code: str) -> str:
    return {"id": _("identifier (different on every row)"), "constant": _("constant"),
            "empty": _("empty"), "date": _("date"),
            "high_cardinality": _("too many distinct values")}.get(code, code)


@app.command("evaluate")
def evaluate(
    file: FileArg,
    label: LabelOpt,
    positive: PositiveOpt,
    id_col: IdOpt = None,
    folds: Annotated[int, typer.Option("--folds", help="Outer cross-validation folds.")] = 5,
    seed: SeedOpt = 0,
    json: JsonOpt = False,
) -> None:
    """Cross-validate churn predictions on a labelled customer table: AUC, lift, calibration."""
    from kehu.models.churn.snapshot import evaluate_file

    _check_int("--folds", folds, 2)
    _check_int("--seed", seed, 0)
    with progress(enabled=not json) as bar:
        task = bar.add_task(_("cross-validating"), total=folds + 1)
        res = evaluate_file(file, label, positive, id_col=id_col, folds=folds, seed=seed,
                            on_fold=lambda i: bar.update(task, completed=i))
    if json:
        emit_json(res)
        return
    tab = Table(title=_("Churn model on {path}: {folds}-fold cross-validation").format(
        path=file.name, folds=folds))
    tab.add_column(_("metric"))
    tab.add_column(_("value"), justify="right")
    for name, value in _metric_rows(res):
        tab.add_row(name, value)
    console.print(tab)
    top = Table(title=_("Strongest churn drivers"))
    top.add_column(_("feature"))
    top.add_column(_("mean |contribution| (log-odds)"), justify="right")
    for row in res["top_features"]:
        top.add_row(row["feature"], f"{row['importance']:.3f}")
    console.print(top)
    cal = Table(title=_("Calibration by score decile"))
    for head in (_("mean predicted"), _("observed churn rate"), _("customers")):
        cal.add_column(head, justify="right")
    for b in res["calibration"]:
        cal.add_row(f"{b['predicted']:.1%}", f"{b['observed']:.1%}", f"{b['n']:,}")
    console.print(cal)
    if res["dropped"]:
        console.print(_("Columns not used: {cols}").format(cols=", ".join(
            f"{k} ({_reason(v)})" for k, v in res["dropped"].items())))


@app.command("train")
def train(
    file: FileArg,
    label: LabelOpt,
    positive: PositiveOpt,
    out: Annotated[Path, typer.Option("--out", help="Where to save the model (.pkl).",
                                      show_default=False)],
    id_col: IdOpt = None,
    seed: SeedOpt = 0,
    json: JsonOpt = False,
) -> None:
    """Fit the churn model on every labelled row and save it for 'kehu churn score'."""
    from kehu.models.churn.snapshot import train_file

    _check_int("--seed", seed, 0)
    res = train_file(file, label, positive, out, id_col=id_col, seed=seed)
    if json:
        emit_json(res)
        return
    console.print(_("Saved a {model} churn model trained on {n} customers ({rate} churned) "
                    "to {out}.").format(model=_model_name(res["model"]), n=f"{res['n']:,}",
                                        rate=f"{res['positive_rate']:.1%}", out=res["out"]))


@app.command("score")
def score(
    model: Annotated[Path, typer.Argument(help="Model file from 'kehu churn train'.",
                                          show_default=False)],
    file: FileArg,
    out: Annotated[Path, typer.Option("--out", help="Scores file (.csv or .parquet).",
                                      show_default=False)],
    id_col: IdOpt = None,
    json: JsonOpt = False,
) -> None:
    """Score customers with a saved model: churn probability and the top 3 reasons per row."""
    from kehu.models.churn.snapshot import score_file

    res = score_file(model, file, out, id_col=id_col)
    if json:
        emit_json(res)
        return
    console.print(_("Scored {n} customers to {out}.").format(n=f"{res['rows']:,}",
                                                             out=res["out"]))


def register(root: typer.Typer) -> None:
    from kehu.cli.commands.churn_workspace import add_commands, models_app

    add_commands(app)
    root.add_typer(app, name="churn")
    root.add_typer(models_app, name="models")
