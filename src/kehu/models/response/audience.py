"""Score a planned campaign audience: each customer's response probability and what the
campaign can be expected to bring, overall and by value tier.

For the n customers of the audience with probabilities p_i, revenue per response r_i (the
mean revenue of past responses in the customer's tier, else the overall mean), the margin
rate m of the transactions, c per contact and a fixed cost F::

    expected responses  E = Σ p_i,  interval E ± 1.96 · √Σ p_i (1 − p_i)   (Poisson-binomial)
    expected revenue    R = Σ p_i · r_i
    expected margin     M = m · R
    cost                C = n · c + F         (by tier: n_t · c + F · n_t / n)
    expected ROI          = (M − C) / C
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

import ibis
import numpy as np
import pandas as pd

from kehu.analytics.features import customer_features
from kehu.analytics.summary import last_transaction_day as last_day
from kehu.errors import KehuInputError
from kehu.i18n import _
from kehu.models import registry
from kehu.models.response.frame import model_inputs
from kehu.models.response.service import KIND, NO_TIER, count_interval
from kehu.segments.spec import SegmentSpec

if TYPE_CHECKING:
    from kehu.warehouse import Engine
    from kehu.workspace import Workspace

@dataclass
class AudienceScore:
    model_id: str
    as_of: date
    channel: str | None
    offer: str | None
    audience: int
    scored: int
    unknown: int
    expected_responses: float
    interval: list[float]
    expected_revenue: float
    margin_rate: float | None
    expected_margin: float | None
    cost_per_contact: float
    fixed_cost: float
    cost: float
    roi: float | None
    by_tier: list[dict[str, Any]]
    #: customer_id, tier, probability, revenue_per_response, expected_revenue
    customers: pd.DataFrame = field(repr=False)
    notes: list[str] = field(default_factory=list)

    def to_dict(self, top: int | None = None) -> dict[str, Any]:
        """Plain data; the customers sorted by probability (the first ``top`` of them)."""
        out = asdict(self)
        c = self.customers.sort_values("probability", ascending=False)
        out["customers"] = c.head(top if top is not None else len(c)).to_dict("records")
        return out


def margin_rate(engine: Engine, as_of: date, days: int = 365) -> float | None:
    """(Σ amount − Σ cost) / Σ amount of the purchases with a cost in the ``days`` up to
    ``as_of``; ``None`` when no purchase carries a cost."""
    t = engine.table("transactions")
    day = t.transaction_time.cast("date")
    t = t.filter((day <= ibis.literal(as_of)) & (day > ibis.literal(as_of - timedelta(days=days)))
                 & t.cost.notnull() & t.amount.notnull()
                 & (t.kind.fill_null("purchase") != "refund"))
    row = t.aggregate(a=t.amount.sum(), c=t.cost.sum()).to_pyarrow().to_pylist()[0]
    if not row["a"]:
        return None
    return float((row["a"] - row["c"]) / row["a"])


def campaign_cost_per_contact(engine: Engine, channel: str | None) -> float | None:
    """The mean cost per contact of past campaigns on ``channel``, if any."""
    if channel is None:
        return None
    c = engine.table("campaigns")
    c = c.filter((c.channel == channel) & c.cost_per_contact.notnull())
    v = c.aggregate(v=c.cost_per_contact.mean()).to_pyarrow().to_pylist()[0]["v"]
    return None if v is None else float(v)


def audience_ids(ws: Workspace, audience: Any) -> list[str]:
    """Customer ids of ``audience``: a list of ids, a :class:`SegmentSpec`, or the name of a
    segment saved in the workspace ('kehu segment save')."""
    from kehu.segments.compile import Context, compile_segment

    if isinstance(audience, str):
        from kehu.store import services as sv

        d = sv.get_definition(ws.store, "segment", audience)
        audience = SegmentSpec.parse(d.spec, audience)
    if isinstance(audience, SegmentSpec):
        members = compile_segment(audience, Context(ws.engine, audience.as_of))
        return [str(v) for v in members.to_pyarrow().column("customer_id").to_pylist()]
    ids = [str(v).strip() for v in audience if v is not None and str(v).strip()]
    return list(dict.fromkeys(ids))


def _economics(g: pd.DataFrame, m: float | None, cpc: float, fixed: float) -> dict[str, Any]:
    e, lo, hi = count_interval(g.probability.to_numpy())
    revenue = float(g.expected_revenue.sum())
    margin = None if m is None else revenue * m
    cost = len(g) * cpc + fixed
    roi = None if margin is None or cost <= 0 else (margin - cost) / cost
    return {"customers": len(g), "expected_responses": e, "interval": [lo, hi],
            "expected_revenue": round(revenue, 2),
            "expected_margin": None if margin is None else round(margin, 2),
            "cost": round(cost, 2), "roi": None if roi is None else round(roi, 4)}


def score_audience(ws: Workspace, audience: Any, channel: str | None = None,
                   offer: str | None = None, goal: str | None = None,
                   cost_per_contact: float | None = None, fixed_cost: float = 0.0,
                   as_of: date | None = None, rec: registry.ModelRecord | None = None
                   ) -> AudienceScore:
    """Response probability of every customer of ``audience`` if contacted on ``channel``
    with ``offer`` after ``as_of``, and the campaign's expected responses, revenue, margin,
    cost and ROI (see the module's formulas). Without ``cost_per_contact`` the mean of past
    campaigns on the channel is used (0 when there is none)."""
    if fixed_cost < 0 or (cost_per_contact is not None and cost_per_contact < 0):
        raise KehuInputError(_("Costs cannot be negative. Got {cpc} per contact and {fixed} "
                               "fixed.").format(cpc=cost_per_contact, fixed=fixed_cost))
    eng = ws.engine
    rec = rec or registry.get(ws, kind=KIND)
    model = registry.load(ws, rec)
    as_of = as_of or last_day(eng)
    ids = audience_ids(ws, audience)
    if not ids:
        raise KehuInputError(_("The audience is empty: no customer to score."))
    notes: list[str] = []
    pop = ibis.memtable(pd.DataFrame({"customer_id": ids}))
    feats = customer_features(eng, as_of, population=pop).to_pandas()
    feats = feats.assign(channel=channel, offer=offer, goal=goal)
    p = model.predict_proba(model_inputs(feats)) if len(feats) else np.array([])
    rpr = rec.details.get("revenue_per_response", {"overall": 0.0, "by_tier": {}})
    tier = feats.tier.astype("string").fillna(NO_TIER) if len(feats) else pd.Series(dtype=str)
    r = np.array([rpr["by_tier"].get(t, rpr["overall"]) for t in tier], dtype=float)
    cust = pd.DataFrame({"customer_id": feats.customer_id.astype(str), "tier": tier,
                         "probability": p, "revenue_per_response": r,
                         "expected_revenue": p * r})
    m = margin_rate(eng, as_of)
    if m is None:
        notes.append(_("No transaction carries a cost: the margin rate is unknown, so are "
                       "the expected margin and ROI."))
    if cost_per_contact is None:
        cost_per_contact = campaign_cost_per_contact(eng, channel)
        if cost_per_contact is None:
            cost_per_contact = 0.0
            notes.append(_("No past campaign on this channel has a cost per contact: 0 is "
                           "used. Pass the cost to get the ROI."))
    unknown = len(ids) - len(cust)
    if unknown:
        notes.append(_("{n} customers of the audience are unknown at {as_of} and were not "
                       "scored.").format(n=unknown, as_of=as_of))
    total = _economics(cust, m, cost_per_contact, fixed_cost)
    n = max(len(cust), 1)
    by_tier = [{"tier": t, **_economics(g, m, cost_per_contact, fixed_cost * len(g) / n)}
               for t, g in cust.groupby("tier", sort=True)]
    return AudienceScore(rec.model_id, as_of, channel, offer, len(ids), len(cust), unknown,
                         total["expected_responses"], total["interval"],
                         total["expected_revenue"], m, total["expected_margin"],
                         float(cost_per_contact), float(fixed_cost), total["cost"],
                         total["roi"], by_tier, cust, notes)
