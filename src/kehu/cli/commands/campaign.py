"""``kehu campaign …``, ``kehu policy …``, ``kehu optout …``: plan and launch campaigns with a
holdout under the contact policy, send them through a channel, measure what they earned."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.table import Table

from kehu.cli.common import JsonOpt, WorkspaceOpt, cli_actor, open_workspace, parse_date
from kehu.cli.output import console, emit_json
from kehu.i18n import _

app = typer.Typer(help="Campaigns: plan (audience, policy, power), launch with a holdout, "
                  "send, measure incremental revenue and ROI.", no_args_is_help=True)
policy_app = typer.Typer(help="The contact policy: caps, quiet period, address rules.",
                         no_args_is_help=True)
optout_app = typer.Typer(help="The do-not-contact list (opt-outs).", no_args_is_help=True)
AsOfOpt = Annotated[str | None, typer.Option("--as-of", help="Evaluate the audience as of "
                                             "this day (default: the data's last day).")]
FilesArg = Annotated[list[Path], typer.Argument(help="Campaign spec files (YAML); several are "
                                                "launched together, by priority.")]


def _money(v: Any) -> str:
    return "" if v is None else f"{v:,.0f}"


def _ci(d: dict[str, Any], fmt: str = "{:,.0f}") -> str:
    if d.get("estimate") is None:
        return "—"
    return f"{fmt.format(d['estimate'])} [{fmt.format(d['low'])}, {fmt.format(d['high'])}]"


def _print_plan(p: Any) -> None:
    console.print(_("Campaign {id} ({name}), {channel}, starting {start}: audience {n:,} as "
                    "of {asof}; contactable {c:,}; suppressed {s:,}.").format(
        id=p.campaign_id, name=p.name, channel=p.channel, start=p.start, n=p.eligible,
        asof=p.audience_as_of, c=p.contactable, s=p.suppressed))
    for rule, n in sorted(p.suppressed_by_rule.items()):
        console.print(_("  suppressed by {rule}: {n:,}").format(rule=rule, n=n))
    console.print(_("Treatment {t:,}, control {c:,}; cost {cost}.").format(
        t=p.treatment, c=p.control, cost=_money(p.cost)))
    if p.power.get("mde") is not None:
        console.print(_("Minimum detectable lift of the response rate: {mde:.2%} (control "
                        "rate {base:.2%}, {src}).").format(mde=p.power["mde"], base=p.base_rate,
                                                           src=p.base_rate_source))
    if p.power.get("power") is not None:
        console.print(_("Power for the expected effect: {p:.0%}.").format(p=p.power["power"]))
    for w in p.warnings:
        console.print(f"[yellow]{w}[/yellow]")


@app.command("plan")
def plan_cmd(files: FilesArg, workspace: WorkspaceOpt = None, as_of: AsOfOpt = None,
             json: JsonOpt = False) -> None:
    """What launching the campaigns would do: audience, suppressions by rule, groups, cost
    and the power of the test. Nothing is written."""
    from kehu.campaigns.launch import plan_many
    from kehu.campaigns.spec import CampaignSpec

    specs = [CampaignSpec.load(f) for f in files]
    ws = open_workspace(workspace)
    plans = plan_many(ws, specs, parse_date("--as-of", as_of))
    ws.close()
    if json:
        emit_json([p.to_dict() for p in plans])
        return
    for p in plans:
        _print_plan(p)


@app.command("launch")
def launch_cmd(files: FilesArg, workspace: WorkspaceOpt = None, as_of: AsOfOpt = None,
               seed: Annotated[int | None, typer.Option(
                   "--seed", help="Seed of the holdout draw (default: the spec's, else "
                   "random; always recorded).")] = None,
               json: JsonOpt = False) -> None:
    """Launch: snapshot the audience, apply the contact policy, draw the holdout by tier,
    write the contacts to the warehouse and queue the messages."""
    from kehu.campaigns.launch import launch_many
    from kehu.campaigns.spec import CampaignSpec

    specs = [CampaignSpec.load(f) for f in files]
    ws = open_workspace(workspace)
    reports = launch_many(ws, specs, cli_actor(), parse_date("--as-of", as_of), seed=seed)
    ws.close()
    if json:
        emit_json([r.to_dict() for r in reports])
        return
    for r in reports:
        _print_plan(r.plan)
        console.print(_("Launched {id}: {t:,} treated, {c:,} in the control group (seed "
                        "{seed}); {q:,} messages queued. Send them with 'kehu campaign send "
                        "{id}'.").format(id=r.plan.campaign_id, t=r.treatment, c=r.control,
                                         seed=r.seed, q=r.queued))


@app.command("list")
def list_cmd(workspace: WorkspaceOpt = None, json: JsonOpt = False) -> None:
    """Every campaign, imported or launched, with its groups."""
    from kehu.campaigns.measure import list_campaigns

    ws = open_workspace(workspace)
    rows = list_campaigns(ws)
    ws.close()
    if json:
        emit_json(rows)
        return
    tab = Table(title=_("Campaigns"))
    for label in (_("campaign"), _("name"), _("channel"), _("start"), _("treatment"),
                  _("control")):
        tab.add_column(label)
    for r in rows:
        tab.add_row(str(r["campaign_id"]), str(r.get("name") or ""), str(r.get("channel") or ""),
                    str(r.get("start_date") or ""), f"{r.get('treatment') or 0:,}",
                    f"{r.get('control') or 0:,}")
    console.print(tab)


@app.command("send")
def send_cmd(campaign_id: str, workspace: WorkspaceOpt = None,
             attempts: Annotated[int, typer.Option("--attempts", help="Tries per message "
                                                   "before it is reported failed.")] = 3,
             early: Annotated[bool, typer.Option(
                 "--early", help="Send now although the campaign starts later.")] = False,
             json: JsonOpt = False) -> None:
    """Deliver the campaign's queued messages through its channel adapter; failures are
    retried, then reported and kept in the outbox ('kehu campaign status')."""
    from kehu.campaigns.launch import send

    ws = open_workspace(workspace)
    rep = send(ws, campaign_id, cli_actor(), max_attempts=attempts, early=early)
    ws.close()
    d = rep.to_dict() if hasattr(rep, "to_dict") else dict(vars(rep))
    if json:
        emit_json(d)
        return
    console.print(_("{id}: {sent:,} sent, {failed:,} failed, {pending:,} pending.").format(
        id=campaign_id, sent=d.get("sent", 0), failed=d.get("failed", 0),
        pending=d.get("pending", 0)))
    for e in list(d.get("errors", []))[:20]:
        console.print(f"  [red]{e}[/red]")


@app.command("status")
def status_cmd(campaign_id: str, workspace: WorkspaceOpt = None, json: JsonOpt = False) -> None:
    """Messages of the campaign in the outbox by status, and the failures with their error."""
    from kehu.campaigns.outbox import failures, outbox_status

    ws = open_workspace(workspace)
    counts = outbox_status(ws.store, campaign_id)
    fails = failures(ws.store, campaign_id)
    ws.close()
    failed: list[dict[str, Any]] = [dict(vars(f)) for f in fails]
    out = {"counts": counts, "failures": failed}
    if json:
        emit_json(out)
        return
    console.print(counts)
    for f in failed[:50]:
        console.print(f"  [red]{f['customer_id']} {f['recipient'] or ''}: {f['error']}[/red]")


@app.command("suppressed")
def suppressed_cmd(campaign_id: str, workspace: WorkspaceOpt = None,
                   out: Annotated[Path | None, typer.Option(
                       "--out", help="Write the list to a CSV file.")] = None,
                   json: JsonOpt = False) -> None:
    """Every customer the contact policy kept out of a launched campaign, with the rule."""
    from kehu.campaigns.launch import AUDIENCE_TABLE

    ws = open_workspace(workspace)
    a = ws.engine.table(AUDIENCE_TABLE)
    df = a.filter((a.campaign_id == campaign_id) & (a.group == "suppressed")).select(
        "customer_id", "tier", "rule", "detail").order_by("customer_id").to_pandas()
    ws.close()
    if out is not None:
        df.to_csv(out, index=False, encoding="utf-8-sig")
    if json:
        emit_json({"campaign_id": campaign_id, "suppressed": len(df),
                   "by_rule": df.rule.value_counts().to_dict(),
                   "customers": df.to_dict("records")})
        return
    console.print(_("{id}: {n:,} suppressed.").format(id=campaign_id, n=len(df)))
    for rule, n in df.rule.value_counts().items():
        console.print(f"  {rule}: {n:,}")


@app.command("measure")
def measure_cmd(campaign_id: Annotated[str | None, typer.Argument(
                    help="Campaign id (default: every campaign).")] = None,
                workspace: WorkspaceOpt = None,
                method: Annotated[str, typer.Option(
                    "--method", help="Interval of revenue and margin per contact: auto "
                    "(Welch, or compound when a group has < 30 responders), welch, bootstrap "
                    "or compound.")] = "auto",
                json: JsonOpt = False) -> None:
    """Treatment against control: response rate, incremental responses, revenue and margin
    with 95 % intervals, p-value, ROI with its interval, by tier and segment."""
    from kehu.campaigns.measure import measure, measure_all

    ws = open_workspace(workspace)
    if method not in ("auto", "welch", "bootstrap", "compound"):
        from kehu.errors import KehuInputError

        raise KehuInputError(_("The '--method' parameter must be auto, welch, bootstrap or "
                               "compound. Got {v!r} instead.").format(v=method))
    m: Literal["auto", "welch", "bootstrap", "compound"] = method  # type: ignore[assignment]
    results = [measure(ws, campaign_id, method=m)] if campaign_id else \
        measure_all(ws, method=m)
    ws.close()
    if json:
        emit_json([r.to_dict() for r in results])
        return
    for r in results:
        d = r.to_dict()
        console.print(_("[bold]{id}[/bold] {name} ({design}, attribution: {attr}, window "
                        "{w} days)").format(id=r.campaign_id, name=r.name or "", design=r.design,
                                            attr=r.attribution, w=r.window_days))
        if r.design == "randomised":
            rr = d["response_rate"]
            console.print(_("  response rate {t:.2%} treatment vs {c:.2%} control; lift "
                            "{l} (p = {p:.3f})").format(
                t=rr["mean_treat"], c=rr["mean_control"], l=_ci(rr, "{:+.2%}"),
                p=rr["p_value"]))
            console.print(_("  incremental responses {v}").format(
                v=_ci(d["incremental_responses"], "{:,.1f}")))
        console.print(_("  incremental revenue {v}").format(v=_ci(d["incremental_revenue"])))
        console.print(_("  incremental margin {v}; cost {c}").format(
            v=_ci(d["incremental_margin"]), c=_money(r.cost)))
        console.print(_("  ROI {v}; {sig}").format(
            v=_ci(d["roi"], "{:+.0%}"), sig=_("significant") if r.significant else
            _("not significant at 95 %")))
        if r.label:
            console.print(f"  [yellow]{r.label}[/yellow]")
        for t in r.by_tier:
            if "incremental_revenue" in t:
                console.print(_("    {tier}: n {nt:,}/{nc:,}, incremental revenue {v}").format(
                    tier=t["tier"], nt=t["n_treatment"], nc=t["n_control"],
                    v=_ci(t["incremental_revenue"])))


@policy_app.command("show")
def policy_show(workspace: WorkspaceOpt = None, json: JsonOpt = False) -> None:
    """The contact policy in force."""
    from kehu.campaigns.launch import get_policy

    ws = open_workspace(workspace)
    p = get_policy(ws)
    ws.close()
    if json:
        emit_json(p.model_dump(mode="json"))
        return
    import yaml

    console.print(yaml.safe_dump(p.model_dump(mode="json"), allow_unicode=True,
                                 sort_keys=False))


@policy_app.command("set")
def policy_set(file: Path, workspace: WorkspaceOpt = None) -> None:
    """Replace the contact policy with the one in FILE (YAML); the old one stays in history."""
    from kehu.campaigns.launch import set_policy
    from kehu.campaigns.spec import ContactPolicy

    p = ContactPolicy.load(file)
    ws = open_workspace(workspace)
    set_policy(ws, p, cli_actor())
    ws.close()
    console.print(_("Contact policy saved."))


@optout_app.command("add")
def optout_add(customer_id: str, workspace: WorkspaceOpt = None,
               channel: Annotated[str | None, typer.Option(
                   "--channel", help="Only this channel (sms, email, phone, mail, push); "
                   "default: every channel.")] = None,
               reason: Annotated[str | None, typer.Option("--reason")] = None) -> None:
    """Put a customer on the do-not-contact list."""
    from kehu.campaigns.launch import add_opt_out

    ws = open_workspace(workspace)
    add_opt_out(ws, customer_id, cli_actor(), channel, reason)
    ws.close()
    console.print(_("{id} will not be contacted{on}.").format(
        id=customer_id, on=_(" by {c}").format(c=channel) if channel else ""))


@optout_app.command("list")
def optout_list(workspace: WorkspaceOpt = None, as_of: AsOfOpt = None,
                json: JsonOpt = False) -> None:
    """Opt-outs in force: the do-not-contact list and opt-out responses."""
    from datetime import date

    from kehu.campaigns.launch import opt_outs

    ws = open_workspace(workspace)
    df = opt_outs(ws, parse_date("--as-of", as_of) or date.today())
    ws.close()
    rows = df.astype(object).where(df.notna(), None).to_dict("records")
    if json:
        emit_json(rows)
        return
    console.print(_("{n:,} opt-outs in force.").format(n=len(rows)))
    for r in rows[:50]:
        console.print(f"  {r['customer_id']}  {r['channel'] or _('all channels')}")


programme_app = typer.Typer(help="Lifecycle programmes: dormant reactivation, win-back, "
                            "high-value retention, repeat purchase — waves with a holdout.",
                            no_args_is_help=True)


@programme_app.command("list")
def programme_list(workspace: WorkspaceOpt = None, json: JsonOpt = False) -> None:
    """The programmes (the proposed defaults, disabled, until some are saved)."""
    from kehu.campaigns.programmes import programmes, waves

    ws = open_workspace(workspace)
    rows: list[dict[str, Any]] = [{"id": p.id, "name": p.name, "kind": p.kind,
                                   "enabled": p.enabled,
             "every_days": p.every_days, "waves": waves(ws, p.id)} for p in programmes(ws)]
    ws.close()
    if json:
        emit_json(rows)
        return
    tab = Table(title=_("Lifecycle programmes"))
    for label in (_("programme"), _("name"), _("kind"), _("enabled"), _("every"),
                  _("waves")):
        tab.add_column(label)
    for r in rows:
        tab.add_row(r["id"], r["name"], r["kind"], _("yes") if r["enabled"] else _("no"),
                    _("{n} days").format(n=r["every_days"]), str(len(r["waves"])))
    console.print(tab)


@programme_app.command("save")
def programme_save(file: Path, workspace: WorkspaceOpt = None) -> None:
    """Save the programmes in FILE (a YAML list; see the defaults in 'kehu programme list')."""
    from kehu.campaigns.programmes import load_programmes, save_programmes

    progs = load_programmes(file)
    ws = open_workspace(workspace)
    save_programmes(ws, progs, cli_actor())
    ws.close()
    console.print(_("{n} programmes saved.").format(n=len(progs)))


@programme_app.command("run")
def programme_run(workspace: WorkspaceOpt = None, as_of: AsOfOpt = None,
                  dry_run: Annotated[bool, typer.Option(
                      "--dry-run", help="Plan the due waves without launching them.")] = False,
                  json: JsonOpt = False) -> None:
    """Launch a wave of every enabled programme that is due, audiences recomputed now."""
    from kehu.campaigns.programmes import run_programmes

    ws = open_workspace(workspace)
    rep = run_programmes(ws, cli_actor(), parse_date("--as-of", as_of), dry_run=dry_run)
    ws.close()
    if json:
        emit_json(rep.to_dict())
        return
    for x in rep.launched:
        console.print(_("{id}: {t:,} treated, {c:,} control, {s:,} suppressed{dry}.").format(
            id=x["campaign_id"], t=x["treatment"], c=x["control"], s=x["suppressed"],
            dry=_(" (planned only)") if dry_run else ""))
    for x in rep.skipped:
        console.print(_("{id}: not launched ({why}).").format(id=x["programme"],
                                                               why=x["reason"]))


@programme_app.command("results")
def programme_results_cmd(programme_id: str, workspace: WorkspaceOpt = None,
                          json: JsonOpt = False) -> None:
    """The programme's waves and its total incremental margin, cost and ROI."""
    from kehu.campaigns.programmes import programme_results

    ws = open_workspace(workspace)
    res = programme_results(ws, programme_id)
    ws.close()
    if json:
        emit_json(res)
        return
    console.print(_("{id}: {n} waves; incremental margin {m} [{lo}, {hi}]; cost {c}.").format(
        id=programme_id, n=len(res["waves"]), m=_money(res["incremental_margin"]),
        lo=_money(res["low"]), hi=_money(res["high"]), c=_money(res["cost"])))


def referrals_cmd(workspace: WorkspaceOpt = None, as_of: AsOfOpt = None,
                  json: JsonOpt = False) -> None:
    """Referral tracking (老客户推荐): referrals, conversions and the value the referred
    customers brought, by referrer."""
    from kehu.campaigns.programmes import referral_report

    ws = open_workspace(workspace)
    rep = referral_report(ws, parse_date("--as-of", as_of))
    ws.close()
    if json:
        emit_json(rep)
        return
    rate = rep["conversion_rate"]
    console.print(_("{n:,} referrals by {r:,} customers; {c:,} converted ({rate}); referral "
                    "value {v}.").format(n=rep["referrals"], r=rep["referrers"],
                                         c=rep["converted"],
                                         rate="-" if rate is None else f"{rate:.0%}",
                                         v=_money(rep["referral_value"])))
    tab = Table(title=_("Top referrers"))
    for label in (_("customer"), _("referrals"), _("converted"), _("referral value")):
        tab.add_column(label)
    for x in rep["top_referrers"]:
        tab.add_row(x["referrer_id"], str(x["referrals"]), str(x["converted"]),
                    _money(x["referral_value"]))
    console.print(tab)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="campaign")
    root.add_typer(programme_app, name="programme")
    root.command("referrals")(referrals_cmd)
    root.add_typer(policy_app, name="policy")
    root.add_typer(optout_app, name="optout")
