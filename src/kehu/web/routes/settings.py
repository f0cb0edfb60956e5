"""Settings: tiers, lifecycle rules, contact policy, service levels, alert rules."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)
