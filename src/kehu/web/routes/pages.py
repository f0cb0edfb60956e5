"""HTML pages: the dashboard and the audit log."""

from __future__ import annotations

import threading
from collections import OrderedDict
from datetime import date
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from markupsafe import Markup

from kehu.dashboard import dashboard as dashboard_data
from kehu.errors import NotFoundError
from kehu.i18n import _
from kehu.store.services import audit_log
from kehu.web.deps import (
    AdminUser,
    CurrentUser,
    Principal,
    ScopeDep,
    StoreDep,
    WorkspaceDep,
    apply_locale,
    get_context,
    render,
)
from kehu.workspace import Workspace

router = APIRouter(include_in_schema=False)


def _headline_chart(monthly: list[dict[str, Any]]) -> dict[str, Any]:
    """ECharts option of revenue by month; labels are translated here, on the server."""
    return {
        "tooltip": {"trigger": "axis"},
        "grid": {"left": 60, "right": 20, "top": 30, "bottom": 30},
        "xAxis": {"type": "category", "data": [str(m["month"])[:7] for m in monthly]},
        "yAxis": {"type": "value", "name": "¥"},
        "series": [{"type": "bar", "name": _("revenue"),
                    "data": [round(float(m["revenue"] or 0), 2) for m in monthly]}],
    }


@router.get("/")
def dashboard(request: Request, user: CurrentUser, ws: WorkspaceDep, scope: ScopeDep,
              flows_from: date | None = None, flows_to: date | None = None) -> Response:
    """The dashboard service's sections, each a chart and the same numbers as a table; before
    the first analysis run, the headline figures only. Account managers, who may not see
    all-customer figures, are pointed to their customer list. ``flows_from`` / ``flows_to``
    choose the lifecycle flows' dates; the flows form asks HTMX for that section alone."""
    locale = apply_locale(request)
    if not scope.all_customers:
        return render(request, "dashboard.html", my_portfolio(ws, user, locale))
    try:
        data = dashboard_data(ws, locale, flows_from, flows_to)
        if request.headers.get("HX-Target") == "section-lifecycle":
            return render(request, "_section.html",
                          {"sec": data.sections["lifecycle"].to_dict()})
    except NotFoundError:  # no analysis run yet
        from kehu.analytics.headline import headline

        head = headline(ws.engine)
        return render(request, "dashboard.html", {
            "head": head, "scoped": False, "chart": _headline_chart(head.monthly_revenue)})
    dash, body = _rendered_sections(request, data, locale)
    return render(request, "dashboard.html", {
        "dash": dash, "as_of": data.as_of, "scoped": False, "sections_html": body})


_SECTIONS: OrderedDict[tuple[Any, ...], tuple[dict[str, Any], Markup]] = OrderedDict()
_SECTIONS_LOCK = threading.Lock()


def _rendered_sections(request: Request, data: Any, locale: str
                       ) -> tuple[dict[str, Any], Markup]:
    """The dashboard's sections as HTML, rendered once per dashboard and language: 650
    formatted figures cost more than everything else on the page, and they are the same for
    every visitor until the next run."""
    ctx = get_context(request)
    key = (data.run_id, data.computed_at, data.locale, locale, ctx.settings.company.currency)
    with _SECTIONS_LOCK:
        hit = _SECTIONS.get(key)
    if hit is not None:
        return hit
    dash = data.to_dict()
    template = ctx.templates.env.get_template("_sections.html")
    body = Markup(template.render(sections=list(dash["sections"].values()),
                                  currency=ctx.settings.company.currency, locale=locale))
    with _SECTIONS_LOCK:
        _SECTIONS[key] = (dash, body)
        while len(_SECTIONS) > 8:
            _SECTIONS.popitem(last=False)
    return dash, body


def my_portfolio(ws: Workspace, user: Principal, locale: str) -> dict[str, Any]:
    """An account manager's dashboard: their portfolio's figures (as the portfolio service
    counts them) and their customers at highest churn risk and of highest value."""
    from kehu.accounts.portfolio import portfolios
    from kehu.customers import CustomerQuery, manager_names, search
    from kehu.web.routes.customers import _labels, scope_of

    scope = scope_of(user)
    emp = user.user.employee_id
    try:
        rows = portfolios(ws, employee_id=emp).to_dict("records") if emp else []
    except NotFoundError:
        rows = []
    lists: dict[str, Any] = {}
    for key, sort in (("at_risk", "churn_risk"), ("top_value", "total_value")):
        try:
            lists[key] = search(ws, CustomerQuery(sort=sort, page_size=10), scope)
        except NotFoundError:
            lists[key] = None
    return {"scoped": True, "portfolio": rows[0] if rows else None, "lists": lists,
            "labels": _labels(locale, ws), "manager_names": manager_names(ws)}


AUDIT_FILTERS = ("actor", "action", "object_type", "object_id", "since", "until")


@router.get("/admin/audit")
def audit_page(request: Request, user: AdminUser, store: StoreDep,
               limit: Annotated[int, Query(ge=1, le=1000)] = 200,
               page: Annotated[int, Query(ge=1, le=100_000)] = 1,
               actor: Annotated[str, Query(max_length=120)] = "",
               action: Annotated[str, Query(max_length=40)] = "",
               object_type: Annotated[str, Query(max_length=40)] = "",
               object_id: Annotated[str, Query(max_length=120)] = "",
               since: date | None = None, until: date | None = None) -> Response:
    """Every write and export, newest first, filtered by who, action, object and days, a
    page of ``limit`` entries at a time."""
    found = audit_log(store, limit=limit + 1, offset=(page - 1) * limit, actor=actor.strip(),
                      action=action.strip(), object_type=object_type.strip(),
                      object_id=object_id.strip(), since=since, until=until)
    values = {k: v for k, v in request.query_params.items() if k in AUDIT_FILTERS and v}
    link = {**values, "limit": limit}
    ctx = {"entries": found[:limit], "limit": limit, "values": values, "page": page,
           "prev_link": "/admin/audit?" + urlencode({**link, "page": page - 1})
           if page > 1 else None,
           "next_link": "/admin/audit?" + urlencode({**link, "page": page + 1})
           if len(found) > limit else None,
           "this_link": "/admin/audit?" + urlencode({**link, "page": page})}
    template = "_audit_rows.html" if request.headers.get("HX-Request") else "audit.html"
    return render(request, template, ctx)
