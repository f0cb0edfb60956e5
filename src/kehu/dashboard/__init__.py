"""The dashboard's data (issue 6): every section of the web app's overview page — headline,
tier mix, RFM classes, lifecycle flows, churn risk, CLV, Pareto curve, monthly trends and the
CRM's own KPIs — JSON-safe, shaped for Apache ECharts, cached per analysis run."""

from __future__ import annotations

from kehu.dashboard.service import Dashboard, Section, cache_info, clear_cache, dashboard, warm

__all__ = ["Dashboard", "Section", "cache_info", "clear_cache", "dashboard", "warm"]
