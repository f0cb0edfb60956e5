"""Row rules beyond single-column types: checks that need several columns of a row.

Rules are registered per entity with :func:`register_rule`, the way a third party would add
its own (e.g. "a bank deposit needs a maturity date").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from kehu.i18n import _

Columns = dict[str, pa.Array]


@dataclass(frozen=True)
class RowRule:
    """``check`` returns a boolean mask of violating rows (nulls count as no violation)."""

    code: str
    column: str
    message: Callable[[], str]
    check: Callable[[Columns], pa.Array]


_RULES: dict[str, list[RowRule]] = {}


def register_rule(entity: str, rule: RowRule) -> None:
    _RULES.setdefault(entity, []).append(rule)


def rules_for(entity: str) -> list[RowRule]:
    return list(_RULES.get(entity, []))


def _before(later: str, earlier: str) -> Callable[[Columns], pa.Array]:
    def check(c: Columns) -> pa.Array:
        a, b = c[later], c[earlier]
        if pa.types.is_timestamp(a.type) != pa.types.is_timestamp(b.type):
            a, b = pc.cast(a, pa.timestamp("us")), pc.cast(b, pa.timestamp("us"))
        return pc.less(a, b)
    return check


def _negative_purchase(c: Columns) -> pa.Array:
    refund = pc.equal(c["kind"], "refund").fill_null(False)
    return pc.and_(pc.less(c["amount"], 0), pc.invert(refund))


register_rule("transactions", RowRule(
    "negative_amount", "amount",
    lambda: _("negative amount on a purchase (refunds need kind = refund)"),
    _negative_purchase))
register_rule("contracts", RowRule(
    "end_before_start", "end_date", lambda: _("end date is before the start date"),
    _before("end_date", "start_date")))
register_rule("tickets", RowRule(
    "resolved_before_opened", "resolved_time", lambda: _("resolved before it was opened"),
    _before("resolved_time", "opened_time")))
register_rule("payments", RowRule(
    "due_before_invoice", "due_date", lambda: _("due date is before the invoice date"),
    _before("due_date", "invoice_date")))
register_rule("referrals", RowRule(
    "self_referral", "referred_id", lambda: _("a customer cannot refer themselves"),
    lambda c: pc.equal(c["referrer_id"], c["referred_id"])))
