"""Tasks and alerts inbox of the signed-in user."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)
