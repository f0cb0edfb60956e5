"""The contact policy holds across overlapping campaigns (issue 5, C2): property tests against
a plain per-customer reference written here, independently of the vectorised policy."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kehu.campaigns.policy import CampaignRequest, apply_policy, max_in_window
from kehu.campaigns.spec import Cap, ContactPolicy
from kehu.errors import KehuInputError

D0 = date(2026, 1, 1)
CUSTOMERS = [f"C{i}" for i in range(8)]
CHANNELS = ["sms", "email", "phone"]

caps_st = st.lists(st.builds(Cap, max_contacts=st.integers(1, 3),
                             window_days=st.integers(1, 40),
                             channel=st.one_of(st.none(), st.sampled_from(CHANNELS))),
                   min_size=0, max_size=3)
policy_st = st.builds(ContactPolicy, caps=caps_st, quiet_days=st.integers(0, 10))
event_st = st.tuples(st.sampled_from(CUSTOMERS), st.sampled_from(CHANNELS), st.integers(0, 90))
request_st = st.builds(
    lambda i, ch, day, cust, prio, addr: CampaignRequest(
        f"K{i}", ch, D0 + timedelta(days=day), cust, prio, addr),
    st.integers(0, 10_000), st.sampled_from(CHANNELS), st.integers(0, 90),
    st.lists(st.sampled_from(CUSTOMERS), max_size=12), st.integers(0, 3),
    st.one_of(st.none(), st.sets(st.sampled_from(CUSTOMERS))))
optout_st = st.lists(st.tuples(st.sampled_from(CUSTOMERS),
                               st.one_of(st.none(), st.sampled_from(CHANNELS))), max_size=4)


def _frame(events: list[tuple[str, str, int]]) -> pd.DataFrame:
    return pd.DataFrame({"customer_id": [e[0] for e in events],
                         "channel": [e[1] for e in events],
                         "day": [pd.Timestamp(D0 + timedelta(days=e[2])) for e in events]})


def _reference(requests: list[CampaignRequest], policy: ContactPolicy,
               history: list[tuple[str, str, int]], opt_outs: list[tuple[str, str | None]]
               ) -> dict[str, dict[str, str]]:
    """campaign -> customer -> 'ok' or the rule, one customer at a time."""
    events = list(history)
    out: dict[str, dict[str, str]] = {}
    for r in sorted(requests, key=lambda r: (-r.priority, r.day, r.campaign_id)):
        day = (r.day - D0).days
        res: dict[str, str] = {}
        for c in dict.fromkeys(r.customers):
            if (c, None) in opt_outs or (c, r.channel) in opt_outs:
                res[c] = "opt_out"
            elif r.addressable is not None and c not in r.addressable:
                res[c] = "no_address"
            elif policy.quiet_days and any(e[0] == c and abs(e[2] - day) < policy.quiet_days
                                           for e in events):
                res[c] = "quiet_period"
            elif any(_breaks(cap, c, r.channel, day, events) for cap in policy.caps):
                res[c] = "cap"
            else:
                res[c] = "ok"
        for c, v in res.items():
            if v == "ok":
                events.append((c, r.channel, day))
        out[r.campaign_id] = res
    return out


def _breaks(cap: Cap, c: str, channel: str, day: int, events: list[tuple[str, str, int]]
            ) -> bool:
    if cap.channel is not None and cap.channel != channel:
        return False
    mine = [e[2] for e in events if e[0] == c and (cap.channel is None or e[1] == cap.channel)]
    for start in range(day - cap.window_days + 1, day + 1):
        inside = sum(start <= d < start + cap.window_days for d in mine)
        if inside + 1 > cap.max_contacts:
            return True
    return False


@settings(max_examples=300, deadline=None)
@given(policy=policy_st, history=st.lists(event_st, max_size=15),
       requests=st.lists(request_st, min_size=1, max_size=5, unique_by=lambda r: r.campaign_id),
       opt_outs=optout_st)
def test_policy_matches_reference_and_never_exceeds_a_cap(
        policy: ContactPolicy, history: list[tuple[str, str, int]],
        requests: list[CampaignRequest], opt_outs: list[tuple[str, str | None]]) -> None:
    oo = pd.DataFrame({"customer_id": [o[0] for o in opt_outs],
                       "channel": [o[1] for o in opt_outs]})
    got = apply_policy(requests, policy, _frame(history), oo)
    ref = _reference(requests, policy, history, opt_outs)
    new: list[tuple[str, str, int]] = []
    for r in requests:
        c = got.contacts[got.contacts.campaign_id == r.campaign_id]
        s = got.suppressed[got.suppressed.campaign_id == r.campaign_id]
        eligible = set(r.customers)
        # suppressed + contacted = eligible, and nobody is both
        assert set(c.customer_id) | set(s.customer_id) == eligible
        assert not set(c.customer_id) & set(s.customer_id)
        assert len(c) + len(s) == len(eligible) == got.summary[r.campaign_id]["eligible"]
        assert {k: ("ok" if k in set(c.customer_id) else
                    s.set_index("customer_id").rule[k]) for k in eligible} == \
            ref[r.campaign_id]
        new += [(k, r.channel, (r.day - D0).days) for k in c.customer_id]
    # the property itself: no window around a new contact holds more than the cap
    everything = history + new
    for cust, ch, day in new:
        for cap in policy.caps:
            if cap.channel not in (None, ch):
                continue
            days = [d for k, chx, d in everything
                    if k == cust and (cap.channel is None or chx == cap.channel)
                    and abs(d - day) < cap.window_days]
            for start in range(day - cap.window_days + 1, day + 1):
                assert sum(start <= d < start + cap.window_days for d in days) <= \
                    cap.max_contacts
        if policy.quiet_days:
            near = [e for e in everything if e[0] == cust and abs(e[2] - day) < policy.quiet_days]
            assert len(near) == 1  # only itself
        assert (cust, None) not in opt_outs and (cust, ch) not in opt_outs


def test_priority_decides_who_gets_the_customer() -> None:
    policy = ContactPolicy(caps=[Cap(max_contacts=1, window_days=30)])
    low = CampaignRequest("LOW", "sms", D0, ["A", "B"], priority=0)
    high = CampaignRequest("HIGH", "email", D0 + timedelta(days=3), ["B"], priority=5)
    got = apply_policy([low, high], policy)
    assert sorted(got.contacts.itertuples(index=False, name=None)) == [
        ("HIGH", "B", "email", pd.Timestamp(D0 + timedelta(days=3))),
        ("LOW", "A", "sms", pd.Timestamp(D0))]
    assert got.suppressed.values.tolist() == [["LOW", "B", "cap", "1/30d"]]


def test_per_channel_cap_leaves_other_channels_free() -> None:
    policy = ContactPolicy(caps=[Cap(max_contacts=1, window_days=7, channel="sms")])
    hist = _frame([("A", "sms", 0)])
    sms = CampaignRequest("S", "sms", D0 + timedelta(days=6), ["A"])
    mail = CampaignRequest("E", "email", D0 + timedelta(days=6), ["A"])
    got = apply_policy([sms, mail], policy, hist)
    assert got.contacts.campaign_id.tolist() == ["E"]
    # the window is 7 days: day 7 is outside [0, 6]
    later = apply_policy([CampaignRequest("S", "sms", D0 + timedelta(days=7), ["A"])],
                         policy, hist)
    assert later.contacts.customer_id.tolist() == ["A"]


def test_reference_window_helper() -> None:
    assert max_in_window([], 5) == 0
    assert max_in_window([0, 4, 5], 5) == 2
    assert max_in_window([0, 0, 0], 1) == 3


def test_invalid_policy_names_the_field() -> None:
    with pytest.raises(KehuInputError, match=r"caps\.0\.max_contacts"):
        ContactPolicy.parse({"caps": [{"max_contacts": 0, "window_days": 30}]})
    with pytest.raises(KehuInputError, match="quiet_days"):
        ContactPolicy.parse({"quiet_days": -1})
