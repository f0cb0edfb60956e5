"""The web app: FastAPI + Jinja2 + HTMX pages and a JSON API, built by :func:`create_app`."""

from __future__ import annotations

from kehu.web.app import create_app

__all__ = ["create_app"]
