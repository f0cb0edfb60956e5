"""Campaigns: create, policy check, power, approve, launch, results."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)
