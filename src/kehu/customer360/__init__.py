"""Customer 360: one customer's whole story (profile, attributes, manager, timeline, next
best offers)."""

from __future__ import annotations

from kehu.customer360.service import Customer360, Offer, TimelineItem, customer_360, kind_label
from kehu.customer360.sources import TimelineSource, register_timeline_source

__all__ = ["Customer360", "Offer", "TimelineItem", "TimelineSource", "customer_360", "kind_label",
           "register_timeline_source"]
