"""Identity resolution (MISSION D4): customers from several source systems linked and
deduplicated into one stable kehu customer key."""

from __future__ import annotations
