"""Routes, one module per area, each with a ``router`` (HTML pages, outside the OpenAPI
schema) and/or an ``api`` router (JSON under ``/api/v1``):

``auth`` (login, logout, language), ``pages`` (dashboard, audit), ``customers`` (list, 360),
``explorer`` (OLAP cube), ``segments``, ``campaigns``, ``inbox`` (tasks and alerts),
``data`` (imports, rejects, quality), ``identity`` (review queue, merge journal),
``models`` (model cards), ``settings`` (tiers, lifecycle, contact policy, service levels,
alert rules), ``users`` (user admin, password), ``api`` (health, me, tokens),
``api_customers``.
"""

from __future__ import annotations

from importlib import import_module

from fastapi import APIRouter

AREAS = ("auth", "pages", "customers", "explorer", "segments", "campaigns", "inbox", "team",
         "data", "identity", "models", "settings", "users", "api", "api_customers")


def ROUTERS() -> list[APIRouter]:
    """Every area's routers, in :data:`AREAS` order (imported when the app is built)."""
    found: list[APIRouter] = []
    for area in AREAS:
        module = import_module(f"{__name__}.{area}")
        for name in ("router", "api"):
            router = getattr(module, name, None)
            if isinstance(router, APIRouter):
                found.append(router)
    return found
