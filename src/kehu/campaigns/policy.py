"""The contact policy, enforced whenever a contact list is built (C2).

Campaigns competing for the same customers are taken in priority order (then by date, then
id); each one sees the contacts of the campaigns before it, so a cap is never exceeded by
two campaigns that are each within it. Every customer of an audience ends either contacted
or suppressed with the first rule that stopped them::

    opt_out        a do-not-contact entry (all channels or this one) or an opt-out response
    no_address     no phone / e-mail for the channel
    quiet_period   another contact less than ``quiet_days`` before or after
    cap            a window of ``window_days`` around the contact would exceed ``max_contacts``

Only contacts actually made count (a control group member was not contacted), so the
policy is applied before the holdout is drawn: treatment and control come from the same
contactable customers.

>>> import pandas as pd
>>> from datetime import date
>>> policy = ContactPolicy(caps=[Cap(max_contacts=1, window_days=30)])
>>> history = pd.DataFrame({"customer_id": ["A"], "channel": ["sms"],
...                         "day": [pd.Timestamp("2026-03-01")]})
>>> plan = [CampaignRequest("C1", "sms", date(2026, 3, 10), ["A", "B", "B"])]
>>> out = apply_policy(plan, policy, history)
>>> out.contacts.customer_id.tolist(), out.suppressed[["customer_id", "rule"]].values.tolist()
(['B'], [['A', 'cap']])
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from kehu.campaigns.spec import Cap, ContactPolicy

RULES = ("opt_out", "no_address", "quiet_period", "cap")
_EPOCH = np.datetime64("1970-01-01", "D")


@dataclass
class CampaignRequest:
    """One campaign's candidates for a contact list (deduplicated, in order of preference)."""

    campaign_id: str
    channel: str
    day: date
    customers: Sequence[str]
    priority: int = 0
    #: customers with an address for the channel; None = everyone has one
    addressable: set[str] | None = None


@dataclass
class PolicyResult:
    #: campaign_id, customer_id, channel, day
    contacts: pd.DataFrame
    #: campaign_id, customer_id, rule, detail
    suppressed: pd.DataFrame
    #: campaign_id -> {eligible, contacted, suppressed, by_rule}
    summary: dict[str, dict[str, Any]] = field(default_factory=dict)


def _days(values: Any) -> np.ndarray:
    return (pd.to_datetime(pd.Series(values)).to_numpy().astype("datetime64[D]")
            - _EPOCH).astype(np.int64)


def apply_policy(requests: Iterable[CampaignRequest], policy: ContactPolicy,
                 history: pd.DataFrame | None = None,
                 opt_outs: pd.DataFrame | None = None) -> PolicyResult:
    """Build the contact lists of ``requests`` under ``policy``.

    ``history``: past contacts (``customer_id``, ``channel``, ``day``) — planned future ones
    included, since a cap window looks both ways. ``opt_outs``: ``customer_id``, ``channel``
    (empty = every channel) in force on the campaigns' dates.
    """
    reqs = sorted(requests, key=lambda r: (-r.priority, r.day, r.campaign_id))
    hist = history if history is not None else pd.DataFrame(
        {"customer_id": [], "channel": [], "day": []})
    ev_cust = hist.customer_id.astype(str).to_numpy()
    ev_chan = hist.channel.astype(str).to_numpy()
    ev_day = _days(hist.day) if len(hist) else np.array([], np.int64)
    blocked_all: set[str] = set()
    blocked_chan: set[tuple[str, str]] = set()
    if opt_outs is not None and len(opt_outs):
        for c, ch in zip(opt_outs.customer_id.astype(str), opt_outs.channel, strict=True):
            if ch is None or (isinstance(ch, float) and np.isnan(ch)) or ch == "":
                blocked_all.add(c)
            else:
                blocked_chan.add((c, str(ch)))

    contacts, suppressed = [], []
    summary: dict[str, dict[str, Any]] = {}
    for r in reqs:
        cand = np.array(list(dict.fromkeys(str(c) for c in r.customers)), dtype=object)
        day = int((np.datetime64(r.day, "D") - _EPOCH).astype(np.int64))
        reason = np.full(len(cand), None, dtype=object)
        detail = np.full(len(cand), "", dtype=object)

        def stop(mask: np.ndarray, rule: str, text: str | np.ndarray,
                 reason: np.ndarray = reason, detail: np.ndarray = detail) -> None:
            m = mask & (reason == None)  # noqa: E711 - elementwise on an object array
            reason[m] = rule
            detail[m] = text if isinstance(text, str) else text[m]

        stop(np.array([c in blocked_all or (c, r.channel) in blocked_chan for c in cand],
                      dtype=bool), "opt_out", r.channel)
        if r.addressable is not None:
            stop(np.array([c not in r.addressable for c in cand], dtype=bool), "no_address",
                 r.channel)
        live = reason == None  # noqa: E711
        if live.any() and len(ev_cust):
            codes = pd.Index(cand)
            ev_code = codes.get_indexer(ev_cust)
            near = ev_code >= 0
            if policy.quiet_days:
                q = near & (np.abs(ev_day - day) < policy.quiet_days)
                hit = np.zeros(len(cand), dtype=bool)
                hit[ev_code[q]] = True
                stop(hit, "quiet_period", f"{policy.quiet_days}d")
            for cap in policy.caps:
                worst = _window_max(cap, r.channel, day, ev_code, ev_chan, ev_day, len(cand))
                label = f"{cap.max_contacts}/{cap.window_days}d" + (
                    f":{cap.channel}" if cap.channel else "")
                stop(worst + 1 > cap.max_contacts, "cap", label)
        ok = reason == None  # noqa: E711
        chosen = cand[ok]
        contacts.append(pd.DataFrame({"campaign_id": r.campaign_id, "customer_id": chosen,
                                      "channel": r.channel,
                                      "day": pd.Timestamp(r.day)}))
        suppressed.append(pd.DataFrame({"campaign_id": r.campaign_id,
                                        "customer_id": cand[~ok], "rule": reason[~ok],
                                        "detail": detail[~ok]}))
        by_rule = pd.Series(reason[~ok]).value_counts().to_dict() if (~ok).any() else {}
        summary[r.campaign_id] = {"eligible": len(cand), "contacted": int(ok.sum()),
                                  "suppressed": int((~ok).sum()),
                                  "by_rule": {str(k): int(v) for k, v in by_rule.items()}}
        # the campaigns after this one see its contacts
        ev_cust = np.concatenate([ev_cust, chosen.astype(str)])
        ev_chan = np.concatenate([ev_chan, np.full(len(chosen), r.channel, dtype=object)])
        ev_day = np.concatenate([ev_day, np.full(len(chosen), day, dtype=np.int64)])
    cols_c = ["campaign_id", "customer_id", "channel", "day"]
    cols_s = ["campaign_id", "customer_id", "rule", "detail"]
    return PolicyResult(
        pd.concat(contacts, ignore_index=True) if contacts else pd.DataFrame(columns=cols_c),
        pd.concat(suppressed, ignore_index=True) if suppressed else pd.DataFrame(
            columns=cols_s), summary)


def _window_max(cap: Cap, channel: str, day: int, ev_code: np.ndarray, ev_chan: np.ndarray,
                ev_day: np.ndarray, n: int) -> np.ndarray:
    """Per candidate: the most contacts already in any ``cap.window_days`` window that
    would also hold a contact on ``day`` (windows starting up to ``window_days − 1`` days
    before it)."""
    if cap.channel is not None and cap.channel != channel:
        return np.zeros(n, dtype=np.int64)
    w = cap.window_days
    d = ev_day - day
    m = (ev_code >= 0) & (np.abs(d) < w)
    if cap.channel is not None:
        m &= ev_chan == cap.channel
    codes, d = ev_code[m], d[m]
    worst = np.zeros(n, dtype=np.int64)
    if not len(codes):
        return worst
    for start in range(-w + 1, 1):  # window [start, start + w - 1] contains day 0
        inside = (d >= start) & (d <= start + w - 1)
        worst = np.maximum(worst, np.bincount(codes[inside], minlength=n))
    return worst


def max_in_window(days: Sequence[int], window_days: int) -> int:
    """The most events in any ``window_days`` consecutive days (a plain reference used by
    the tests and reports).

    >>> max_in_window([1, 2, 30, 31, 32], 3)
    3
    """
    s = sorted(days)
    best, lo = 0, 0
    for hi in range(len(s)):
        while s[hi] - s[lo] >= window_days:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


__all__ = ["RULES", "CampaignRequest", "Cap", "ContactPolicy", "PolicyResult", "apply_policy",
           "max_in_window"]
