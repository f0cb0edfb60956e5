"""HTML pages: the dashboard shell and the audit log."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from kehu.i18n import _
from kehu.store.services import audit_log
from kehu.web.deps import (
    AdminUser,
    CurrentUser,
    ScopeDep,
    StoreDep,
    WorkspaceDep,
    apply_locale,
    render,
)

router = APIRouter(include_in_schema=False)


def _headline_chart(monthly: list[dict[str, Any]]) -> str:
    """ECharts option (JSON) of revenue by month; labels are translated here, on the server."""
    return json.dumps({
        "tooltip": {"trigger": "axis"},
        "grid": {"left": 60, "right": 20, "top": 30, "bottom": 30},
        "xAxis": {"type": "category", "data": [str(m["month"])[:7] for m in monthly]},
        "yAxis": {"type": "value", "name": "¥"},
        "series": [{"type": "bar", "name": _("revenue"),
                    "data": [round(float(m["revenue"] or 0), 2) for m in monthly]}],
    })


@router.get("/")
def dashboard(request: Request, user: CurrentUser, ws: WorkspaceDep, scope: ScopeDep) -> Response:
    """The dashboard: headline figures with a chart and the same numbers as a table. (The
    dashboard service will fill this page; account managers get their own view there.)"""
    apply_locale(request)
    head = None
    if scope.all_customers:
        from kehu.analytics.headline import headline

        head = headline(ws.engine)
    return render(request, "dashboard.html", {
        "head": head, "scoped": not scope.all_customers,
        "chart": _headline_chart(head.monthly_revenue) if head else None})


@router.get("/admin/audit")
def audit_page(request: Request, user: AdminUser, store: StoreDep, limit: int = 200) -> Response:
    entries = audit_log(store, limit=max(1, min(limit, 1000)))
    template = "_audit_rows.html" if request.headers.get("HX-Request") else "audit.html"
    return render(request, template, {"entries": entries, "limit": limit})
