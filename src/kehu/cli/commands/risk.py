"""``kehu risk payments|flags|anomalies``: payment risk and credit terms, fraud and arrears
rule flags with why they fired, unusual usage."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from kehu.cli.common import JsonOpt, WorkspaceOpt, open_workspace, parse_date, require_positive
from kehu.cli.output import console, emit_json
from kehu.errors import KehuInputError
from kehu.i18n import _

app = typer.Typer(help="Arrears and fraud: payment risk, credit terms, rule flags, anomalies.",
                  no_args_is_help=True)
AsOfOpt = Annotated[str | None, typer.Option("--as-of", help="Day to look from (default: the "
                                             "last transaction day).")]
TopOpt = Annotated[int, typer.Option("--top", help="Rows to show.")]


def _as_of(v: str | None) -> date | None:
    return parse_date("--as-of", v)


def _num(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:,.2f}"
    return str(v)


@app.command("payments")
def payments_cmd(workspace: WorkspaceOpt = None, as_of: AsOfOpt = None, top: TopOpt = 20,
                 json: JsonOpt = False) -> None:
    """Payment-risk score (0–100), class and recommended credit terms, riskiest first."""
    from kehu.analytics.payments import risk_class_label
    from kehu.risk import payments

    require_positive("--top", top)
    ws = open_workspace(workspace)
    t = payments(ws.engine, _as_of(as_of))
    ws.close()
    rows = t.to_pylist()
    classes: dict[str, int] = {}
    terms: dict[str, int] = {}
    for r in rows:
        classes[r["risk_class"]] = classes.get(r["risk_class"], 0) + 1
        terms[r["terms_rule"]] = terms.get(r["terms_rule"], 0) + 1
    if json:
        emit_json({"customers": len(rows), "classes": classes, "terms": terms,
                   "top": rows[:top]})
        return
    d = rows[0]["as_of"] if rows else as_of
    console.print(_("Payment risk as of {d}: {n} customers with invoices; {c}.").format(
        d=d, n=f"{len(rows):,}", c=", ".join(f"{risk_class_label(k)} {v:,}"
                                              for k, v in sorted(classes.items()))))
    console.print(_("Recommended terms: {t}.").format(
        t=", ".join(f"{k} {v:,}" for k, v in sorted(terms.items(), key=lambda x: -x[1]))))
    pol = {r["terms_rule"]: r for r in rows}
    for name in sorted(pol):
        r = pol[name]
        console.print(_("  {rule}: pay within {days} days, limit ×{f:g}{pre}").format(
            rule=name, days=r["due_days"], f=r["credit_limit_factor"],
            pre=_(", prepayment") if r["prepayment"] else ""))
    tab = Table(title=_("Riskiest payers"))
    for label in (_("customer"), _("score"), _("class"), _("late share 12m"),
                  _("unpaid overdue"), _("terms rule")):
        tab.add_column(label)
    for r in rows[:top]:
        share = r["late_share_12m"]
        tab.add_row(r["customer_id"], str(r["risk_score"]), risk_class_label(r["risk_class"]),
                    "" if share is None else f"{share:.0%}", _num(r["unpaid_overdue_amount"]),
                    r["terms_rule"])
    console.print(tab)


@app.command("flags")
def flags_cmd(
    rules: Annotated[Path | None, typer.Argument(help="Risk rules (YAML); default: the rules "
                                                 "shipped with kehu.")] = None,
    workspace: WorkspaceOpt = None, as_of: AsOfOpt = None, top: TopOpt = 50,
    json: JsonOpt = False,
) -> None:
    """Customers flagged by fraud and arrears rules, with the measured values and thresholds."""
    from kehu.risk import RuleSet, run_rules
    from kehu.risk.service import summary

    require_positive("--top", top)
    rs = RuleSet.load(rules) if rules else RuleSet.default()
    ws = open_workspace(workspace)
    t = run_rules(ws.engine, rs, _as_of(as_of))
    ws.close()
    rows = t.to_pylist()
    counts = summary(t)
    if json:
        emit_json({"flags": len(rows), "by_rule": counts, "rows": rows[:top]})
        return
    console.print(_("{n} flags from {r} rules.").format(n=f"{len(rows):,}", r=len(rs.rules)))
    s = Table(title=_("Flags per rule"))
    for label in (_("rule"), _("severity"), _("customers")):
        s.add_column(label)
    for c in counts:
        s.add_row(c["rule"], c["severity"], f"{c['customers']:,}")
    console.print(s)
    tab = Table(title=_("Flagged customers"))
    for label in (_("customer"), _("rule"), _("why")):
        tab.add_column(label)
    for r in rows[:top]:
        tab.add_row(r["customer_id"], r["rule"], r["why"])
    console.print(tab)


@app.command("anomalies")
def anomalies_cmd(
    workspace: WorkspaceOpt = None, as_of: AsOfOpt = None, top: TopOpt = 20,
    contamination: Annotated[str, typer.Option(
        "--contamination", help="Expected share of unusual customers (0–0.5) or 'auto'.")
    ] = "0.01",
    json: JsonOpt = False,
) -> None:
    """Customers whose usage is most unusual (Isolation Forest), with the features why."""
    from kehu.risk import anomalies

    require_positive("--top", top)
    try:
        c: float | str = contamination if contamination == "auto" else float(contamination)
    except ValueError:
        raise KehuInputError(_("The '{name}' parameter must be 'auto' or a number. Got {v!r} "
                               "instead.").format(name="--contamination", v=contamination)
                             ) from None
    ws = open_workspace(workspace)
    t = anomalies(ws.engine, _as_of(as_of), contamination=c)
    ws.close()
    rows = t.slice(0, top).to_pylist()
    flagged = sum(t.column("is_anomaly").to_pylist()) if t.num_rows else 0
    if json:
        emit_json({"customers": t.num_rows, "anomalies": flagged, "top": rows})
        return
    console.print(_("{a} of {n} customers flagged as unusual.").format(
        a=f"{flagged:,}", n=f"{t.num_rows:,}"))
    tab = Table(title=_("Most unusual usage"))
    for label in (_("rank"), _("customer"), _("score"), _("why")):
        tab.add_column(label)
    for r in rows:
        tab.add_row(str(r["rank"]), r["customer_id"], f"{r['anomaly_score']:.3f}", r["why"])
    console.print(tab)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="risk")
