"""User administration and the signed-in user's own password."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)
