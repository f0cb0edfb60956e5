"""The analytics engine: warehouse tables as Ibis tables, executed by DuckDB in-process.

Analytics take and return ``ibis.Table`` and never see the backend; a later Spark engine
provides the same :meth:`Engine.table` over the same Delta tables.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import ibis
import pyarrow as pa

from kehu.errors import EngineError
from kehu.model import ENTITIES

if TYPE_CHECKING:
    from ibis.expr.types import Table

    from kehu.warehouse.delta import Warehouse


class Engine:
    """DuckDB over the warehouse. Tables are bound to their current Delta version at first use;
    :meth:`refresh` re-binds them after a write.

    >>> import tempfile
    >>> from kehu.warehouse.delta import Warehouse
    >>> eng = Engine(Warehouse(tempfile.mkdtemp()))
    >>> eng.table("customers").count().execute()   # an empty table with the canonical schema
    0
    """

    def __init__(self, warehouse: Warehouse, threads: int | None = None,
                 memory_limit: str | None = None, cache: bool = False) -> None:
        self.warehouse = warehouse
        #: copy each table version into DuckDB's own storage on first use: the first query
        #: pays the copy, later ones scan native columns (for long-running processes such as
        #: the web app; one-shot commands read the Delta files directly)
        self.cache = cache
        self._threads = threads
        self._memory_limit = memory_limit
        self._con: Any = None
        self._bound: dict[str, int | None] = {}
        self._copied: set[str] = set()   # tables copied into DuckDB
        self._views: set[str] = set()    # tables registered as views of the files

    @property
    def con(self) -> Any:
        """The Ibis DuckDB backend (created on first use)."""
        if self._con is None:
            config: dict[str, Any] = {}
            if self._threads:
                config["threads"] = self._threads
            if self._memory_limit:
                config["memory_limit"] = self._memory_limit
            # no extension auto-install: nothing may be downloaded at run time
            config["autoinstall_known_extensions"] = False
            config["autoload_known_extensions"] = False
            self._con = ibis.duckdb.connect(**config)
            self._con.con.execute("SET enable_progress_bar = false")  # kehu draws its own
        return self._con

    def table(self, name: str) -> Table:
        """The warehouse table ``name`` as an Ibis table (empty with the canonical schema when
        an entity has not been imported yet)."""
        version = self.warehouse.version(name)
        if name not in self._bound or self._bound[name] != version:
            raw = self.con.con
            if version is None:
                if name not in ENTITIES:
                    raise EngineError(f"Warehouse table '{name}' does not exist.")
                data: Any = ENTITIES[name].arrow_schema().empty_table()
            else:
                data = self.warehouse.dataset(name)
            try:
                # drop the previous binding: a registered view would shadow a new native table
                if name in self._views:
                    raw.unregister(name)
                    self._views.discard(name)
                if name in self._copied:
                    raw.execute(f'DROP TABLE IF EXISTS "{name}"')
                    self._copied.discard(name)
                if self.cache and version is not None:
                    staging = f"_kehu_src_{name}"
                    raw.register(staging, data)
                    # internal names only: nothing here comes from a user
                    raw.execute(f'CREATE TABLE "{name}" AS SELECT * FROM "{staging}"')
                    raw.unregister(staging)
                    self._copied.add(name)
                else:
                    if version is not None and _view_typed(data):
                        # Delta merges (delta-rs) write string_view columns, and pyarrow has
                        # no kernel to compare them with the plain strings DuckDB pushes down
                        # as filters: read such a table whole, in the table's own schema
                        data = data.to_table()
                    raw.register(name, data)
                    self._views.add(name)
            except Exception as exc:  # pragma: no cover - backend failure with context
                raise EngineError(f"DuckDB could not bind warehouse table '{name}': {exc}") from exc
            self._bound[name] = version
        return self.con.table(name)

    def execute_arrow(self, expr: Any) -> pa.Table:
        """Execute an Ibis expression to an Arrow table."""
        try:
            return expr.to_pyarrow()
        except Exception as exc:
            raise EngineError(f"DuckDB failed to execute an analytics query: {exc}") from exc

    def refresh(self) -> None:
        self._bound.clear()

    @contextmanager
    def cached(self) -> Iterator[Engine]:
        """Within the block, tables are copied into DuckDB on first use (a batch job such as
        the analysis run reads the same tables many times: one copy is cheaper than scanning
        the Parquet files again for every step); afterwards the copies are dropped.

        >>> import tempfile, pyarrow as pa
        >>> from kehu.warehouse.delta import Warehouse
        >>> wh = Warehouse(tempfile.mkdtemp()); _ = wh.append("t", pa.table({"v": [1, 2]}))
        >>> eng = Engine(wh)
        >>> with eng.cached():
        ...     int(eng.table("t").v.sum().execute())
        3
        >>> eng.cache, int(eng.table("t").count().execute())
        (False, 2)
        """
        was = self.cache
        self.cache = True
        try:
            yield self
        finally:
            self.cache = was
            if not was:
                for name in list(self._copied):
                    self._bound.pop(name, None)   # re-bound as a view on next use
                    if self._con is not None:
                        self._con.con.execute(f'DROP TABLE IF EXISTS "{name}"')
                self._copied.clear()

    def close(self) -> None:
        if self._con is not None:
            self._con.disconnect()
            self._con = None
            self._bound.clear()
            self._copied.clear()
            self._views.clear()


def _view_typed(data: Any) -> bool:
    """Whether any file of a pyarrow dataset stores a string_view / binary_view column."""
    import pyarrow as pa

    for frag in data.get_fragments():
        for f in frag.physical_schema:
            if pa.types.is_string_view(f.type) or pa.types.is_binary_view(f.type):
                return True
    return False
