"""Alerts: rules (validated specs) that turn warehouse conditions into tasks for the account
manager (or a team queue), deduplicated, with due dates, states and an e-mail digest."""

from __future__ import annotations

from kehu.alerts.evaluate import Firing, compile_rule, evaluate
from kehu.alerts.service import (
    AlertReport,
    dismiss_task,
    rules_in_force,
    run_alerts,
    save_rules,
    saved_rules,
    snooze_task,
    wake_snoozed,
)
from kehu.alerts.spec import AlertRule, AlertRules
from kehu.store.services import complete_task

__all__ = ["AlertReport", "AlertRule", "AlertRules", "Firing", "compile_rule", "complete_task",
           "dismiss_task", "evaluate", "rules_in_force", "run_alerts", "save_rules",
           "saved_rules", "snooze_task", "wake_snoozed"]
