"""``kehu generate`` (a synthetic company's source exports) and ``kehu demo`` (the whole
path: workspace, generate, import through the normal importers, analyse, show results)."""

from __future__ import annotations

import shutil
import sys
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from kehu.cli.common import JsonOpt
from kehu.cli.output import console, emit_json, err_console, progress
from kehu.errors import KehuError, KehuInputError
from kehu.i18n import _

DEMO_MARK = ".kehu-demo"

Industry = Annotated[str, typer.Option(help="telco, retail or bank.")]
Customers = Annotated[int, typer.Option(help="Number of customers.")]
Seed = Annotated[int, typer.Option(help="Random seed (same seed, same files).")]


def generate(
    out: Annotated[Path, typer.Option(help="Folder for the exports (created).")],
    industry: Industry = "retail",
    customers: Customers = 20_000,
    seed: Seed = 42,
    start: Annotated[str, typer.Option(help="First day of the history.")] = "2023-01-01",
    end: Annotated[str, typer.Option(help="Last day of the history.")] = "2025-12-31",
    dirty_rate: Annotated[float, typer.Option(help="Share of dirty rows to plant.")] = 0.02,
    json: JsonOpt = False,
) -> None:
    """Write a realistic synthetic company as source-system exports plus its ground truth."""
    from kehu.demo import generate as run

    summary = _generate(run, out, industry, customers, seed, _date("--start", start),
                        _date("--end", end), dirty_rate, json)
    if json:
        emit_json(summary.to_dict())
        return
    t = Table(title=_("Generated {industry} company: {n} customers in {s}s").format(
        industry=industry, n=f"{customers:,}", s=summary.seconds))
    t.add_column(_("file"))
    t.add_column(_("rows"), justify="right")
    for f, n in summary.files.items():
        t.add_row(f, f"{n:,}")
    console.print(t)
    console.print(_("Planted dirty rows: {d}").format(
        d=", ".join(f"{k} {v:,}" for k, v in summary.dirty.items())))
    console.print(_("Load it with: kehu load {manifest}").format(manifest=summary.manifest))


def _date(name: str, value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise KehuInputError(_("The '{name}' parameter must be a date like 2024-01-31. Got "
                               "{v!r} instead.").format(name=name, v=value)) from None


def _generate(run: Any, out: Path, industry: str, customers: int, seed: int, start: date,
              end: date, dirty_rate: float, quiet: bool) -> Any:
    with progress(enabled=not quiet and sys.stderr.isatty()) as prog:
        task = prog.add_task(_("Generating"), total=1000)
        return run(industry, customers, seed, out, start=start, end=end, dirty_rate=dirty_rate,
                   progress=lambda f: prog.update(task, completed=int(f * 1000)))


def demo(
    path: Annotated[Path, typer.Option(help="Folder of the demo workspace (re-created).")] = Path(
        "kehu-demo"),
    industry: Industry = "retail",
    customers: Customers = 20_000,
    seed: Seed = 42,
    no_serve: Annotated[bool, typer.Option("--no-serve", help="Do not start the web app.")
                        ] = False,
    port: Annotated[int, typer.Option(help="Port of the web app (on 127.0.0.1).")] = 8000,
    json: JsonOpt = False,
) -> None:
    """Create a demo workspace, generate a company, import it, analyse it, show the results."""
    from kehu.analytics.headline import headline
    from kehu.cli.commands.ingest import show_reports
    from kehu.demo import generate as run
    from kehu.ingest.journal import visible_rejects
    from kehu.ingest.manifest import load_manifest
    from kehu.workspace import Workspace

    root = path.expanduser().resolve()
    if root.exists():
        if not (root / DEMO_MARK).exists():
            raise KehuInputError(_("{path} exists and is not a kehu demo folder; choose another "
                                   "--path.").format(path=root))
        shutil.rmtree(root)
    ws = Workspace.init(root, name=_("Demo company ({industry})").format(industry=industry))
    (root / DEMO_MARK).write_text("kehu demo workspace: 'kehu demo' re-creates it\n")
    sources = root / "sources"
    if not json:
        err_console.print(_("1/5 Generating {n} customers ({industry}) into {path}").format(
            n=f"{customers:,}", industry=industry, path=sources))
    summary = _generate(run, sources, industry, customers, seed, date(2023, 1, 1),
                        date(2025, 12, 31), 0.02, json)
    if not json:
        err_console.print(_("2/5 Importing the exports through the importers"))
    with progress(enabled=not json and sys.stderr.isatty()) as prog:
        task = prog.add_task(_("Importing"), total=1000)
        reports = load_manifest(ws, summary.manifest, progress=lambda label, f: prog.update(
            task, completed=int(f * 1000), description=label))
    if not json:
        show_reports(reports)
        err_console.print(_("3/5 Resolving identities across the source systems"))
    from kehu.identity import service as identity

    resolved = identity.run(ws, actor="demo")
    if not json:
        err_console.print(_(
            "{records} customer records are {customers} customers: {merged} records merged "
            "into another, {pending} uncertain pairs wait for review (kehu identity review, "
            "or the Identities page)").format(
            records=f"{resolved.records:,}", customers=f"{resolved.customers:,}",
            merged=f"{resolved.records - resolved.customers:,}",
            pending=f"{resolved.review_pairs:,}"))
        err_console.print(_("4/5 Analysing"))
    from kehu.analytics.run import analysis_run

    run_report = analysis_run(ws)
    h = headline(ws.engine)
    quality = _quality(ws)
    rejects = visible_rejects(ws.warehouse)
    result = {"workspace": str(root), "generation": summary.to_dict(),
              "imports": [r.to_dict() for r in reports], "headline": h.to_dict(),
              "quality": quality, "identity": resolved.model_dump(mode="json"),
              "run": run_report.to_dict(),
              "value": _value_summary(ws, run_report.run_id),
              "churn": _churn_summary(ws, run_report.run_id),
              "campaigns": _campaign_summary(ws),
              "rejected_by_reason": _count(rejects.column("reason_code").to_pylist())}
    if json:
        emit_json(result)
    else:
        _show_headline(h, quality, result["rejected_by_reason"])
        _show_value(result["value"])
        _show_churn(result["churn"])
        _show_campaigns(result["campaigns"])
        err_console.print(_("5/5 Explore: kehu --workspace {path} customer {id}").format(
            path=root, id=h.top_customers[0]["customer_id"] if h.top_customers else "ID"))
    users = demo_users(ws) if not (no_serve or json) else []
    if users and not json:
        t = Table(title=_("Demo users (passwords made for this demo only)"))
        for label in (_("user"), _("role"), _("password")):
            t.add_column(label)
        for u in users:
            t.add_row(u["username"], u["role"], u["password"])
        console.print(t)
    ws.close()
    if not no_serve and not json:
        from kehu.cli.commands.web import serve

        serve(workspace=root, host="127.0.0.1", port=port, demo=True)


def _quality(ws: Any) -> dict[str, Any]:
    from kehu.quality import build_report

    rep = build_report(ws)
    return {"overall": rep.overall_score,
            "entities": {e.entity: e.score for e in rep.entities},
            "suspected_duplicate_customers": rep.suspected_duplicate_customers["customers"]}


def _value_summary(ws: Any, run_id: str) -> dict[str, Any]:
    """The run's results by RFM class and by tier (customers, spend, expected CLV)."""
    from kehu.analytics.rfm import RfmClassScheme
    from kehu.i18n import get_locale

    t = ws.engine.table("customer_scores")
    t = t.filter(t.run_id == run_id)
    scheme = RfmClassScheme()
    b = t.filter(t.rfm_class.notnull())
    by_class = b.group_by("rfm_class").aggregate(
        customers=b.count(), revenue=b.monetary_total.sum(), clv=b.clv.sum()).order_by(
        "rfm_class").to_pyarrow().to_pylist()
    for r in by_class:
        r["name"] = scheme.name(r["rfm_class"], get_locale())
    by_tier = t.group_by("tier").aggregate(customers=t.count(), spend_12m=t.spend.sum(),
                                           clv=t.clv.sum()).to_pyarrow().to_pylist()
    return {"by_rfm_class": by_class, "by_tier": by_tier}


def _churn_summary(ws: Any, run_id: str, top: int = 5) -> list[dict[str, Any]]:
    """The run's customers most likely to churn, with their reasons (empty without a model)."""
    import ibis

    t = ws.engine.table("customer_scores")
    if "churn_risk" not in t.columns:
        return []
    t = t.filter((t.run_id == run_id) & t.churn_risk.notnull())
    return t.order_by(ibis.desc("churn_risk")).limit(top).select(
        "customer_id", "tier", "churn_risk", "churn_reasons").to_pyarrow().to_pylist()


def _show_churn(rows: list[dict[str, Any]]) -> None:
    import json as jsonlib

    from kehu.models.churn.reasons import render

    if not rows:
        return
    t = Table(title=_("Customers most likely to churn"))
    for label in (_("customer"), _("tier"), _("churn risk"), _("why")):
        t.add_column(label)
    for r in rows:
        why = "; ".join(render(x) for x in jsonlib.loads(r["churn_reasons"] or "[]"))
        t.add_row(r["customer_id"], str(r["tier"]), f"{r['churn_risk']:.0%}", why)
    console.print(t)


def _show_value(value: dict[str, Any]) -> None:
    t = Table(title=_("RFM classes: customers, revenue to date and expected 12-month value"))
    for label in (_("class"), _("customers"), _("revenue"), _("CLV (12 months)")):
        t.add_column(label, justify="left" if label == _("class") else "right")
    for r in sorted(value["by_rfm_class"], key=lambda r: -(r["revenue"] or 0)):
        t.add_row(r["name"], f"{r['customers']:,}", f"¥{r['revenue'] or 0:,.0f}",
                  f"¥{r['clv'] or 0:,.0f}")
    console.print(t)


def _count(values: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def demo_users(ws: Any) -> list[dict[str, str]]:
    """One user per role, the account manager owning the most customers, with fresh random
    passwords (demo workspaces only)."""
    import secrets

    import ibis

    from kehu.store.users import UserIn, create_user

    c = ws.engine.table("customers")
    c = c.filter(c.account_manager_id.notnull())
    top = c.group_by("account_manager_id").aggregate(n=c.count()).order_by(
        [ibis.desc("n"), "account_manager_id"]).limit(1).to_pyarrow()
    manager = top.column("account_manager_id")[0].as_py() if top.num_rows else None
    specs = [("admin", "admin", None), ("analyst", "analyst", None),
             ("manager", "manager", None), ("am", "account_manager", manager),
             ("viewer", "viewer", None)]
    out = []
    for name, role, emp in specs:
        if role == "account_manager" and emp is None:
            continue
        pw = secrets.token_urlsafe(9)
        create_user(ws.store, UserIn(username=name, role=role, password=pw,
                                     employee_id=emp), actor="demo")
        out.append({"username": name, "role": role, "password": pw})
    return out


def _campaign_summary(ws: Any) -> list[dict[str, Any]]:
    """What each of the demo's campaigns earned against its control group."""
    from kehu.campaigns.measure import measure_all

    try:
        results = measure_all(ws, by_segment=False)
    except KehuError:
        return []
    return [{"campaign_id": r.campaign_id, "name": r.name, "treated": r.n_treatment,
             "control": r.n_control, "incremental_revenue": r.incremental_revenue,
             "incremental_margin": r.incremental_margin, "cost": r.cost, "roi": r.roi,
             "significant": r.significant} for r in results]


def _show_campaigns(rows: list[dict[str, Any]]) -> None:
    if not rows:
        return

    def ci(d: dict[str, Any], fmt: str) -> str:
        if d.get("estimate") is None:
            return "-"
        return f"{fmt.format(d['estimate'])} [{fmt.format(d['low'])}, {fmt.format(d['high'])}]"

    t = Table(title=_("What the campaigns earned (treatment vs control, 95 % intervals)"))
    for label in (_("campaign"), _("treated / control"), _("incremental revenue"),
                  _("incremental margin"), _("cost"), _("ROI")):
        t.add_column(label)
    for r in rows:
        t.add_row(f"{r['campaign_id']} {r['name'] or ''}", f"{r['treated']:,} / {r['control']:,}",
                  ci(r["incremental_revenue"], "¥{:,.0f}"), ci(r["incremental_margin"],
                                                               "¥{:,.0f}"),
                  f"¥{r['cost']:,.0f}", ci(r["roi"], "{:+.0%}"))
    console.print(t)


def _show_headline(h: Any, quality: dict[str, Any], rejected: dict[str, int]) -> None:
    t = Table(title=_("Headline figures (as of {date})").format(date=h.as_of))
    t.add_column(_("measure"))
    t.add_column(_("value"), justify="right")
    rows = [
        (_("customers"), f"{h.customers:,}"),
        (_("buying customers"), f"{h.buying_customers:,}"),
        (_("active in the last 90 days"), f"{h.active_90d:,}"),
        (_("transactions"), f"{h.transactions:,}"),
        (_("revenue"), f"¥{h.revenue:,.0f}"),
        (_("revenue, last 12 months"), f"¥{h.revenue_12m:,.0f}"),
        (_("margin"), f"¥{h.margin:,.0f}" if h.margin is not None else "-"),
        (_("average order value"), f"¥{h.avg_order_value:,.2f}"),
        (_("repeat-purchase rate"), f"{h.repeat_rate:.1%}"),
        (_("revenue share of the top 20 % of customers"), f"{h.top20_revenue_share:.1%}"),
    ]
    if quality.get("overall") is not None:
        rows.append((_("data-quality score"), f"{quality['overall']:.1f}/100"))
        rows.append((_("suspected duplicate customers"),
                     f"{quality['suspected_duplicate_customers']:,}"))
    rows.append((_("rows rejected at import"), f"{sum(rejected.values()):,}"))
    for label, value in rows:
        t.add_row(label, value)
    console.print(t)
    if h.top_customers:
        tc = Table(title=_("Top customers by spend"))
        tc.add_column(_("customer"))
        tc.add_column(_("name"))
        tc.add_column(_("spend"), justify="right")
        for c in h.top_customers:
            tc.add_row(c["customer_id"], c.get("name") or "", f"¥{c['spend']:,.0f}")
        console.print(tc)


def register(app: typer.Typer) -> None:
    app.command("generate")(generate)
    app.command("demo")(demo)
