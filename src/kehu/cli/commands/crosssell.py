"""``kehu crosssell``: association rules, next best offers, their hold-out evaluation, and
products a segment is starting to favour."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

import typer
from rich.table import Table

from kehu.cli.common import JsonOpt, WorkspaceOpt, open_workspace, parse_date, require_positive
from kehu.cli.output import console, emit_json
from kehu.i18n import _

app = typer.Typer(help="Cross-sell and up-sell: association rules, next best offers.",
                  no_args_is_help=True)

AsOfOpt = Annotated[str | None, typer.Option("--as-of", help="Day to compute as of "
                                             "(default: the last transaction day).")]
KOpt = Annotated[int, typer.Option("--k", help="Offers per customer.")]


def _as_of(v: str | None) -> date | None:
    return parse_date("--as-of", v)


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return "∞" if v == float("inf") else f"{v:,.4f}" if abs(v) < 10 else f"{v:,.2f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def _table(title: str, rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> None:
    t = Table(title=title)
    for _key, label in columns:
        t.add_column(label)
    for r in rows:
        t.add_row(*[_fmt(r.get(key)) for key, _label in columns])
    console.print(t)


@app.command("rules")
def rules_command(
    level: Annotated[str, typer.Option("--level", help="product, category or subcategory.")
                     ] = "product",
    min_support: Annotated[float, typer.Option("--min-support", help="Least share of baskets "
                                               "holding the items.")] = 0.001,
    min_confidence: Annotated[float, typer.Option("--min-confidence", help="Least confidence "
                                                  "of a rule.")] = 0.05,
    max_items: Annotated[int, typer.Option("--max-items", help="2 (pairs) or 3 (triples).")
                         ] = 2,
    top: Annotated[int, typer.Option("--top", help="Rules to show, highest lift first.")] = 20,
    as_of: AsOfOpt = None,
    workspace: WorkspaceOpt = None,
    json: JsonOpt = False,
) -> None:
    """Association rules between products (or categories) in the same basket."""
    from kehu.analytics.basket import RULE_COLUMNS, association_rules

    require_positive("--top", top)
    ws = open_workspace(workspace)
    eng = ws.engine
    expr = association_rules(eng.table("transactions"), eng.table("products"), level=level,
                             min_support=min_support, min_confidence=min_confidence,
                             max_items=max_items, as_of=_as_of(as_of))
    rows = eng.execute_arrow(expr.limit(top)).to_pylist()
    ws.close()
    if json:
        emit_json({"level": level, "min_support": min_support,
                   "min_confidence": min_confidence, "rules": rows})
        return
    labels = {"antecedent": _("if bought"), "consequent": _("then also"),
              "support": _("support"), "confidence": _("confidence"), "lift": _("lift"),
              "conviction": _("conviction"), "leverage": _("leverage"),
              "baskets": _("baskets"), "antecedent_support": _("antecedent support"),
              "consequent_support": _("consequent support")}
    shown = ("antecedent", "consequent", "support", "confidence", "lift", "conviction",
             "baskets")
    _table(_("Association rules ({level})").format(level=level), rows,
           [(c, labels[c]) for c in RULE_COLUMNS if c in shown])
    if not rows:
        console.print(_("No rule reaches the thresholds; lower --min-support or "
                        "--min-confidence."))


@app.command("offers")
def offers_command(
    customer: Annotated[list[str] | None, typer.Option("--customer", help="Customer id "
                                                       "(repeat); default: everyone.")] = None,
    k: KOpt = 5,
    by: Annotated[str, typer.Option("--by", help="Segment for the popularity prior: tier, "
                                    "rfm_class, region, … or none.")] = "tier",
    top: Annotated[int, typer.Option("--top", help="Rows to show (the table view).")] = 50,
    as_of: AsOfOpt = None,
    workspace: WorkspaceOpt = None,
    json: JsonOpt = False,
) -> None:
    """Next best offers: products a customer does not hold, ranked by expected margin."""
    from kehu.models.crosssell import next_best_offers

    require_positive("--k", k)
    require_positive("--top", top)
    ws = open_workspace(workspace)
    res = next_best_offers(ws.engine, _as_of(as_of), k=k, segment_by=by,
                           customers=customer or None)
    ws.close()
    rows = res.to_pylist()
    if json:
        emit_json({"k": k, "offers": rows})
        return
    for r in rows:
        r["why"] = (_("bought {item} (confidence {c:.0%}, lift {lift:.1f})").format(
            item=r["reason"], c=r["reason_confidence"], lift=r["reason_lift"])
            if r["reason"] else _("popular in {segment}").format(segment=r["segment"]))
    _table(_("Next best offers"), rows[:top],
           [("customer_id", _("customer")), ("rank", _("rank")), ("product_id", _("product")),
            ("propensity", _("propensity")), ("expected_margin", _("expected margin")),
            ("why", _("reason"))])
    if len(rows) > top:
        console.print(_("{n} more rows: use --json or --customer.").format(n=len(rows) - top))


@app.command("evaluate")
def evaluate_command(
    holdout_days: Annotated[int, typer.Option("--holdout-days", help="Days held out at the "
                                              "end.")] = 90,
    k: KOpt = 5,
    by: Annotated[str, typer.Option("--by", help="Segment for the popularity prior.")
                  ] = "tier",
    as_of: AsOfOpt = None,
    workspace: WorkspaceOpt = None,
    json: JsonOpt = False,
) -> None:
    """Offer on data before the hold-out window; count who bought an offered product in it."""
    from kehu.models.crosssell import evaluate_holdout, register_evaluation

    require_positive("--holdout-days", holdout_days)
    require_positive("--k", k)
    ws = open_workspace(workspace)
    res = evaluate_holdout(ws.engine, _as_of(as_of), holdout_days=holdout_days, k=k,
                           segment_by=by)
    res["model_id"] = register_evaluation(ws, res, {"holdout_days": holdout_days, "k": k,
                                                    "segment_by": by})
    ws.close()
    if json:
        emit_json(res)
        return
    names = {"kehu": _("kehu (expected margin)"), "kehu_propensity": _("kehu (propensity)"),
             "popularity": _("popularity baseline")}
    rows = [{"method": names[m], **res[m]} for m in names]
    _table(_("Hold-out {start} – {end}: {n} customers bought something new").format(
        start=res["cutoff"], end=res["as_of"], n=res["customers"]), rows,
        [("method", _("method")), ("hit_rate", _("hit rate@{k}").format(k=k)),
         ("precision", _("precision@{k}").format(k=k)), ("recall", _("recall")),
         ("coverage", _("coverage"))])
    lift = res["lift_over_baseline"]
    if lift is not None:
        console.print(_("Hit rate is {lift:.2f}× the popularity baseline's.").format(lift=lift))


@app.command("rising")
def rising_command(
    by: Annotated[str, typer.Option("--by", help="Segment: tier, rfm_class, region, …")
                  ] = "tier",
    window_days: Annotated[int, typer.Option("--window-days", help="Length of each of the "
                                             "two windows compared.")] = 90,
    top: Annotated[int, typer.Option("--top", help="Products per segment.")] = 5,
    as_of: AsOfOpt = None,
    workspace: WorkspaceOpt = None,
    json: JsonOpt = False,
) -> None:
    """Products whose adoption in a segment rose most: last window vs the one before."""
    from kehu.models.crosssell import rising_products

    require_positive("--window-days", window_days)
    require_positive("--top", top)
    ws = open_workspace(workspace)
    rows = rising_products(ws.engine, _as_of(as_of), by=by, window_days=window_days,
                           top=top).to_pylist()
    ws.close()
    if json:
        emit_json({"by": by, "window_days": window_days, "products": rows})
        return
    _table(_("Rising products by {by}").format(by=by), rows,
           [("segment", by), ("rise", _("rank")), ("product_id", _("product")),
            ("rate_recent", _("last window")), ("rate_prior", _("window before")),
            ("ratio", _("ratio")), ("buyers_recent", _("buyers"))])


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="crosssell")
