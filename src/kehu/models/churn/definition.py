"""What "churned" means — configuration, not code — and the labels it gives at a cut-off.

- ``events``: a churn event (``churn_events``) dated in the window after the cut-off;
- ``non_contractual``: no purchase in the window after the cut-off (customers who bought in
  the ``active_days`` before it);
- ``contractual``: a contract ended in the window and no new one started within
  ``renewal_grace_days``, or a churn event;
- ``label_column``: a customer column (e.g. a custom attribute exported by another system)
  equal to ``positive`` — a snapshot with no time, so no time-based hold-out;
- ``auto``: ``events`` when churn events exist, otherwise ``non_contractual``.

The population at a cut-off is the customers who signed up (or first bought) by then, had not
churned by then (no earlier churn event) and were active in the ``active_days`` before it.
Features come only from before the cut-off and labels only from after it.

>>> ChurnDefinition().window_days
90
>>> ChurnDefinition(kind="label_column")
Traceback (most recent call last):
...
pydantic_core._pydantic_core.ValidationError: 1 validation error for ChurnDefinition
  Value error, a label_column definition needs 'column' and 'positive' ...
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import TYPE_CHECKING, Literal

import ibis
from ibis.expr.types import Table
from pydantic import BaseModel, Field, model_validator

if TYPE_CHECKING:
    from kehu.warehouse import Engine

KINDS = ("auto", "events", "non_contractual", "contractual", "label_column")


class ChurnDefinition(BaseModel):
    kind: Literal["auto", "events", "non_contractual", "contractual", "label_column"] = "auto"
    window_days: int = Field(90, ge=7, le=730, description="Days after the cut-off in which "
                             "churn is observed (and predicted).")
    active_days: int = Field(365, ge=1, description="A customer is in the population when "
                             "they had activity in this many days before the cut-off.")
    renewal_grace_days: int = Field(30, ge=0)
    column: str | None = None
    positive: str | None = None

    @model_validator(mode="after")
    def _column(self) -> ChurnDefinition:
        if self.kind == "label_column" and (not self.column or self.positive is None):
            raise ValueError("a label_column definition needs 'column' and 'positive' "
                             "(the value that means churned)")
        return self

    def resolve(self, engine: Engine) -> ChurnDefinition:
        """``auto`` made concrete for this warehouse."""
        if self.kind != "auto":
            return self
        ev = engine.table("churn_events")
        kind = "events" if ev.count().to_pyarrow().as_py() else "non_contractual"
        return self.model_copy(update={"kind": kind})


def population(engine: Engine, cutoff: date, d: ChurnDefinition) -> Table:
    """Customers at risk at ``cutoff``: signed up, not yet churned, active recently."""
    lit = ibis.literal(cutoff)
    since = ibis.literal(cutoff - timedelta(days=d.active_days))
    c = engine.table("customers")
    c = c.filter(c.signup_date.isnull() | (c.signup_date <= lit)).select("customer_id")
    t = engine.table("transactions")
    day = t.transaction_time.cast("date")
    recent = t.filter((day <= lit) & (day > since)).select("customer_id").distinct()
    k = engine.table("contracts")
    holding = k.filter((k.start_date <= lit) & (k.end_date.isnull() | (k.end_date > lit))) \
        .select("customer_id").distinct()
    active = recent.union(holding, distinct=True)
    ev = engine.table("churn_events")
    gone = ev.filter(ev.churn_date <= lit).select("customer_id").distinct()
    return c.semi_join(active, "customer_id").anti_join(gone, "customer_id")


def labels(engine: Engine, cutoff: date, d: ChurnDefinition) -> Table:
    """``customer_id``, ``churned`` (0/1) for the population at ``cutoff`` under ``d``
    (resolved), observed in (cutoff, cutoff + window]."""
    d = d.resolve(engine)
    pop = population(engine, cutoff, d)
    lo, hi = ibis.literal(cutoff), ibis.literal(cutoff + timedelta(days=d.window_days))
    if d.kind == "label_column":
        c = engine.table("customers")
        col = c[d.column].cast("string").strip().lower()
        pos = c.select("customer_id", churned=(col == str(d.positive).strip().lower())
                       .fill_null(False).cast("int64"))
        return pop.join(pos, "customer_id")
    ev = engine.table("churn_events")
    by_event = ev.filter((ev.churn_date > lo) & (ev.churn_date <= hi)).select(
        "customer_id").distinct()
    if d.kind == "events":
        churned = by_event
    elif d.kind == "non_contractual":
        t = engine.table("transactions")
        day = t.transaction_time.cast("date")
        bought = t.filter((day > lo) & (day <= hi)).select("customer_id").distinct()
        churned = pop.anti_join(bought, "customer_id")
    else:
        k = engine.table("contracts")
        ended = k.filter((k.end_date > lo) & (k.end_date <= hi))
        grace = ibis.interval(days=d.renewal_grace_days)
        renewed = ended.join(k, [ended.customer_id == k.customer_id,
                                 k.start_date >= ended.start_date,
                                 k.contract_id != ended.contract_id,
                                 k.start_date <= ended.end_date + grace]).select(
            ended.customer_id).distinct()
        lapsed = ended.select("customer_id").distinct().anti_join(renewed, "customer_id")
        churned = lapsed.union(by_event, distinct=True)
    flag = churned.mutate(churned=ibis.literal(1, "int64"))
    j = pop.left_join(flag, "customer_id")
    return j.select(customer_id=pop.customer_id, churned=j.churned.fill_null(0))
