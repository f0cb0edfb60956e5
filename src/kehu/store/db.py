"""Connection to the app store database (SQLite file by default, PostgreSQL for a team),
with its schema managed by Alembic migrations shipped inside the package."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from kehu.errors import StoreError
from kehu.i18n import _

MIGRATIONS = Path(__file__).parent / "migrations"


def masked(url: str) -> str:
    """The URL with any password hidden.

    >>> masked("postgresql+psycopg://kehu:secret@db/kehu")
    'postgresql+psycopg://kehu:***@db/kehu'
    """
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable URL>"


class AppStore:
    """The app store at a SQLAlchemy URL. :meth:`upgrade` brings its schema to the latest
    migration; :meth:`session` gives a unit of work.

    >>> s = AppStore("sqlite://")
    >>> s.upgrade(); s.current_revision()
    '0006'
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self._engine: Engine | None = None
        self._sessions: sessionmaker[Session] | None = None

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            try:
                kwargs = {}
                if self.url.startswith("sqlite") and ":memory:" not in self.url and \
                        self.url not in ("sqlite://", "sqlite:///"):
                    kwargs["connect_args"] = {"timeout": 30}
                self._engine = create_engine(self.url, **kwargs)
            except (SQLAlchemyError, ImportError, ValueError) as exc:
                raise StoreError(_("Cannot use the app store at {url}: {err}. Check "
                                   "[store] url in kehu.toml.").format(url=masked(self.url),
                                                                      err=exc)) from exc
            if self._engine.dialect.name == "sqlite":
                event.listen(self._engine, "connect", _sqlite_pragmas)
        return self._engine

    def upgrade(self) -> None:
        """Apply every migration not applied yet (idempotent)."""
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        try:
            with self.engine.begin() as conn:
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
        except SQLAlchemyError as exc:
            raise StoreError(_("Cannot migrate the app store at {url}: {err}. Is the database "
                               "server running and the URL right?").format(
                url=masked(self.url), err=exc.__class__.__name__ + ": " + str(exc).split(
                    "\n")[0])) from exc

    def ensure_current(self) -> None:
        """Upgrade when the database is behind the migrations shipped with this kehu."""
        from alembic.script import ScriptDirectory

        head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
        try:
            current = self.current_revision()
        except SQLAlchemyError as exc:
            raise StoreError(_("Cannot open the app store at {url}: {err}.").format(
                url=masked(self.url), err=str(exc).split("\n")[0])) from exc
        if current != head:
            self.upgrade()

    def current_revision(self) -> str | None:
        from alembic.runtime.migration import MigrationContext

        with self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work: committed when the block ends, rolled back on an error."""
        if self._sessions is None:
            self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        s = self._sessions()
        try:
            yield s
            s.commit()
        except BaseException:
            s.rollback()
            raise
        finally:
            s.close()

    def dispose(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
            self._sessions = None


def _sqlite_pragmas(dbapi_conn: object, _record: object) -> None:
    cur = dbapi_conn.cursor()  # type: ignore[attr-defined]
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.close()
