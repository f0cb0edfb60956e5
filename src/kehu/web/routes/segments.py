"""Segments: rule builder with live count and value preview, save, compare, export."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)
