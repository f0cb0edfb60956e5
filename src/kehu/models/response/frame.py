"""The response model's rows: one per *treatment* contact, with the customer's features as of
the day before the contact and whether the customer responded within the window after it.

Control contacts never enter: they were held out of the campaign on purpose, so whether they
"responded" says nothing about the response to being contacted.

Label (the default, and the only one implemented): a row of ``responses`` for the same
campaign and customer whose ``response_time`` is at or after the contact and no later than
``window_days`` days after the contact day. Purchases attributed to a campaign are not used:
the ``responses`` table is what the campaign system recorded, and an attribution rule would be
a second, arbitrary definition of success.

The cut-off of a contact on day D is D − 1: its features see only facts dated up to the day
before (so a purchase on the contact day cannot leak in). With more than :data:`MAX_CUTOFFS`
distinct contact days the cut-offs are snapped to the Sunday before the contact's week — still
before the contact — so the features are built at most once a week.

>>> snap_cutoffs([date(2025, 4, 2), date(2025, 4, 2), date(2025, 4, 9)], max_cutoffs=5)
[datetime.date(2025, 4, 1), datetime.date(2025, 4, 1), datetime.date(2025, 4, 8)]
>>> snap_cutoffs([date(2025, 4, 2), date(2025, 4, 3), date(2025, 4, 9)], max_cutoffs=2)
[datetime.date(2025, 3, 30), datetime.date(2025, 3, 30), datetime.date(2025, 4, 6)]
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import TYPE_CHECKING

import ibis
import pandas as pd

from kehu.analytics.features import customer_features

if TYPE_CHECKING:
    from ibis.expr.types import Table

    from kehu.warehouse import Engine

#: above this many distinct contact days, cut-offs are weekly
MAX_CUTOFFS = 60
#: columns of the frame that are not model inputs
ID_COLUMNS = ("contact_id", "campaign_id", "customer_id", "contact_time", "cutoff",
              "responded", "response_revenue")
#: contact-level inputs added to the customer features
CONTACT_FEATURES = ("channel", "offer", "goal")


def snap_cutoffs(days: list[date], max_cutoffs: int = MAX_CUTOFFS) -> list[date]:
    """The feature cut-off of each contact day: the day before, or, with more than
    ``max_cutoffs`` distinct days, the Sunday before the contact's week (always < the day)."""
    if len(set(days)) <= max_cutoffs:
        return [d - timedelta(days=1) for d in days]
    return [d - timedelta(days=d.weekday() + 1) for d in days]


def treatment_contacts(engine: Engine, until: date | None = None) -> Table:
    """Treatment contacts (``group`` = treatment, any case) made on or before ``until``, with
    the campaign's goal and the channel (the contact's, else the campaign's)."""
    k = engine.table("campaign_contacts")
    k = k.filter(k.group.strip().lower() == "treatment")
    if until is not None:
        k = k.filter(k.contact_time.cast("date") <= ibis.literal(until))
    c = engine.table("campaigns").select("campaign_id", camp_channel="channel", goal="goal")
    k = k.left_join(c, "campaign_id").drop("campaign_id_right")
    return k.select("contact_id", "campaign_id", "customer_id", "contact_time",
                    channel=ibis.coalesce(k.channel, k.camp_channel), offer=k.offer,
                    goal=k.goal)


def labelled_contacts(engine: Engine, window_days: int, until: date | None = None
                      ) -> pd.DataFrame:
    """Treatment contacts whose window has closed by ``until`` (contact day + window ≤
    ``until``), each with ``responded`` (0/1) and ``response_revenue`` (sum of the revenue
    of its responses)."""
    last = None if until is None else until - timedelta(days=window_days)
    k = treatment_contacts(engine, last)
    r = engine.table("responses")
    j = k.inner_join(r, (k.campaign_id == r.campaign_id) & (k.customer_id == r.customer_id))
    j = j.filter((j.response_time >= j.contact_time)
                 & (j.response_time.cast("date")
                    <= (j.contact_time.cast("date") + ibis.interval(days=window_days))))
    hits = j.group_by("contact_id").aggregate(hit=j.count(),
                                              response_revenue=j.revenue.sum())
    out = k.left_join(hits, "contact_id").drop("contact_id_right")
    out = out.mutate(responded=(out.hit.fill_null(0) > 0).cast("int64")).drop("hit")
    return out.order_by("contact_time", "contact_id").to_pandas()


def contact_frame(engine: Engine, window_days: int = 30, until: date | None = None,
                  max_cutoffs: int = MAX_CUTOFFS) -> pd.DataFrame:
    """The training rows: :func:`labelled_contacts` joined with
    :func:`~kehu.analytics.features.customer_features` at each contact's cut-off. Contacts
    of customers unknown (or signed up after the cut-off) at the cut-off are dropped."""
    k = labelled_contacts(engine, window_days, until)
    if k.empty:
        return k.assign(cutoff=pd.Series(dtype=object))
    days = pd.to_datetime(k.contact_time).dt.date.tolist()
    k["cutoff"] = snap_cutoffs(days, max_cutoffs)
    contacts = treatment_contacts(engine)
    parts = []
    for cutoff, rows in k.groupby("cutoff", sort=True):
        first, last = min(d for d in rows.contact_time.dt.date), max(rows.contact_time.dt.date)
        day = contacts.contact_time.cast("date")
        pop = contacts.filter((day >= ibis.literal(first)) & (day <= ibis.literal(last)))
        feats = customer_features(engine, cutoff, population=pop.select("customer_id")
                                  .distinct()).to_pandas()
        parts.append(rows.merge(feats, on="customer_id", how="inner"))
    out = pd.concat(parts, ignore_index=True)
    return out.sort_values(["contact_time", "contact_id"], ignore_index=True)


def model_inputs(frame: pd.DataFrame) -> pd.DataFrame:
    """The columns the model sees: customer features and the contact's channel, offer, goal."""
    return frame.drop(columns=[c for c in ID_COLUMNS if c in frame.columns])


def time_split(frame: pd.DataFrame, holdout_share: float = 0.25) -> pd.Series:
    """True for the hold-out rows: whole campaigns, latest first contact first, until they
    hold at least ``holdout_share`` of the rows; with a single campaign, the latest
    ``holdout_share`` of its contacts by time.

    >>> f = pd.DataFrame({"campaign_id": ["A"] * 6 + ["B"] * 3,
    ...                   "contact_time": pd.to_datetime(["2025-01-01"] * 6 + ["2025-03-01"] * 3)})
    >>> time_split(f).tolist()
    [False, False, False, False, False, False, True, True, True]
    """
    starts = frame.groupby("campaign_id").contact_time.min().sort_values(ascending=False)
    if len(starts) < 2:
        t = frame.contact_time.quantile(1 - holdout_share)
        return frame.contact_time >= t
    sizes = frame.campaign_id.value_counts()
    chosen: list[str] = []
    for cid in starts.index[:-1]:  # never every campaign: something must remain to train on
        chosen.append(str(cid))
        if sizes[chosen].sum() >= holdout_share * len(frame):
            break
    return frame.campaign_id.isin(chosen)
