"""The analytics engines: warehouse tables as Ibis tables, executed by DuckDB in-process
(:class:`DuckDBEngine`, the default) or by Apache Spark (:class:`~kehu.warehouse.spark.
SparkEngine`).

Analytics take and return ``ibis.Table`` and never see the backend. What differs between the
engines is in one place, the methods of :class:`Engine`:

- :meth:`Engine.table` binds a Delta table version (DuckDB: ``deltalake``'s Arrow dataset;
  Spark: the ``delta`` format, or the Parquet files of the version);
- :meth:`Engine.materialize` keeps an intermediate result in the engine (a DuckDB temporary
  table; a persisted Spark DataFrame) so later steps reuse it instead of recomputing it;
- :meth:`Engine.map_batches` applies a Python function (model scoring) batch by batch — in
  process on DuckDB, on the executors with ``mapInArrow`` on Spark — and returns an Ibis
  table again, so per-customer scores never have to be collected on one machine;
- :meth:`Engine.write` appends or overwrites a warehouse table from an expression (DuckDB:
  streamed record batches; Spark: Parquet files written by the executors, committed to Delta
  by the driver).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import ibis
import numpy as np
import pyarrow as pa

from kehu.errors import EngineError, KehuError
from kehu.model import ENTITIES

if TYPE_CHECKING:
    import pandas as pd
    from ibis.expr.types import Table

    from kehu.warehouse.delta import Warehouse

#: a function applied to batches of rows by :meth:`Engine.map_batches`
BatchFunction = Callable[["pd.DataFrame"], "pd.DataFrame"]

_names = itertools.count()


def _temp_name(prefix: str) -> str:
    return f"_kehu_{prefix}_{next(_names)}"


class Engine:
    """An analytics engine over a :class:`~kehu.warehouse.delta.Warehouse`.

    ``Engine(warehouse, ...)`` makes the default one, a :class:`DuckDBEngine` (so existing
    code and scripts keep working); :func:`kehu.warehouse.open_engine` makes the one the
    settings name.

    >>> import tempfile
    >>> from kehu.warehouse.delta import Warehouse
    >>> eng = Engine(Warehouse(tempfile.mkdtemp()))
    >>> type(eng).__name__, eng.name
    ('DuckDBEngine', 'duckdb')
    """

    #: ``duckdb`` or ``spark``
    name: str = ""
    warehouse: Warehouse

    def __new__(cls, *args: Any, **kwargs: Any) -> Engine:
        if cls is Engine:
            return super().__new__(DuckDBEngine)
        return super().__new__(cls)

    # -- the interface every engine implements ------------------------------------------------
    @property
    def con(self) -> Any:
        """The Ibis backend."""
        raise NotImplementedError

    #: whether :meth:`table` shows source tables with merged customers as one (see
    #: :mod:`kehu.identity.follow`); the workspace sets it from ``[identity]`` settings
    follow_identity: bool = False

    def table(self, name: str, *, follow_identity: bool | None = None) -> Table:
        """The warehouse table ``name`` as an Ibis table (empty with the canonical schema when
        an entity has not been imported yet).

        When identity resolution has merged customers and :attr:`follow_identity` is on (or
        ``follow_identity=True``), source tables follow the merges: facts of every merged
        record carry its customer's surviving id, and ``customers`` has one row per customer
        with the golden record's fields (:func:`kehu.identity.follow.follow`)."""
        t = self._bind(name)
        follow = self.follow_identity if follow_identity is None else follow_identity
        if follow and name in ENTITIES:
            from kehu.identity.follow import follow as follow_merges

            return follow_merges(self, name, t)
        return t

    def _bind(self, name: str) -> Table:
        """The warehouse table ``name`` as stored, bound to its current version."""
        raise NotImplementedError

    def execute_arrow(self, expr: Any) -> pa.Table:
        """Execute an Ibis expression to an Arrow table on this process (for results of a
        bounded size: aggregates, one customer, a page of rows)."""
        raise NotImplementedError

    def materialize(self, expr: Table) -> Table:
        """Compute ``expr`` once and keep it in the engine; the returned table reads it."""
        raise NotImplementedError

    def reuse(self, expr: Table) -> Table:
        """``expr`` as a part that one query uses several times. DuckDB computes a repeated
        part once by itself (CTE materialization), so it is returned as it is; Spark inlines
        and recomputes every use, so there it is :meth:`materialize`-d first."""
        return expr

    def map_batches(self, expr: Table, func: BatchFunction, schema: pa.Schema) -> Table:
        """Apply ``func`` (a pandas DataFrame of some rows of ``expr`` in, a DataFrame with
        the columns of ``schema`` out) to every batch of rows of ``expr``; the result stays in
        the engine. ``func`` must not depend on which rows share a batch."""
        raise NotImplementedError

    def write(self, name: str, expr: Table, mode: str = "append",
              metadata: Mapping[str, Any] | None = None, merge_schema: bool = False) -> int:
        """Append ``expr``'s rows to (or with ``mode="overwrite"`` replace) the warehouse
        table ``name`` in one Delta commit; returns the new version."""
        raise NotImplementedError

    def refresh(self) -> None:
        """Re-bind tables to their current Delta versions on next use."""
        raise NotImplementedError

    @contextmanager
    def cached(self) -> Iterator[Engine]:
        """Within the block, tables read many times are kept in the engine."""
        raise NotImplementedError
        yield self  # pragma: no cover

    def close(self) -> None:
        raise NotImplementedError

    # -- shared ---------------------------------------------------------------------------------
    def collect_sample(self, expr: Table, max_rows: int, order_by: str | list[str],
                       seed: int = 0) -> pa.Table:
        """All rows of ``expr`` ordered by ``order_by`` when there are at most ``max_rows``;
        otherwise a random sample of about ``max_rows`` of them — what a model fits on in the
        driver's memory, whatever the size of the customer base.

        Below the cap both engines return the same rows in the same order, so a model fitted
        on them is the same; above it each engine draws its own sample.
        """
        keys = [order_by] if isinstance(order_by, str) else list(order_by)
        # one query when everything fits (the usual case); else count and sample
        head = self.execute_arrow(expr.order_by(keys).limit(max_rows + 1))
        if head.num_rows <= max_rows:
            return head
        n = int(self.execute_arrow(expr.count()).as_py() or 0)
        # each row with probability max_rows / n (Bernoulli): about max_rows rows
        return self.execute_arrow(expr.sample(max_rows / n, seed=seed).order_by(keys))


class DuckDBEngine(Engine):
    """DuckDB over the warehouse. Tables are bound to their current Delta version at first use;
    :meth:`refresh` re-binds them after a write.

    >>> import tempfile
    >>> from kehu.warehouse.delta import Warehouse
    >>> eng = DuckDBEngine(Warehouse(tempfile.mkdtemp()))
    >>> eng.table("customers").count().execute()   # an empty table with the canonical schema
    0
    """

    name = "duckdb"

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
        self._temps: list[str] = []      # materialized intermediate results
        self._arrow: list[str] = []      # registered Arrow results of map_batches

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

    def _bind(self, name: str) -> Table:
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

    def materialize(self, expr: Table) -> Table:
        """A DuckDB temporary table of ``expr`` (dropped by :meth:`close`).

        >>> import tempfile
        >>> from kehu.warehouse.delta import Warehouse
        >>> eng = DuckDBEngine(Warehouse(tempfile.mkdtemp()))
        >>> t = eng.materialize(ibis.memtable({"a": [1, 2, 3]}).mutate(b=ibis._.a * 2))
        >>> int(t.b.sum().execute())
        12
        """
        name = _temp_name("m")
        try:
            self.con.create_table(name, expr, temp=True)
        except Exception as exc:
            raise EngineError(f"DuckDB failed to execute an analytics query: {exc}") from exc
        self._temps.append(name)
        return self.con.table(name)

    def map_batches(self, expr: Table, func: BatchFunction, schema: pa.Schema) -> Table:
        """Batches of ``expr`` through ``func`` in this process; the result is registered
        in DuckDB as an Arrow table.

        >>> import tempfile
        >>> from kehu.warehouse.delta import Warehouse
        >>> eng = DuckDBEngine(Warehouse(tempfile.mkdtemp()))
        >>> out = eng.map_batches(ibis.memtable({"a": [1.0, 4.0]}),
        ...                       lambda df: df.assign(r=df.a ** 0.5),
        ...                       pa.schema([("a", pa.float64()), ("r", pa.float64())]))
        >>> sorted(out.r.to_pyarrow().to_pylist())
        [1.0, 2.0]
        """
        ischema = expr.schema()
        try:
            reader = expr.to_pyarrow_batches(chunk_size=1_000_000)
            parts = [_to_arrow(func(arrow_to_pandas(pa.Table.from_batches([b]), ischema)),
                               schema) for b in reader]
        except KehuError:
            raise
        except Exception as exc:
            raise EngineError(f"DuckDB failed to execute an analytics query: {exc}") from exc
        table = pa.Table.from_batches([b for p in parts for b in p.to_batches()], schema=schema)
        name = _temp_name("a")
        self.con.con.register(name, table)
        self._arrow.append(name)
        return self.con.table(name)

    def write(self, name: str, expr: Table, mode: str = "append",
              metadata: Mapping[str, Any] | None = None, merge_schema: bool = False) -> int:
        """Stream ``expr``'s record batches into a Delta commit."""
        try:
            reader = expr.to_pyarrow_batches(chunk_size=500_000)
        except Exception as exc:
            raise EngineError(f"DuckDB failed to execute an analytics query: {exc}") from exc
        if mode == "overwrite":
            return self.warehouse.overwrite(name, reader, metadata=metadata)
        return self.warehouse.append(name, reader, metadata=metadata, merge_schema=merge_schema)

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
        >>> eng = DuckDBEngine(wh)
        >>> with eng.cached():
        ...     int(eng.table("t").v.sum().execute())
        3
        >>> eng.cache, int(eng.table("t").count().execute())
        (False, 2)
        """
        was = self.cache
        marks = (len(self._temps), len(self._arrow))
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
            self._drop_intermediate(*marks)   # those made within the block

    def _drop_intermediate(self, temps: int = 0, arrow: int = 0) -> None:
        if self._con is not None:
            for name in self._temps[temps:]:
                self._con.con.execute(f'DROP TABLE IF EXISTS "{name}"')
            for name in self._arrow[arrow:]:
                self._con.con.unregister(name)
        del self._temps[temps:]
        del self._arrow[arrow:]

    def close(self) -> None:
        if self._con is not None:
            self._drop_intermediate()
            self._con.disconnect()
            self._con = None
            self._bound.clear()
            self._copied.clear()
            self._views.clear()


#: significant digits of the floats a model sees (see :func:`round_significant`)
MODEL_DIGITS = 12


def round_significant(values: Any, digits: int = MODEL_DIGITS) -> Any:
    """Floats rounded to ``digits`` significant digits (NaN and 0 stay).

    Two engines sum the same amounts in different orders, so a total can differ in its last
    bit (measured: 1e-15 relative on spend features); a tree model may split exactly there.
    Rounded to 12 digits, the same inputs give the same model on DuckDB and on Spark.

    >>> round_significant(np.array([1234.5600000000002, 1234.56, 0.0, np.nan])).tolist()
    [1234.56, 1234.56, 0.0, nan]
    """
    v = np.asarray(values, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        mag = np.floor(np.log10(np.abs(v)))
        scale = np.where(np.isfinite(mag), 10.0 ** (digits - 1 - mag), 1.0)
        out = np.round(v * scale) / scale
    return np.where(np.isfinite(out), out, v)


def arrow_to_pandas(table: pa.Table, schema: Any) -> pd.DataFrame:
    """Arrow rows as the pandas frame Ibis's DuckDB backend makes of them (``to_pandas``), for
    an Ibis ``schema``, with floats rounded by :func:`round_significant`: models see the same
    values and dtypes whichever engine computed the rows."""
    import pandas as pd
    import pyarrow.types as pat
    from ibis.backends.duckdb.converter import DuckDBPandasData

    df = pd.DataFrame({
        name: (col.to_pylist() if (pat.is_nested(col.type) or pat.is_dictionary(col.type)
                                   or col.null_count) else col.to_pandas())
        for name, col in zip(table.column_names, table.columns, strict=True)})
    df = DuckDBPandasData.convert_table(df, schema)
    for name in df.columns:
        if pd.api.types.is_float_dtype(df[name]):
            df[name] = round_significant(df[name].to_numpy(dtype=float))
    return df


def _to_arrow(frame: pd.DataFrame, schema: pa.Schema) -> pa.Table:
    """The result of a batch function in exactly ``schema`` (names, order, types)."""
    missing = [f.name for f in schema if f.name not in frame.columns]
    if missing:
        raise EngineError(f"A batch function returned no column(s) {', '.join(missing)}; "
                          f"expected {', '.join(schema.names)}.")
    return pa.Table.from_pandas(frame[list(schema.names)], schema=schema, preserve_index=False)


def _view_typed(data: Any) -> bool:
    """Whether any file of a pyarrow dataset stores a string_view / binary_view column."""
    for frag in data.get_fragments():
        for f in frag.physical_schema:
            if pa.types.is_string_view(f.type) or pa.types.is_binary_view(f.type):
                return True
    return False
