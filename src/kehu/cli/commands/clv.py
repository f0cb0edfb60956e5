"""``kehu clv fit``: BG/NBD + Gamma-Gamma on the workspace or straight on a transactions file."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from kehu.cli.common import JsonOpt, WorkspaceOpt, open_workspace
from kehu.cli.output import console, emit_json
from kehu.errors import KehuInputError
from kehu.i18n import _

app = typer.Typer(help="Customer lifetime value: BG/NBD and Gamma-Gamma.", no_args_is_help=True)


@app.command("fit")
def fit(
    workspace: WorkspaceOpt = None,
    file: Annotated[Path | None, typer.Option(help="Fit on this transactions file instead of "
                                              "the workspace (CSV, Excel, Parquet, JSONL).")
                    ] = None,
    customer_col: Annotated[str, typer.Option(help="Customer column of --file.")] = "customer_id",
    date_col: Annotated[str, typer.Option(help="Date column of --file.")] = "date",
    amount_col: Annotated[str | None, typer.Option(help="Amount column of --file (needed for "
                                                   "Gamma-Gamma).")] = None,
    date_format: Annotated[str | None, typer.Option(help="strptime format of --date-col, e.g. "
                                                    "%Y%m%d (default: detected).")] = None,
    calibration_end: Annotated[str | None, typer.Option(
        help="Last day of the calibration period (default: the last transaction day).")] = None,
    freq: Annotated[str, typer.Option(help="Time unit: D (days) or W (weeks).")] = "W",
    json: JsonOpt = False,
) -> None:
    """Fit BG/NBD (and Gamma-Gamma when amounts exist); print parameters, standard errors and
    log-likelihoods."""
    from kehu.analytics import customer_summary
    from kehu.models.clv import BetaGeo, GammaGamma

    if freq not in ("D", "W"):
        raise KehuInputError(_("The '--freq' parameter must be D or W. Got {v!r} instead.")
                             .format(v=freq))
    if file is not None:
        table = _file_table(file, customer_col, date_col, amount_col, date_format)
        cols = {"customer_col": "customer_id", "time_col": "transaction_time",
                "amount_col": "amount"}
    else:
        ws = open_workspace(workspace)
        table = ws.engine.table("transactions")
        table = table.filter(table.kind.isnull() | (table.kind != "refund"))
        cols = {}
    if calibration_end:
        try:
            cutoff = date.fromisoformat(calibration_end)
        except ValueError:
            raise KehuInputError(_("The '--calibration-end' parameter must be a date like "
                                   "1997-09-30. Got {v!r} instead.").format(
                v=calibration_end)) from None
    else:
        last = table[cols.get("time_col", "transaction_time")].max().to_pyarrow().as_py()
        if last is None:
            raise KehuInputError(_("No transactions to fit on."))
        cutoff = last.date() if isinstance(last, datetime) else last
    summ = customer_summary(table, cutoff, freq, **cols).to_pyarrow()  # type: ignore[arg-type]
    x = summ.column("frequency").to_numpy()
    tx = summ.column("recency").to_numpy()
    t = summ.column("T").to_numpy()
    bg = BetaGeo().fit(x, tx, t)
    out: dict[str, Any] = {**bg.params_, "ll": bg.log_likelihood_,
                           "se": {**bg.standard_errors_}, "customers": len(x),
                           "calibration_end": cutoff.isoformat(), "freq": freq}
    mv = summ.column("monetary_value").to_numpy(zero_copy_only=False)
    keep = (x > 0) & (mv > 0)
    if keep.any() and (file is None or amount_col):
        # customers whose repeat purchases average 0 (free items) cannot enter Gamma-Gamma
        gg = GammaGamma().fit(x[keep], mv[keep])
        out.update(gg.params_)
        out["gg_ll"] = gg.log_likelihood_
        out["gg_customers"] = int(keep.sum())
        out["gg_excluded_zero_spend"] = int(((x > 0) & ~keep).sum())
        out["se"].update(gg.standard_errors_)
    if json:
        emit_json(out)
        return
    tab = Table(title=_("CLV models fitted on {n} customers (calibration to {d}, unit {f})")
                .format(n=f"{len(x):,}", d=cutoff, f=freq))
    tab.add_column(_("parameter"))
    tab.add_column(_("estimate"), justify="right")
    tab.add_column(_("std. error"), justify="right")
    for k in ("r", "alpha", "a", "b", "p", "q", "gamma"):
        if k in out:
            tab.add_row(k, f"{out[k]:.4f}", f"{out['se'][k]:.4f}")
    console.print(tab)
    console.print(_("BG/NBD log-likelihood: {ll:.1f}").format(ll=out["ll"]))
    if "gg_ll" in out:
        console.print(_("Gamma-Gamma log-likelihood: {ll:.1f}").format(ll=out["gg_ll"]))


def _file_table(path: Path, customer_col: str, date_col: str, amount_col: str | None,
                date_format: str | None) -> Any:
    """Read the file with kehu's readers and coercion rules into an in-memory Ibis table."""
    import ibis
    import pyarrow as pa

    from kehu.ingest.coerce import to_float, to_timestamp
    from kehu.ingest.readers import ReadOptions, open_source

    reader = open_source(path, ReadOptions())
    missing = [c for c in (customer_col, date_col, amount_col) if c and c not in reader.headers]
    if missing:
        raise KehuInputError(_("{path} has no column {cols}. Its columns: {headers}.").format(
            path=path, cols=", ".join(missing), headers=", ".join(reader.headers)))
    parts = []
    bad = 0
    for b in reader.batches():
        ts = to_timestamp(b.columns[date_col], fmt=date_format)
        amt = to_float(b.columns[amount_col]).values if amount_col else pa.nulls(
            b.num_rows, pa.float64())
        bad += int(ts.bad.true_count) if hasattr(ts.bad, "true_count") else 0
        parts.append(pa.table({"customer_id": b.columns[customer_col].cast(pa.string()),
                               "transaction_time": ts.values, "amount": amt}))
    if bad:
        raise KehuInputError(_("{path}: {n} values of {col} are not dates; pass --date-format."
                               ).format(path=path, n=bad, col=date_col))
    table = pa.concat_tables(parts) if parts else pa.table({
        "customer_id": pa.array([], pa.string()),
        "transaction_time": pa.array([], pa.timestamp("us")),
        "amount": pa.array([], pa.float64())})
    return ibis.memtable(table)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="clv")
