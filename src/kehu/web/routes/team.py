"""The team page (/team) and ``GET /api/v1/portfolios``: the account managers' portfolios
(:func:`kehu.accounts.portfolios`) — per manager their customers, value, churn risk, open and
overdue tasks and 12-month retention, with the team's totals, a chart and links to each
manager's customers. A manager sees their own team (the employees of their team and those
reporting to them, as the inbox counts it); admins and analysts see every team, or one they
choose. Account managers have their own portfolio on the dashboard instead."""

from __future__ import annotations

import math
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from kehu.accounts.portfolio import COLUMNS, portfolios, team_of, teams
from kehu.errors import NotFoundError
from kehu.i18n import _
from kehu.web.deps import Planner, Principal, WorkspaceDep, apply_locale, render
from kehu.web.routes.api import PREFIX, PROBLEM
from kehu.workspace import Workspace

router = APIRouter(include_in_schema=False)
api = APIRouter(prefix=PREFIX, tags=["portfolios"],
                responses={401: PROBLEM, 403: PROBLEM, 404: PROBLEM, 422: PROBLEM})

TeamParam = Annotated[str, Query(max_length=120, description="a team's name (admins and "
                                 "analysts; a manager always sees their own team)")]


class TeamView(BaseModel):
    """Whose portfolios a user sees: one team (``members`` its employee ids) or every one
    (``members`` None); ``fixed`` when the user may not choose another (a manager)."""

    team: str | None
    members: set[str] | None
    fixed: bool
    teams: list[str]


def team_view(ws: Workspace, principal: Principal, team: str = "") -> TeamView:
    """The team ``principal`` sees: a manager with a known team (or reports) always their
    own; otherwise every team, or ``team`` when given (404 for a team nobody is in)."""
    user = principal.user
    if user.role == "manager" and user.employee_id:
        own, members = team_of(ws, user.employee_id)
        if own is not None or len(members) > 1:
            return TeamView(team=own, members=members, fixed=True, teams=[own] if own else [])
    known = dict(teams(ws))
    team = team.strip()
    if not team:
        return TeamView(team=None, members=None, fixed=False, teams=sorted(known))
    if team not in known:
        raise NotFoundError(_("No team named '{team}' in the employees table. Teams: "
                              "{teams}.").format(team=team, teams=", ".join(sorted(known))
                                                 or _("none")))
    return TeamView(team=team, members=known[team], fixed=False, teams=sorted(known))


def _clean(v: Any) -> Any:
    return None if isinstance(v, float) and math.isnan(v) else v


def team_rows(ws: Workspace, view: TeamView) -> list[dict[str, Any]]:
    """The portfolios of the view's managers, highest current value first (the analysis-run
    figures are None before the first run)."""
    df = portfolios(ws, employee_ids=view.members)
    return [{k: _clean(v) for k, v in r.items()} for r in df.to_dict("records")]


def totals(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The team's totals: sums, and the retention of the pooled customers (retained ÷ base);
    the mean churn risk is left out (the managers' means are over different customers).

    >>> t = totals([{"customers": 3, "retained": 1, "retention_base": 2, "clv": None},
    ...             {"customers": 1, "retained": 2, "retention_base": 2, "clv": None}])
    >>> t["customers"], t["retention_12m"], t["clv"]
    (4, 0.75, None)
    """
    out: dict[str, Any] = {}
    for c in ("customers", "live_customers", "new_customers", "current_value", "clv",
              "high_risk", "tasks_open", "tasks_overdue", "retention_base", "retained"):
        got = [r[c] for r in rows if r.get(c) is not None]
        out[c] = sum(got) if got else None
    base = out.get("retention_base")
    out["retention_12m"] = out["retained"] / base if base else None
    return out


def _chart(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """ECharts option: current value per manager (horizontal bars, the largest portfolio on
    top; the 30 largest); labels translated here."""
    shown = list(reversed(rows[:30]))
    return {
        "tooltip": {"trigger": "axis", "axisPointer": {"type": "shadow"}},
        "grid": {"left": 90, "right": 40, "top": 20, "bottom": 30},
        "xAxis": {"type": "value", "name": "¥"},
        "yAxis": {"type": "category", "data": [r["name"] or r["employee_id"] for r in shown]},
        "series": [{"type": "bar", "name": _("Current value"),
                    "data": [round(r["current_value"] or 0.0, 2) for r in shown]}],
    }


@router.get("/team")
def team_page(request: Request, user: Planner, ws: WorkspaceDep, team: TeamParam = ""
              ) -> Response:
    """The account managers' portfolios of the user's team (admins and analysts: every team
    or the one chosen), their totals and a chart beside the table."""
    apply_locale(request)
    view = team_view(ws, user, team)
    rows = team_rows(ws, view)
    return render(request, "team.html", {
        "view": view, "rows": rows, "totals": totals(rows),
        "chart": _chart(rows) if rows else None,
        "scored": any(r["current_value"] is not None for r in rows)})


class PortfolioOut(BaseModel):
    employee_id: str
    name: str | None
    team: str | None
    customers: int
    live_customers: int
    new_customers: int = Field(description="first purchase in the 12 months up to as-of")
    current_value: float | None = Field(description="None before the first analysis run")
    clv: float | None
    churn_risk_mean: float | None
    high_risk: int | None = Field(description="customers with churn risk of at least 0.3")
    tasks_open: int
    tasks_overdue: int
    retention_base: int
    retained: int
    retention_12m: float | None


class TeamOut(BaseModel):
    team: str | None = Field(description="None: every team")
    rows: list[PortfolioOut]


@api.get("/portfolios", response_model=TeamOut)
def api_portfolios(user: Planner, ws: WorkspaceDep, team: TeamParam = "") -> TeamOut:
    """The account managers' portfolios: a manager's own team; admins and analysts every
    team or ``team``. Highest current value first."""
    view = team_view(ws, user, team)
    rows = team_rows(ws, view)
    return TeamOut(team=view.team, rows=[PortfolioOut(**{c: r[c] for c in COLUMNS})
                                         for r in rows])
