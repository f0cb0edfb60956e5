"""The app store: what people create in kehu (SQLAlchemy 2, Alembic migrations)."""

from __future__ import annotations

from kehu.store.db import AppStore

__all__ = ["AppStore"]
