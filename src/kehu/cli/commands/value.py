"""``kehu rfm`` (RFM and the eight classes) and ``kehu tiers`` (value tiers, changes, Pareto)."""

from __future__ import annotations

from datetime import date
from typing import Annotated

import typer
from rich.table import Table

from kehu.cli.common import JsonOpt, WorkspaceOpt, open_workspace
from kehu.cli.output import console, emit_json
from kehu.errors import KehuInputError
from kehu.i18n import _, get_locale

AsOf = Annotated[str | None, typer.Option(
    "--as-of", help="Date to compute for (default: the last transaction day).")]


def _as_of(ws: object, value: str | None, name: str = "--as-of") -> date:
    if value:
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise KehuInputError(_("The '{name}' parameter must be a date like 2024-01-31. Got "
                                   "{v!r} instead.").format(name=name, v=value)) from None
    tx = ws.engine.table("transactions")  # type: ignore[attr-defined]
    last = tx.transaction_time.max().to_pyarrow().as_py()
    if last is None:
        raise KehuInputError(_("No transactions yet: import some, or pass --as-of."))
    return last.date()


def rfm_command(
    workspace: WorkspaceOpt = None,
    as_of: AsOf = None,
    reference: Annotated[str, typer.Option(help="High/low against the mean or the median.")
                         ] = "mean",
    customers: Annotated[bool, typer.Option("--customers", help="With --json, include every "
                                            "customer's RFM row.")] = False,
    json: JsonOpt = False,
) -> None:
    """RFM per customer and the eight RFM classes (重要价值客户 …) as of a date."""
    from kehu.analytics.rfm import RfmClassScheme, class_summary, rfm, rfm_classes

    if reference not in ("mean", "median"):
        raise KehuInputError(_("The '--reference' parameter must be mean or median. Got {v!r} "
                               "instead.").format(v=reference))
    ws = open_workspace(workspace)
    day = _as_of(ws, as_of)
    scheme = RfmClassScheme(reference=reference)
    classified = rfm_classes(rfm(ws.engine.table("transactions"), day), scheme)
    summ = class_summary(classified).to_pyarrow().to_pylist()
    loc = get_locale()
    for r in summ:
        r["name"] = scheme.name(r["rfm_class"], loc)
    if json:
        out: dict[str, object] = {"as_of": day.isoformat(), "reference": reference,
                                  "classes": summ}
        if customers:
            out["customers"] = classified.to_pyarrow().to_pylist()
        emit_json(out)
        return
    t = Table(title=_("RFM classes as of {d} (reference: {ref})").format(d=day, ref=reference))
    for label in (_("class"), _("customers"), _("share"), _("revenue"), _("revenue share")):
        t.add_column(label, justify="left" if label == _("class") else "right")
    for r in summ:
        t.add_row(r["name"], f"{r['customers']:,}", f"{r['customer_share']:.1%}",
                  f"¥{r['revenue']:,.0f}", f"{r['revenue_share']:.1%}")
    console.print(t)


def tiers_command(
    workspace: WorkspaceOpt = None,
    as_of: AsOf = None,
    compare: Annotated[str | None, typer.Option(
        help="Also show moves between the tiers at this earlier date and --as-of.")] = None,
    basis: Annotated[str | None, typer.Option(
        help="spend or margin (default: the workspace's tier scheme, see Settings).")] = None,
    json: JsonOpt = False,
) -> None:
    """Value tiers (diamond / gold / silver / regular) on trailing-12-month value, with the
    Pareto / ABC report and, with --compare, upgrades and downgrades."""
    from kehu.analytics.schemes import tier_scheme
    from kehu.analytics.tiers import (
        pareto,
        tier_changes,
        tiers_as_of,
        trailing_value,
        transition_matrix,
    )

    if basis not in (None, "spend", "margin"):
        raise KehuInputError(_("The '--basis' parameter must be spend or margin. Got {v!r} "
                               "instead.").format(v=basis))
    ws = open_workspace(workspace)
    day = _as_of(ws, as_of)
    scheme = tier_scheme(ws)
    if basis is not None and basis != scheme.basis:
        scheme = scheme.model_copy(update={"basis": basis})
    tx, cu = ws.engine.table("transactions"), ws.engine.table("customers")
    tiers = tiers_as_of(tx, cu, day, scheme)
    counts = {r["tier"]: r for r in tiers.group_by("tier").aggregate(
        customers=tiers.count(), value=tiers[scheme.basis].sum()).to_pyarrow().to_pylist()}
    rep = pareto(trailing_value(tx, cu, day, scheme.window_days))
    moves = None
    if compare:
        start = _as_of(ws, compare, "--compare")
        ch = tier_changes(tx, cu, start, day, scheme)
        moves = {"from": start.isoformat(),
                 "matrix": transition_matrix(ch).to_pyarrow().to_pylist(),
                 "moves": {r["move"]: r["n"] for r in ch.group_by("move").aggregate(
                     n=ch.count()).to_pyarrow().to_pylist()}}
    zh = get_locale().startswith("zh")
    rows = [{"tier": t.code, "name": t.name_zh if zh else t.name_en,
             "customers": counts.get(t.code, {}).get("customers", 0),
             "value": counts.get(t.code, {}).get("value", 0.0)} for t in scheme.tiers]
    if json:
        emit_json({"as_of": day.isoformat(), "basis": scheme.basis, "tiers": rows,
                   "pareto": rep.model_dump(), "changes": moves})
        return
    t = Table(title=_("Value tiers as of {d} (trailing 12-month {basis})").format(
        d=day, basis=scheme.basis))
    for label in (_("tier"), _("customers"), _("value")):
        t.add_column(label, justify="left" if label == _("tier") else "right")
    for r in rows:
        t.add_row(r["name"], f"{r['customers']:,}", f"¥{r['value']:,.0f}")
    console.print(t)
    console.print(_("Top 20 % of customers hold {r} of revenue and {m} of margin; ABC: A {a}, "
                    "B {b}, C {c} customers.").format(
        r=f"{rep.top_share['20%']['revenue']:.1%}", m=f"{rep.top_share['20%']['margin']:.1%}",
        a=int(rep.abc.get("A", {}).get("customers", 0)),
        b=int(rep.abc.get("B", {}).get("customers", 0)),
        c=int(rep.abc.get("C", {}).get("customers", 0))))
    if moves:
        console.print(_("Since {d}: {up} upgraded, {down} downgraded, {same} unchanged.").format(
            d=moves["from"], up=moves["moves"].get("up", 0), down=moves["moves"].get("down", 0),
            same=moves["moves"].get("same", 0)))


def lifecycle_command(
    workspace: WorkspaceOpt = None,
    as_of: AsOf = None,
    compare: Annotated[str | None, typer.Option(
        help="Also show the transition matrix from this earlier date to --as-of.")] = None,
    json: JsonOpt = False,
) -> None:
    """Lifecycle stages (prospect, new, active, growing, declining, dormant, churned, won-back)
    as of a date, and the transitions since an earlier date."""
    from kehu.analytics.lifecycle import STAGES, lifecycle, transitions
    from kehu.analytics.schemes import lifecycle_rules

    ws = open_workspace(workspace)
    rules = lifecycle_rules(ws)
    day = _as_of(ws, as_of)
    e = ws.engine
    args = (e.table("transactions"), e.table("customers"), e.table("churn_events"))
    st = lifecycle(*args, day, rules)
    counts = {r["stage"]: r["n"] for r in st.group_by("stage").aggregate(
        n=st.count()).to_pyarrow().to_pylist()}
    matrix = None
    if compare:
        start = _as_of(ws, compare, "--compare")
        matrix = transitions(*args, start, day, rules).to_pyarrow().to_pylist()
    leads = None
    if ws.warehouse.exists("leads"):
        from kehu.analytics.funnel import funnel

        leads = funnel(e.table("leads")).to_pyarrow().to_pylist()[0]
    if json:
        emit_json({"as_of": day.isoformat(), "stages": counts, "compare": compare,
                   "transitions": matrix, "lead_funnel": leads})
        return
    t = Table(title=_("Lifecycle stages as of {d}").format(d=day))
    t.add_column(_("stage"))
    t.add_column(_("customers"), justify="right")
    for s in STAGES:
        t.add_row(stage_label(s), f"{counts.get(s, 0):,}")
    console.print(t)
    if matrix:
        froms = sorted({r["stage_from"] for r in matrix})
        m = Table(title=_("From {a} (rows) to {b} (columns)").format(a=compare, b=day))
        m.add_column("")
        for s in STAGES:
            m.add_column(stage_label(s), justify="right")
        cell = {(r["stage_from"], r["stage_to"]): r["customers"] for r in matrix}
        for f in froms:
            m.add_row(stage_label(f), *[f"{cell.get((f, s), 0):,}" for s in STAGES])
        console.print(m)
    if leads:
        console.print(_("Lead funnel: {l} leads → {p} prospects → {c} customers ({r} of "
                        "leads; {lost} lost).").format(
            l=f"{leads['leads']:,}", p=f"{leads['prospects']:,}", c=f"{leads['customers']:,}",
            r=f"{leads['customer_rate']:.1%}", lost=f"{leads['lost']:,}"))


def stage_label(code: str) -> str:
    return {"prospect": _("prospect"), "new": _("new"), "active": _("active"),
            "growing": _("growing"), "declining": _("declining"), "dormant": _("dormant"),
            "churned": _("churned"), "won_back": _("won back"),
            "not_yet_customer": _("not yet a customer")}.get(code, code)


def register(app: typer.Typer) -> None:
    _register_budget(app)
    _register_value(app)
    _register_forecast(app)
    _register_clusters(app)
    _register_satisfaction(app)
    app.command("lifecycle")(lifecycle_command)
    app.command("rfm")(rfm_command)
    app.command("tiers")(tiers_command)


def clusters_command(
    workspace: WorkspaceOpt = None,
    as_of: AsOf = None,
    k_min: Annotated[int, typer.Option(help="Fewest clusters to try.")] = 2,
    k_max: Annotated[int, typer.Option(help="Most clusters to try.")] = 8,
    json: JsonOpt = False,
) -> None:
    """Behavioural clusters (k-means, k by silhouette), each described in words."""
    from kehu.models.clusters import BehaviourClusters, behaviour_features

    ws = open_workspace(workspace)
    day = _as_of(ws, as_of)
    feats = behaviour_features(ws.engine, day)
    m = BehaviourClusters(k_range=(k_min, k_max)).fit(feats)
    out = {"as_of": day.isoformat(), "k": m.k_, "silhouette": m.silhouette_,
           "clusters": [c.__dict__ for c in m.clusters_]}
    if json:
        emit_json(out)
        return
    t = Table(title=_("{k} behavioural clusters as of {d} (silhouette {s:.2f})").format(
        k=m.k_, d=day, s=m.silhouette_[m.k_]))
    for label in (_("cluster"), _("customers"), _("share"), _("description")):
        t.add_column(label)
    for c in m.clusters_:
        t.add_row(str(c.label), f"{c.size:,}", f"{c.share:.1%}", c.description)
    console.print(t)


def _register_clusters(app: typer.Typer) -> None:
    app.command("clusters")(clusters_command)


def satisfaction_command(
    workspace: WorkspaceOpt = None,
    by: Annotated[str | None, typer.Option(help="tier, rfm_class, lifecycle_stage, region, "
                                           "month or channel.")] = None,
    json: JsonOpt = False,
) -> None:
    """NPS and CSAT (optionally by a dimension), complaints and resolution time, and the
    complaint categories that move NPS."""
    from kehu.analytics.satisfaction import complaints, nps_csat, nps_drivers

    ws = open_workspace(workspace)
    e = ws.engine
    scores = nps_csat(e, by).to_pyarrow().to_pylist()
    comp = complaints(e).to_pyarrow().to_pylist()
    drivers = nps_drivers(e).to_pyarrow().to_pylist()
    if json:
        emit_json({"by": by, "nps_csat": scores, "complaints": comp, "nps_drivers": drivers})
        return
    t = Table(title=_("NPS and CSAT"))
    cols = ([by] if by else []) + ["nps_answers", "nps", "csat_answers", "csat_mean"]
    for name in cols:
        t.add_column(name)
    for r in scores:
        t.add_row(*["-" if r[k] is None else (f"{r[k]:.1f}" if isinstance(r[k], float)
                                              else str(r[k])) for k in cols])
    console.print(t)
    tk = Table(title=_("Tickets by category"))
    for col in ("category", "tickets", "complaints", "resolved_share", "median_hours",
                "satisfaction"):
        tk.add_column(col)
    for r in comp:
        tk.add_row(r["category"], f"{r['tickets']:,}", f"{r['complaints']:,}",
                  f"{r['resolved_share']:.0%}", f"{r['median_hours'] or 0:.1f}",
                  f"{r['satisfaction'] or 0:.2f}")
    console.print(tk)
    for d in drivers:
        console.print(_("After a complaint about {cat}: NPS score {s:.2f} vs {b:.2f} without "
                        "({diff:+.2f}, {n} answers).").format(
            cat=d["category"], s=d["mean_score"], b=d["base_score"], diff=d["difference"],
            n=d["answers"]))


def _register_satisfaction(app: typer.Typer) -> None:
    app.command("satisfaction")(satisfaction_command)


def forecast_command(
    workspace: WorkspaceOpt = None,
    as_of: AsOf = None,
    months: Annotated[int, typer.Option(help="Months ahead (30-day months).")] = 12,
    by: Annotated[str | None, typer.Option(help="tier, rfm_class or lifecycle_stage "
                                           "(needs 'kehu run').")] = None,
    json: JsonOpt = False,
) -> None:
    """Expected purchases, purchasing customers and revenue per month, with approximate
    95 % intervals, from the CLV models."""
    from kehu.analytics.forecast import forecast

    ws = open_workspace(workspace)
    day = _as_of(ws, as_of)
    f = forecast(ws.engine, day, months, by)
    if json:
        emit_json({"as_of": day.isoformat(), "by": by,
                   "rows": f.to_dict(orient="records")})
        return
    t = Table(title=_("Forecast from {d}").format(d=day))
    cols = ["month"] + ([by] if by else []) + ["purchases", "purchasing_customers", "revenue"]
    for c in cols:
        t.add_column(c, justify="right")
    for r in f.to_dict(orient="records"):
        t.add_row(str(r["month"]), *([str(r[by])] if by else []),
                  f"{r['purchases']:,.0f} ({r['purchases_low']:,.0f}–{r['purchases_high']:,.0f})",
                  f"{r['purchasing_customers']:,.0f}",
                  f"¥{r['revenue']:,.0f} (¥{r['revenue_low']:,.0f}–¥{r['revenue_high']:,.0f})")
    console.print(t)


def _register_forecast(app: typer.Typer) -> None:
    app.command("forecast")(forecast_command)


def value_command(
    workspace: WorkspaceOpt = None,
    by: Annotated[str, typer.Option(help="tier, rfm_class or lifecycle_stage.")] = "tier",
    top: Annotated[int, typer.Option(help="Unprofitable customers to list.")] = 10,
    json: JsonOpt = False,
) -> None:
    """Customer value from the latest run: historical + current + potential by group, and the
    unprofitable customers with their largest cost."""
    from kehu.analytics.run import SCORES_TABLE
    from kehu.cli.common import require_positive

    require_positive("--top", top)
    if by not in ("tier", "rfm_class", "lifecycle_stage"):
        raise KehuInputError(_("The '--by' parameter must be tier, rfm_class or "
                               "lifecycle_stage. Got {v!r} instead.").format(v=by))
    ws = open_workspace(workspace)
    if not ws.warehouse.exists(SCORES_TABLE):
        raise KehuInputError(_("No analysis run yet: run 'kehu run' first."))
    s = ws.engine.table(SCORES_TABLE)
    last = s.aggregate(r=s.run_id.max()).r.as_scalar()
    s = s.filter(s.run_id == last)
    groups = s.group_by(s[by].fill_null("-").name(by)).aggregate(
        customers=s.count(), historical=s.historical_value.sum(),
        current=s.current_value.sum(), potential=s.potential_value.sum(),
        unprofitable=s.unprofitable.fill_null(False).cast("int64").sum(),
    ).order_by(ibis_desc("historical")).to_pyarrow().to_pylist()
    worst = s.filter(s.unprofitable.fill_null(False)).order_by("profit").select(
        "customer_id", "revenue", "product_cost", "service_cost", "marketing_cost", "profit",
        "main_cost").limit(top).to_pyarrow().to_pylist()
    if json:
        emit_json({"by": by, "groups": groups, "unprofitable": worst})
        return
    t = Table(title=_("Customer value by {by}: historical + current (CLV) + potential").format(
        by=by))
    for label in (by, _("customers"), _("historical"), _("current"), _("potential"),
                  _("unprofitable")):
        t.add_column(label, justify="left" if label == by else "right")
    for r in groups:
        t.add_row(str(r[by]), f"{r['customers']:,}", f"¥{r['historical'] or 0:,.0f}",
                  f"¥{r['current'] or 0:,.0f}", f"¥{r['potential'] or 0:,.0f}",
                  f"{r['unprofitable']:,}")
    console.print(t)
    if worst:
        u = Table(title=_("Least profitable customers"))
        for label in (_("customer"), _("revenue"), _("profit"), _("largest cost")):
            u.add_column(label)
        for r in worst:
            u.add_row(r["customer_id"], f"¥{r['revenue']:,.2f}", f"¥{r['profit']:,.2f}",
                      cost_label(r["main_cost"]))
        console.print(u)


def cost_label(code: str | None) -> str:
    return {"product": _("product cost"), "service": _("service cost (tickets)"),
            "marketing": _("marketing cost (contacts)")}.get(code or "", "-")


def ibis_desc(col: str) -> object:
    import ibis

    return ibis.desc(col)


def _register_value(app: typer.Typer) -> None:
    app.command("value")(value_command)


def budget_command(workspace: WorkspaceOpt = None, json: JsonOpt = False) -> None:
    """Budgets (imported with 'kehu import budgets FILE') against actuals from the cube."""
    from kehu.analytics.budget import budget_vs_actual

    ws = open_workspace(workspace)
    if not ws.warehouse.exists("budgets"):
        raise KehuInputError(_("No budgets yet: import them with 'kehu import budgets FILE' "
                               "(month, measure, optional dimension and value, amount)."))
    r = budget_vs_actual(ws.engine)
    if json:
        emit_json(r.to_dict(orient="records"))
        return
    t = Table(title=_("Budget against actuals"))
    for label in (_("month"), _("measure"), _("dimension"), _("budget"), _("actual"),
                  _("variance"), _("attainment")):
        t.add_column(label)
    for row in r.to_dict(orient="records"):
        dim = f"{row['dimension']}={row['dimension_value']}" if row.get("dimension") else "-"
        att = row["attainment"]
        t.add_row(str(row["month"])[:7], str(row["measure"]), dim, f"{row['amount']:,.0f}",
                  f"{row['actual']:,.0f}", f"{row['variance']:+,.0f}",
                  "-" if att != att else f"{att:.0%}")
    console.print(t)


def _register_budget(app: typer.Typer) -> None:
    app.command("budget")(budget_command)
