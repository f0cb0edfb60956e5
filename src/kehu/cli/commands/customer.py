"""``kehu customer ID``: one customer's profile and timeline (客户360)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from kehu.cli.common import JsonOpt, WorkspaceOpt, open_workspace, require_positive
from kehu.cli.output import console, emit_json
from kehu.i18n import _


def customer(
    customer_id: Annotated[str, typer.Argument(help="Customer id.")],
    workspace: WorkspaceOpt = None,
    limit: Annotated[int, typer.Option(help="Timeline items to show (newest first).")] = 50,
    json: JsonOpt = False,
) -> None:
    """Show one customer: profile, custom attributes, account manager, whole timeline."""
    from kehu.customer360 import customer_360, kind_label

    require_positive("--limit", limit)
    ws = open_workspace(workspace)
    c = customer_360(ws, customer_id, limit=limit)
    ws.close()
    if json:
        emit_json(c.model_dump(mode="json"))
        return
    p = Table(title=_("Customer {id}").format(id=customer_id), show_header=False)
    p.add_column()
    p.add_column()
    for k, v in c.profile.items():
        if v is not None:
            p.add_row(k, str(v))
    for k, v in c.attributes.items():
        if v is not None:
            p.add_row(f"[cyan]{k}[/]", str(v))
    if c.account_manager:
        p.add_row(_("account manager"), " ".join(str(c.account_manager.get(k) or "")
                                                for k in ("employee_id", "name", "team")))
    sl = c.service_level
    if sl:
        p.add_row(_("service level"), _(
            "{tier}: {mgr}, respond within {h:g} h, discount up to {d:.0%}{prio}").format(
            tier=sl.get("tier_name") or sl.get("tier") or "-",
            mgr=_("dedicated manager") if sl.get("dedicated_manager") else _("no dedicated "
                                                                             "manager"),
            h=float(sl.get("response_hours") or 0), d=float(sl.get("max_discount") or 0),
            prio=_(", priority queue") if sl.get("priority_queue") else ""))
    console.print(p)
    if c.scores:
        from kehu.analytics.rfm import RfmClassScheme
        from kehu.i18n import get_locale

        sc = c.scores
        cls = RfmClassScheme().name(sc.get("rfm_class") or "", get_locale())
        console.print(_("As of {d}: {cls}, tier {tier}, stage {stage}; CLV ¥{clv}, P(alive) "
                        "{alive}; value historical ¥{h} + current ¥{cur} + potential ¥{pot}.")
                      .format(d=sc.get("as_of"), cls=cls or "-", tier=sc.get("tier") or "-",
                              stage=sc.get("lifecycle_stage") or "-",
                              clv=f"{sc.get('clv') or 0:,.0f}",
                              alive=f"{sc['p_alive']:.0%}" if sc.get("p_alive") is not None
                              else "-",
                              h=f"{sc.get('historical_value') or 0:,.0f}",
                              cur=f"{sc.get('current_value') or 0:,.0f}",
                              pot=f"{sc.get('potential_value') or 0:,.0f}"))
    t = Table(title=_("Timeline: {shown} of {total} events, newest first").format(
        shown=len(c.timeline), total=c.timeline_total))
    for label in (_("time"), _("event"), _("channel"), _("detail"), _("amount")):
        t.add_column(label)
    for i in c.timeline:
        t.add_row(i.time.strftime("%Y-%m-%d %H:%M"), kind_label(i.kind), i.channel or "",
                  i.title or "", "" if i.amount is None else f"¥{i.amount:,.2f}")
    console.print(t)


def register(app: typer.Typer) -> None:
    app.command("customer")(customer)
