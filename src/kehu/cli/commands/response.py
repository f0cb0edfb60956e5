"""``kehu response fit|score``: the campaign response model on a workspace."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from kehu.cli.common import JsonOpt, WorkspaceOpt, open_workspace, parse_date, require_positive
from kehu.cli.output import console, emit_json
from kehu.errors import KehuInputError
from kehu.i18n import _

app = typer.Typer(help="Campaign response: fit the model, score a planned audience.",
                  no_args_is_help=True)
AsOfOpt = Annotated[str | None, typer.Option("--as-of", help="Cut-off date (default: the last "
                                             "transaction day).", show_default=False)]


def _money(v: Any) -> str:
    if v is None:
        return "-"
    return f"¥{v:,.0f}" if abs(v) >= 100 else f"¥{v:,.2f}"


def _pct(v: Any) -> str:
    return "-" if v is None or v != v else f"{v:.1%}"


def _as_of(value: str | None) -> Any:
    return parse_date("--as-of", value)


@app.command("fit")
def fit(
    workspace: WorkspaceOpt = None,
    as_of: AsOfOpt = None,
    window: Annotated[int, typer.Option("--window", help="Days after a contact in which a "
                                        "response counts.")] = 30,
    max_rows: Annotated[int, typer.Option("--max-rows", help="Fit on a stratified sample of "
                                          "at most this many contacts.")] = 200_000,
    json: JsonOpt = False,
) -> None:
    """Train the response model on past treatment contacts, evaluate it on the latest
    campaigns and register it."""
    from kehu.models.response import fit_response

    require_positive("--window", window)
    require_positive("--max-rows", max_rows)
    ws = open_workspace(workspace)
    rep = fit_response(ws, _as_of(as_of), window_days=window, max_rows=max_rows)
    if json:
        emit_json(rep.to_dict())
        return
    h = rep.holdout
    console.print(_("Registered {model}: {algo}, trained on {n} treatment contacts; response "
                    "rate {rate}.").format(model=rep.model_id, algo=rep.chosen_model,
                                           n=f"{rep.train_rows:,}", rate=_pct(rep.response_rate)))
    tab = Table(title=_("Hold-out evaluation ({contacts})").format(
        contacts=rep.cutoffs["holdout_contacts"]))
    tab.add_column(_("metric"))
    tab.add_column(_("value"), justify="right")
    lo, hi = h["predicted_interval"]
    for name, value in ((_("ROC AUC"), f"{h['auc']:.3f}"), (_("PR AUC"), f"{h['pr_auc']:.3f}"),
                        (_("lift in the top 10%"), f"{h['lift_top_decile']:.2f}"),
                        (_("predicted responses"), f"{h['predicted_responses']:.1f} "
                                                   f"({lo:.1f}–{hi:.1f})"),
                        (_("actual responses"), f"{h['actual_responses']:,}")):
        tab.add_row(name, value)
    console.print(tab)


def _customers_file(path: Path) -> list[str]:
    """Customer ids from a file: one per line, or a CSV with a ``customer_id`` column."""
    if not path.exists():
        raise KehuInputError(_("Customer file not found: {path}.").format(path=path))
    lines = [ln.strip() for ln in path.read_text(encoding="utf-8-sig").splitlines()]
    lines = [ln for ln in lines if ln]
    if lines and "," in lines[0]:
        import pandas as pd

        frame = pd.read_csv(path, dtype=str, encoding="utf-8-sig")
        if "customer_id" not in frame.columns:
            raise KehuInputError(_("{path}: a CSV of customers needs a 'customer_id' column. "
                                   "Found: {cols}.").format(path=path,
                                                           cols=", ".join(frame.columns)))
        return frame.customer_id.dropna().tolist()
    if lines and lines[0].lower() == "customer_id":
        lines = lines[1:]
    return lines


@app.command("score")
def score(
    segment: Annotated[str | None, typer.Option("--segment", help="A saved segment's name.")
                       ] = None,
    spec: Annotated[Path | None, typer.Option("--spec", help="A segment spec (YAML).")] = None,
    customers: Annotated[Path | None, typer.Option("--customers", help="A file of customer "
                                                   "ids (one a line, or a CSV with "
                                                   "customer_id).")] = None,
    channel: Annotated[str | None, typer.Option("--channel", help="Channel of the planned "
                                                "contact, e.g. sms.")] = None,
    offer: Annotated[str | None, typer.Option("--offer", help="Offer of the planned "
                                              "contact.")] = None,
    cost_per_contact: Annotated[float | None, typer.Option(
        "--cost-per-contact", help="Cost of one contact (default: the mean of past "
        "campaigns on the channel).", show_default=False)] = None,
    fixed_cost: Annotated[float, typer.Option("--fixed-cost", help="Fixed cost of the "
                                              "campaign.")] = 0.0,
    top: Annotated[int, typer.Option("--top", help="How many customers to list.")] = 20,
    workspace: WorkspaceOpt = None,
    as_of: AsOfOpt = None,
    json: JsonOpt = False,
) -> None:
    """Expected responses, revenue, margin, cost and ROI of contacting an audience."""
    from kehu.models.response import score_audience
    from kehu.segments import SegmentSpec

    given = [x for x in (segment, spec, customers) if x is not None]
    if len(given) != 1:
        raise KehuInputError(_("Give exactly one audience: --segment NAME, --spec FILE or "
                               "--customers FILE."))
    require_positive("--top", top)
    ws = open_workspace(workspace)
    audience: Any = segment
    if spec is not None:
        audience = SegmentSpec.load(spec)
    elif customers is not None:
        audience = _customers_file(customers)
    res = score_audience(ws, audience, channel=channel, offer=offer,
                         cost_per_contact=cost_per_contact, fixed_cost=fixed_cost,
                         as_of=_as_of(as_of))
    if json:
        emit_json(res.to_dict(top=top))
        return
    lo, hi = res.interval
    console.print(_("{n} customers scored with {model} as of {as_of}: {e:.1f} responses "
                    "expected ({lo:.1f}–{hi:.1f}), revenue {rev}, margin {margin}, cost "
                    "{cost}, ROI {roi}.").format(
        n=f"{res.scored:,}", model=res.model_id, as_of=res.as_of, e=res.expected_responses,
        lo=lo, hi=hi, rev=_money(res.expected_revenue), margin=_money(res.expected_margin),
        cost=_money(res.cost), roi=_pct(res.roi)))
    tab = Table(title=_("By value tier"))
    for head in (_("tier"), _("customers"), _("expected responses"), _("revenue"),
                 _("margin"), _("cost"), _("ROI")):
        tab.add_column(head, justify="right")
    for r in res.by_tier:
        tab.add_row(r["tier"], f"{r['customers']:,}", f"{r['expected_responses']:.1f}",
                    _money(r["expected_revenue"]), _money(r["expected_margin"]),
                    _money(r["cost"]), _pct(r["roi"]))
    console.print(tab)
    best = Table(title=_("Most likely to respond"))
    for head in (_("customer"), _("tier"), _("probability")):
        best.add_column(head)
    for r in res.customers.nlargest(top, "probability").itertuples():
        best.add_row(str(r.customer_id), str(r.tier), _pct(r.probability))
    console.print(best)
    for note in res.notes:
        console.print(f"[yellow]{note}[/]")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="response")
