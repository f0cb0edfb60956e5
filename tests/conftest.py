"""Shared fixtures: the PostgreSQL server at 127.0.0.1:5432 (database ``test``).

Locally a missing server skips the PostgreSQL tests with the reason; with ``CI=true`` they
fail instead — CI must never pass without them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

PG_BASE = os.environ.get("KEHU_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _pg_unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"PostgreSQL is required under CI=true but {reason}", pytrace=False)
    pytest.skip(f"PostgreSQL not reachable at {PG_BASE}: {reason}")


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL schema for one test, dropped afterwards."""
    try:
        from sqlalchemy import create_engine, text
    except ImportError as exc:  # pragma: no cover
        _pg_unavailable(str(exc))
    try:
        admin = create_engine(PG_BASE)
        schema = f"kehu_t_{uuid.uuid4().hex[:12]}"
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as exc:
        _pg_unavailable(f"{exc.__class__.__name__}: {str(exc).splitlines()[0]}")
    try:
        yield f"{PG_BASE}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path) -> str:  # type: ignore[no-untyped-def]
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'app.db'}"
    return request.getfixturevalue("pg_url")
