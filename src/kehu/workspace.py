"""A kehu workspace: one folder with ``kehu.toml``, the warehouse and (by default) the app store.

>>> import tempfile, pathlib
>>> root = pathlib.Path(tempfile.mkdtemp()) / "acme"
>>> ws = Workspace.init(root, name="ACME")
>>> sorted(p.name for p in root.iterdir())
['app.db', 'kehu.toml', 'warehouse']
>>> Workspace.open(root).settings.company.name
'ACME'
"""

from __future__ import annotations

import os
import threading
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import tomli_w

from kehu.errors import KehuInputError, WorkspaceNotFoundError
from kehu.i18n import _
from kehu.settings import SETTINGS_FILE, EngineSection, Settings
from kehu.warehouse import Engine, Warehouse, open_engine

if TYPE_CHECKING:
    from kehu.store import AppStore

ENV_VAR = "KEHU_WORKSPACE"
#: guards the list of per-thread engines of every workspace
_ENGINES_LOCK = threading.Lock()


class Workspace:
    """Open with :meth:`open`, :meth:`find` or :meth:`init`; nothing is created at import."""

    def __init__(self, root: Path, settings: Settings) -> None:
        self.root = root
        self.settings = settings

    # -- creating and finding ---------------------------------------------------------------
    @classmethod
    def init(cls, path: str | Path, *, name: str | None = None, store_url: str | None = None,
             locale: str | None = None, exist_ok: bool = False) -> Workspace:
        """Create a workspace at ``path``: settings file, warehouse folder, migrated app store."""
        root = Path(path).expanduser().resolve()
        if (root / SETTINGS_FILE).exists() and not exist_ok:
            raise KehuInputError(
                _("{path} is already a kehu workspace. Use it with --workspace {path}, or "
                  "choose an empty folder.").format(path=root)
            )
        if root.exists() and not root.is_dir():
            raise KehuInputError(_("{path} exists and is not a folder.").format(path=root))
        data: dict[str, Any] = {"company": {"name": name or root.name}}
        if locale:
            data["company"]["locale"] = "zh_CN" if locale.lower().startswith("zh") else "en"
        if store_url:
            data["store"] = {"url": store_url}
        settings = Settings(**data)
        root.mkdir(parents=True, exist_ok=True)
        if not (root / SETTINGS_FILE).exists():
            (root / SETTINGS_FILE).write_text(_toml_with_header(settings), encoding="utf-8")
        ws = cls(root, Settings.load(root / SETTINGS_FILE))
        ws.warehouse.root.mkdir(parents=True, exist_ok=True)
        ws.store.upgrade()
        ws.store.dispose()  # connections reopen on use; SQLite's WAL files go away meanwhile
        return ws

    @classmethod
    def open(cls, path: str | Path) -> Workspace:
        root = Path(path).expanduser().resolve()
        file = root / SETTINGS_FILE
        if not file.is_file():
            raise WorkspaceNotFoundError(
                _("No kehu workspace at {path} (no {file}). Create one with 'kehu init "
                  "{path}', or point to one with --workspace or {env}.").format(
                    path=root, file=SETTINGS_FILE, env=ENV_VAR)
            )
        return cls(root, Settings.load(file))

    @classmethod
    def find(cls, explicit: str | Path | None = None) -> Workspace:
        """The workspace named by ``explicit``, else ``$KEHU_WORKSPACE``, else the cwd."""
        if explicit:
            return cls.open(explicit)
        env = os.environ.get(ENV_VAR)
        if env:
            return cls.open(env)
        return cls.open(Path.cwd())

    # -- parts ------------------------------------------------------------------------------
    def resolve(self, value: str) -> Path:
        p = Path(value).expanduser()
        return p if p.is_absolute() else self.root / p

    @cached_property
    def warehouse(self) -> Warehouse:
        return Warehouse(self.resolve(self.settings.warehouse.path))

    @property
    def engine(self) -> Engine:
        """The query engine the settings name (``engine.name``). A DuckDB connection may not
        be used by two threads at once (the web app answers requests on a thread pool, and
        warms the dashboard on a thread of its own), so each thread gets its own DuckDB engine
        over the same warehouse; the Spark engine is one per workspace (a SparkSession serves
        many threads). :meth:`close` closes them all."""
        cfg = self.settings.engine
        if cfg.name == "spark":
            with _ENGINES_LOCK:
                shared: Engine | None = self.__dict__.get("_spark_engine")
                if shared is None:
                    shared = open_engine(self.warehouse, cfg)
                    shared.follow_identity = self.settings.identity.follow_merges
                    self.__dict__["_spark_engine"] = shared
                    self.__dict__.setdefault("_engines", []).append(shared)
            return shared
        local = self.__dict__.setdefault("_engine_local", threading.local())
        eng: Engine | None = getattr(local, "engine", None)
        if eng is None:
            eng = open_engine(self.warehouse, cfg)
            eng.follow_identity = self.settings.identity.follow_merges
            local.engine = eng
            with _ENGINES_LOCK:
                self.__dict__.setdefault("_engines", []).append(eng)
        return eng

    def use_engine(self, name: str, spark_master: str | None = None) -> None:
        """Switch this workspace object to another engine (``duckdb`` or ``spark``), e.g. for
        ``kehu run --engine spark``; the settings file is not changed. Engines opened so far
        are closed.

        >>> import tempfile
        >>> ws = Workspace.init(tempfile.mkdtemp() + "/w")
        >>> ws.use_engine("spark", spark_master="local[1]")
        >>> ws.engine.name, ws.settings.engine.spark_master
        ('spark', 'local[1]')
        >>> ws.use_engine("duckdb"); ws.engine.name
        'duckdb'
        """
        update: dict[str, Any] = {"name": name}
        if spark_master:
            update["spark_master"] = spark_master
        cfg = EngineSection.model_validate({**self.settings.engine.model_dump(), **update})
        self._close_engines()
        self.settings = self.settings.model_copy(update={"engine": cfg})

    @property
    def store_url(self) -> str:
        url = self.settings.store.url
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith(prefix + "/") and ":memory:" not in url:
            return prefix + str(self.resolve(url[len(prefix):]))
        return url

    @cached_property
    def store(self) -> AppStore:
        """The app store, migrated to the latest schema on first use (one query when it
        already is)."""
        from kehu.store import AppStore

        store = AppStore(self.store_url)
        store.ensure_current()
        return store

    @property
    def tmp_dir(self) -> Path:
        p = self.root / ".tmp"
        p.mkdir(exist_ok=True)
        return p

    def _close_engines(self) -> None:
        with _ENGINES_LOCK:
            engines = self.__dict__.pop("_engines", [])
            self.__dict__.pop("_engine_local", None)
            self.__dict__.pop("_spark_engine", None)
        for eng in engines:
            eng.close()

    def interrupt(self) -> None:
        """Interrupt the queries this workspace's DuckDB engines are running (from another
        thread, e.g. at shutdown); they fail with an interruption error."""
        with _ENGINES_LOCK:
            engines = list(self.__dict__.get("_engines", []))
        for eng in engines:
            con = getattr(eng, "_con", None)
            raw = getattr(con, "con", None)
            if raw is not None and hasattr(raw, "interrupt"):
                raw.interrupt()

    def close(self) -> None:
        self._close_engines()
        if "store" in self.__dict__:
            self.store.dispose()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Workspace({str(self.root)!r})"


def _toml_with_header(settings: Settings) -> str:
    header = (
        "# kehu workspace settings. Every key is documented in docs/settings.md;\n"
        "# environment variables KEHU_<SECTION>__<KEY> override this file.\n\n"
    )
    return header + tomli_w.dumps(settings.to_toml_dict())
