"""The CRM programme's own effectiveness (MISSION C8): monthly KPIs and a headline."""

from __future__ import annotations

from kehu.kpi.service import KpiReport, crm_kpis

__all__ = ["KpiReport", "crm_kpis"]
