"""Alembic environment, configured by kehu.store.db.AppStore (no alembic.ini needed)."""

from __future__ import annotations

from alembic import context

from kehu.store.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is None:  # pragma: no cover - kehu always passes its connection
        raise RuntimeError("kehu runs migrations through AppStore.upgrade()")
    context.configure(connection=connection, target_metadata=target_metadata,
                      render_as_batch=connection.dialect.name == "sqlite",
                      compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


run_migrations_online()
