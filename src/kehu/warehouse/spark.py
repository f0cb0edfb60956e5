"""The Spark engine: the same Ibis analytics executed by Apache Spark (PySpark), in local mode
on one machine or on a cluster.

How warehouse tables are read (docs/spark.md has the trade-off in full):

- with the Delta Lake jars on Spark's class path (``delta-spark``; kehu never downloads them),
  ``spark.read.format("delta")`` at the table's current version — every Delta feature;
- otherwise the Parquet files of the current version, listed by the ``deltalake`` package
  (``DeltaTable.file_uris()``), read with the table's own schema. The version is pinned when
  the table is bound (like the DuckDB engine). Tables using deletion vectors or column mapping
  cannot be read this way and raise an error that says so; kehu's own writer (delta-rs) uses
  neither.

Writes (:meth:`SparkEngine.write`) never go through the driver's memory: each executor task
writes its partition as a Parquet file into the table's folder, and the driver commits the
files to the Delta log in one transaction with ``deltalake`` — the same commit (and commit
metadata) as every other kehu write.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from kehu.errors import EngineError, KehuError
from kehu.i18n import _
from kehu.model import ENTITIES
from kehu.warehouse.engine import BatchFunction, Engine, _temp_name, _to_arrow, arrow_to_pandas

if TYPE_CHECKING:
    from ibis.expr.types import Table

    from kehu.warehouse.delta import Warehouse

#: Spark settings kehu uses unless configured otherwise (``[engine.spark_config]``)
DEFAULTS: dict[str, str] = {
    "spark.app.name": "kehu",
    # DuckDB's semantics: x / 0 and a failed cast give NULL rather than an error
    "spark.sql.ansi.enabled": "false",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    # scoring functions (mapInArrow) see batches of this many rows
    "spark.sql.execution.arrow.maxRecordsPerBatch": "50000",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.session.timeZone": "UTC",
}
#: only in local mode: one JVM is driver and executor
LOCAL_DEFAULTS: dict[str, str] = {
    "spark.driver.memory": "2g",
    "spark.ui.enabled": "false",
    # Spark's 200 shuffle partitions cost more in task overhead than one machine gains
    "spark.sql.shuffle.partitions": str(2 * (os.cpu_count() or 2)),
}
#: how warehouse tables are read: ``auto`` uses the ``delta`` format when Spark has it
READ_MODES = ("auto", "delta", "files")
#: Delta reader features the file path cannot honour
UNSUPPORTED_READER_FEATURES = ("deletionVectors", "columnMapping")


log = logging.getLogger(__name__)


@contextmanager
def _timed(kind: str) -> Iterator[None]:
    """Log each Spark action with its duration and the analytic that asked for it (at DEBUG:
    ``logging.getLogger("kehu.warehouse.spark").setLevel("DEBUG")``)."""
    if not log.isEnabledFor(logging.DEBUG):
        yield
        return
    import traceback

    where = next((f"{f.filename.rsplit('/kehu/', 1)[-1]}:{f.lineno} {f.name}"
                  for f in reversed(traceback.extract_stack()[:-2])
                  if "/kehu/" in f.filename and "/warehouse/" not in f.filename), "?")
    t0 = time.perf_counter()
    try:
        yield
    finally:
        log.debug("%s %.2fs %s", kind, time.perf_counter() - t0, where)


def spark_schema(schema: pa.Schema) -> Any:
    """The Spark ``StructType`` of an Arrow schema (timestamps without a time zone are
    ``TIMESTAMP_NTZ``, as in the warehouse)."""
    from pyspark.sql.pandas.types import from_arrow_schema

    return from_arrow_schema(schema, prefer_timestamp_ntz=True)


class SparkEngine(Engine):
    """Spark over the warehouse.

    ``master`` (e.g. ``local[4]``, ``spark://host:7077``, ``yarn``, ``k8s://…``) and
    ``config`` (``spark.*`` keys) configure the session kehu starts; without a master Spark's
    own configuration decides (``spark-defaults.conf`` in ``SPARK_CONF_DIR``,
    ``PYSPARK_SUBMIT_ARGS``, the ``MASTER`` variable), else ``local[*]``. A session that is
    already running (``spark-submit``, a notebook, the tests) is used as it is and is not
    stopped by :meth:`close`.
    """

    name = "spark"

    def __init__(self, warehouse: Warehouse, master: str | None = None,
                 config: Mapping[str, Any] | None = None, session: Any = None,
                 read: str = "auto") -> None:
        if read not in READ_MODES:
            raise EngineError(_("The '{name}' parameter must be one of {allowed}. Got {v!r} "
                                "instead.").format(name="read", allowed=", ".join(READ_MODES),
                                                   v=read))
        self.warehouse = warehouse
        self.master = master
        self.config = {str(k): str(v) for k, v in (config or {}).items()}
        self.read = read
        self._session = session
        self._owns_session = False
        self._con: Any = None
        self._delta_format: bool | None = None
        self._bound: dict[str, int | None] = {}
        self._cache = False
        self._table_frames: dict[str, Any] = {}   # persisted table DataFrames (cached())
        self._frames: list[Any] = []               # persisted intermediate results
        self._temp_views: list[str] = []

    # -- session ------------------------------------------------------------------------------
    @property
    def session(self) -> Any:
        """The SparkSession (started on first use)."""
        if self._session is None:
            self._session, self._owns_session = _start_session(self.master, self.config)
        return self._session

    @property
    def con(self) -> Any:
        """The Ibis PySpark backend over :attr:`session`."""
        if self._con is None:
            import ibis

            con = ibis.pyspark.connect(self.session)
            con.compiler = _compiler()
            ibis_execute = con.execute

            def execute(expr: Any, /, **kwargs: Any) -> Any:
                with _timed("execute"):
                    return ibis_execute(expr, **kwargs)

            def to_pyarrow(expr: Any, /, *, params: Any = None, limit: Any = None,
                           **kwargs: Any) -> Any:
                if params or limit is not None:
                    return type(con).to_pyarrow(con, expr, params=params, limit=limit,
                                                **kwargs)
                return self.execute_arrow(expr)

            # expr.execute() / to_pandas() / to_pyarrow() in analytics come here too:
            # Arrow straight from Spark (toArrow), every action timed at DEBUG
            con.execute = execute
            con.to_pyarrow = to_pyarrow
            self._con = con
            for k, v in DEFAULTS.items():
                if k.startswith("spark.sql.") and k not in self.config:
                    self.session.conf.set(k, v)
        return self._con

    @property
    def delta_format(self) -> bool:
        """Whether tables are read with Spark's ``delta`` format (else from their files)."""
        if self._delta_format is None:
            if self.read == "files":
                self._delta_format = False
            else:
                available = _has_delta(self.session)
                if self.read == "delta" and not available:
                    raise EngineError(_(
                        "Spark has no 'delta' data source: the Delta Lake jars are not on its "
                        "class path. Add them (e.g. spark.jars with delta-spark's jars), or "
                        "set engine.spark_read = \"files\" to read the Parquet files of each "
                        "table version."))
                self._delta_format = available
        return self._delta_format

    # -- tables -------------------------------------------------------------------------------
    def _bind(self, name: str) -> Table:
        version = self.warehouse.version(name)
        if name not in self._bound or self._bound[name] != version:
            df = self._read(name, version)
            old = self._table_frames.pop(name, None)
            if old is not None:
                old.unpersist()
            if self._cache and version is not None:
                df = df.persist(_storage_level())
                self._table_frames[name] = df
            df.createOrReplaceTempView(name)
            self._bound[name] = version
        return self.con.table(name)

    def _read(self, name: str, version: int | None) -> Any:
        s = self.session
        if version is None:
            if name not in ENTITIES:
                raise EngineError(f"Warehouse table '{name}' does not exist.")
            return _empty_frame(s, ENTITIES[name].arrow_schema())
        path = str(self.warehouse.path(name))
        try:
            if self.delta_format:
                return s.read.format("delta").option("versionAsOf", version).load(path)
            dt = self.warehouse.delta(name, version)
            _check_readable(name, dt)
            schema = pa.schema(dt.schema().to_arrow())
            files = dt.file_uris()
            if not files:
                return _empty_frame(s, schema)
            return s.read.schema(spark_schema(schema)).parquet(*files)
        except KehuError:
            raise
        except Exception as exc:
            raise EngineError(f"Spark could not read warehouse table '{name}' (version "
                              f"{version}) at {path}: {exc}") from exc

    # -- execution ----------------------------------------------------------------------------
    def _frame(self, expr: Any) -> Any:
        """The Spark DataFrame of an Ibis expression."""
        table = expr.as_table()
        self.con._run_pre_execute_hooks(table)   # registers memtables and UDFs
        return self.session.sql(self.con.compile(table))

    def execute_arrow(self, expr: Any) -> pa.Table:
        """Execute an Ibis expression to an Arrow table on the driver (Spark's ``toArrow``),
        in the expression's Ibis schema."""
        try:
            with _timed("collect"):
                table = self._frame(expr).toArrow()
            schema = expr.as_table().schema().to_pyarrow()
            table = table.rename_columns(schema.names).cast(schema)
        except KehuError:
            raise
        except Exception as exc:
            raise EngineError(f"Spark failed to execute an analytics query: {exc}") from exc
        return expr.__pyarrow_result__(table)

    def materialize(self, expr: Table) -> Table:
        """``expr`` persisted on the executors (memory, spilling to disk) and computed now."""
        try:
            with _timed("materialize"):
                df = self._frame(expr).persist(_storage_level())
                df.count()
        except Exception as exc:
            raise EngineError(f"Spark failed to execute an analytics query: {exc}") from exc
        return self._register(df)

    def reuse(self, expr: Table) -> Table:
        """Spark recomputes a part each time a plan uses it: persist it once."""
        return self.materialize(expr)

    def _register(self, df: Any) -> Table:
        name = _temp_name("m")
        df.createOrReplaceTempView(name)
        self._frames.append(df)
        self._temp_views.append(name)
        return self.con.table(name)

    def map_batches(self, expr: Table, func: BatchFunction, schema: pa.Schema) -> Table:
        """``func`` over every Arrow batch of ``expr`` on the executors (``mapInArrow``); the
        result is persisted there."""
        ischema = expr.schema()
        arrow_in = ischema.to_pyarrow()

        def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
            for b in batches:
                if b.num_rows:
                    t = pa.Table.from_batches([b]).rename_columns(arrow_in.names)
                    frame = arrow_to_pandas(t.cast(arrow_in), ischema)
                    yield from _to_arrow(func(frame), schema).to_batches()

        try:
            with _timed("map_batches"):
                df = self._frame(expr).mapInArrow(run, spark_schema(schema))
                df = df.persist(_storage_level())
                df.count()
        except KehuError:
            raise
        except Exception as exc:
            raise EngineError(f"Spark failed to execute an analytics query: {exc}") from exc
        return self._register(df)

    def write(self, name: str, expr: Table, mode: str = "append",
              metadata: Mapping[str, Any] | None = None, merge_schema: bool = False) -> int:
        """Executors write Parquet files into the table's folder; the driver commits them."""
        from deltalake import Schema as DeltaSchema
        from deltalake.transaction import AddAction, RemoveAction, create_table_with_add_actions

        from kehu.warehouse.delta import _props

        wh = self.warehouse
        root = wh.path(name)
        root.mkdir(parents=True, exist_ok=True)
        target = expr.schema().to_pyarrow()
        exists = wh.exists(name)
        new_fields: list[pa.Field] = []
        if exists and mode == "append":
            current = wh.schema(name)
            new_fields = [f for f in target if f.name not in current.names]
            if new_fields and not merge_schema:
                raise EngineError(_("Cannot append to warehouse table '{name}': the new rows "
                                    "have columns the table does not ({cols}).").format(
                    name=name, cols=", ".join(f.name for f in new_fields)))
            target = pa.schema(list(current) + new_fields)
        writer = _file_writer(str(root), target)
        try:
            cols = set(expr.columns)
            sel = [expr[f.name] for f in target if f.name in cols]
            with _timed("write"):
                rows = self._frame(expr.select(sel)).mapInArrow(
                    writer, "path string, size long, rows long, mtime long").collect()
        except KehuError:
            raise
        except Exception as exc:
            raise EngineError(f"Spark failed to write warehouse table '{name}': {exc}") from exc
        actions: list[AddAction | RemoveAction] = [
            AddAction(r["path"], int(r["size"]), {}, int(r["mtime"]), True,
                      json.dumps({"numRecords": int(r["rows"])})) for r in rows]
        props = _props(metadata)
        schema = DeltaSchema.from_arrow(target)
        if not exists:
            adds = [a for a in actions if isinstance(a, AddAction)]
            create_table_with_add_actions(str(root), schema, adds, mode="append",
                                          commit_properties=props)
        else:
            dt = wh.delta(name)
            if new_fields:
                from deltalake.schema import Field

                dt.alter.add_columns([Field.from_arrow(f) for f in new_fields])
                dt = wh.delta(name)
            dt.create_write_transaction(actions, "overwrite" if mode == "overwrite"
                                        else "append", schema, commit_properties=props)
        version = wh.version(name)
        assert version is not None
        return version

    # -- lifetime -----------------------------------------------------------------------------
    def refresh(self) -> None:
        self._bound.clear()

    @contextmanager
    def cached(self) -> Iterator[Engine]:
        """Within the block, tables are persisted on the executors on first use, and
        intermediate results are released at its end."""
        was = self._cache
        mark = len(self._frames)
        self._cache = True
        try:
            yield self
        finally:
            self._cache = was
            if not was:
                for name, df in list(self._table_frames.items()):
                    df.unpersist()
                    self._bound.pop(name, None)
                self._table_frames.clear()
            self._release(mark)   # what was made within the block

    def _release(self, mark: int = 0) -> None:
        for df in self._frames[mark:]:
            df.unpersist()
        if self._session is not None:
            for view in self._temp_views[mark:]:
                self._session.catalog.dropTempView(view)
        del self._frames[mark:]
        del self._temp_views[mark:]

    def close(self) -> None:
        """Release what the engine persisted; stop the session if the engine started it."""
        if self._session is None:
            return
        self._release()
        for df in self._table_frames.values():
            df.unpersist()
        self._table_frames.clear()
        self._bound.clear()
        if self._owns_session:
            self._session.stop()
            self._session = None
            self._con = None
            self._owns_session = False


def _compiler() -> Any:
    """Ibis's PySpark compiler with kehu's corrections — the one place where the SQL Spark
    receives differs from what Ibis renders:

    - float literals are cast to DOUBLE: Spark reads ``3600.0`` as DECIMAL(5,1), so
      ``seconds / 3600.0`` would be a decimal rounded to 6 places instead of a double.
    """
    import sqlglot.expressions as sge
    from ibis.backends.sql.compilers.pyspark import PySparkCompiler

    class Compiler(PySparkCompiler):
        __slots__ = ()

        def visit_NonNullLiteral(self, op: Any, *, value: Any, dtype: Any) -> Any:
            result = super().visit_NonNullLiteral(op, value=value, dtype=dtype)
            if dtype.is_floating() and isinstance(result, sge.Literal):
                return self.cast(result, dtype)
            return result

    return Compiler()


def _start_session(master: str | None, config: Mapping[str, str]) -> tuple[Any, bool]:
    """A session from the settings; (session, whether kehu started it)."""
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:  # pragma: no cover - pyspark is a dependency
        raise EngineError(_("The Spark engine needs PySpark: pip install 'pyspark>=4.0,<4.1'."
                            )) from exc
    active = SparkSession.getActiveSession()
    if active is not None:
        return active, False
    resolved = master or config.get("spark.master") or os.environ.get("MASTER")
    local = resolved is None or resolved.startswith("local")
    builder = SparkSession.builder
    if master:
        builder = builder.master(master)
    elif resolved is None:
        builder = builder.master("local[*]")
    conf = dict(DEFAULTS)
    if local:
        conf.update(LOCAL_DEFAULTS)
        # the executors' Python is this one (the kehu environment), unless set
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    conf.update(config)
    for k, v in conf.items():
        builder = builder.config(k, v)
    try:
        session = builder.getOrCreate()
    except Exception as exc:
        raise EngineError(_("Spark did not start ({err}). Spark 4 needs Java 17 or later "
                            "('java -version'); check JAVA_HOME and the engine settings.")
                          .format(err=str(exc).splitlines()[0] if str(exc) else exc)) from exc
    if local:   # a cluster's logging is its log4j2.properties'
        session.sparkContext.setLogLevel("ERROR")
    return session, True


def _has_delta(session: Any) -> bool:
    """Whether Spark can resolve the ``delta`` data source (the Delta jars are loaded)."""
    try:
        jvm = session._jvm
        jvm.org.apache.spark.sql.execution.datasources.DataSource.lookupDataSource(
            "delta", session._jsparkSession.sessionState().conf())
        return True
    except Exception:
        return False


def _check_readable(name: str, dt: Any) -> None:
    """Refuse table features the file path would silently get wrong."""
    proto = dt.protocol()
    features = set(proto.reader_features or [])
    bad = sorted(features & set(UNSUPPORTED_READER_FEATURES))
    mapping = dt.metadata().configuration.get("delta.columnMapping.mode", "none")
    if mapping not in (None, "none"):
        bad.append("columnMapping")
    if dt.metadata().partition_columns:
        bad.append("partitioning")
    if bad:
        raise EngineError(_(
            "Warehouse table '{name}' uses {features}, which Spark can only read with the "
            "Delta Lake jars. Put delta-spark's jars on Spark's class path (spark.jars) and "
            "set engine.spark_read = \"delta\".").format(name=name,
                                                          features=", ".join(sorted(set(bad)))))


def _empty_frame(session: Any, schema: pa.Schema) -> Any:
    return session.createDataFrame([], spark_schema(schema))


def _storage_level() -> Any:
    from pyspark import StorageLevel

    return StorageLevel.MEMORY_AND_DISK


def _file_writer(root: str, schema: pa.Schema) -> Any:
    """The task that writes one partition's Arrow batches as one Parquet file under ``root``
    and yields (relative path, bytes, rows, modification time in ms); runs on executors."""
    def write(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import pyarrow.parquet as pq

        rel = f"part-kehu-{uuid.uuid4().hex}.parquet"
        path = os.path.join(root, rel)
        w = None
        rows = 0
        try:
            for b in batches:
                if not b.num_rows:
                    continue
                t = pa.Table.from_batches([b])
                cols = [t.column(f.name).cast(f.type) if f.name in t.column_names
                        else pa.nulls(t.num_rows, f.type) for f in schema]
                t = pa.Table.from_arrays(cols, schema=schema)
                if w is None:
                    w = pq.ParquetWriter(path, schema, compression="snappy")
                w.write_table(t)
                rows += t.num_rows
        finally:
            if w is not None:
                w.close()
        if rows:
            st = os.stat(path)
            yield pa.RecordBatch.from_pylist(
                [{"path": rel, "size": st.st_size, "rows": rows,
                  "mtime": int(time.time() * 1000)}],
                schema=pa.schema([("path", pa.string()), ("size", pa.int64()),
                                  ("rows", pa.int64()), ("mtime", pa.int64())]))

    return write
