"""Headline figures of a workspace: the numbers the boss asks for first.

Written as Ibis expressions over the warehouse; small results are pulled into Python.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

import ibis

if TYPE_CHECKING:
    from kehu.warehouse import Engine


@dataclass
class Headline:
    """Headline figures as of the last transaction date."""

    as_of: date | None
    customers: int
    buying_customers: int
    active_90d: int
    transactions: int
    revenue: float
    margin: float | None
    revenue_12m: float
    avg_order_value: float
    repeat_rate: float
    top20_revenue_share: float
    monthly_revenue: list[dict[str, Any]] = field(default_factory=list)
    top_customers: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def headline(engine: Engine) -> Headline:
    """Compute the headline figures (zeros for an empty warehouse)."""
    cust = engine.table("customers")
    tx = engine.table("transactions")
    n_customers = int(cust.count().to_pyarrow().as_py())
    stats = tx.aggregate(
        n=tx.count(), revenue=tx.amount.sum(), last=tx.transaction_time.max(),
        cost=tx.cost.sum(), costed=tx.cost.notnull().sum(),
        orders=tx.order_id.coalesce(tx.transaction_id).nunique(),
    ).to_pyarrow().to_pylist()[0]
    if not stats["n"]:
        return Headline(None, n_customers, 0, 0, 0, 0.0, None, 0.0, 0.0, 0.0, 0.0)
    last = stats["last"].date()
    per_cust = tx.group_by("customer_id").aggregate(
        spend=tx.amount.sum(), days=tx.transaction_time.cast("date").nunique(),
        last=tx.transaction_time.max(), name=tx.customer_id.max())
    ranked = per_cust.mutate(rank=ibis.row_number().over(order_by=ibis.desc(per_cust.spend)),
                             n=per_cust.count().over())
    agg = ranked.aggregate(
        buyers=ranked.count(),
        repeaters=(ranked.days > 1).sum(),
        active=(ranked.last >= ibis.literal(last - timedelta(days=90))).sum(),
        top=ranked.spend.sum(where=ranked["rank"] < (ranked.n * 0.2).ceil()),
        total=ranked.spend.sum(),
    ).to_pyarrow().to_pylist()[0]
    start_12m = last - timedelta(days=365)
    recent = tx.filter(tx.transaction_time >= ibis.literal(start_12m))
    rev12 = recent.amount.sum().to_pyarrow().as_py() or 0.0
    month = tx.transaction_time.truncate("M").cast("date")
    monthly = (tx.filter(tx.transaction_time >= ibis.literal(start_12m))
               .group_by(month=month).aggregate(revenue=tx.amount.sum(), buyers=tx.customer_id
                                                .nunique())
               .order_by("month").to_pyarrow().to_pylist())
    top = (per_cust.join(cust, per_cust.customer_id == cust.customer_id)
           .select(customer_id=per_cust.customer_id, name=cust.name, spend=per_cust.spend)
           .order_by(ibis.desc("spend")).limit(5).to_pyarrow().to_pylist())
    margin = None
    if stats["costed"]:
        margin = float(stats["revenue"] - (stats["cost"] or 0.0))
    buyers = int(agg["buyers"] or 0)
    return Headline(
        as_of=last, customers=n_customers, buying_customers=buyers,
        active_90d=int(agg["active"] or 0), transactions=int(stats["n"]),
        revenue=float(stats["revenue"] or 0.0), margin=margin, revenue_12m=float(rev12),
        avg_order_value=float(stats["revenue"] or 0.0) / max(int(stats["orders"] or 1), 1),
        repeat_rate=(int(agg["repeaters"] or 0) / buyers) if buyers else 0.0,
        top20_revenue_share=float(agg["top"] or 0.0) / float(agg["total"] or 1.0),
        monthly_revenue=monthly, top_customers=top,
    )
