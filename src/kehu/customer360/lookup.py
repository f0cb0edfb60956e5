"""One customer's rows, fast: the 360 page's tables copied into a DuckDB file sorted by
customer, so a point lookup reads one row group (DuckDB's zone maps) instead of scanning
millions of transaction lines in the warehouse's Parquet files.

The file is ``<workspace>/.cache/customer_lookup/<key>.duckdb``; the key is the Delta
versions of the tables read and the registered timeline sources, so any import or analysis
run gives a new file (built on first use, or ahead by :func:`prepare`, which ``kehu run`` and
the web app's start call). Only the latest scores row of each customer is kept, and the
timeline is stored as one table (``timeline``: every source's events, sorted by customer and
newest first) instead of the source tables, so a 360 page reads it with one query. Readers
open the file read-only, one connection per thread; a build writes a temporary file and
renames it, so two processes building at once both end with a whole file.

>>> import tempfile
>>> from kehu.workspace import Workspace
>>> ws = Workspace.init(tempfile.mkdtemp())
>>> lookup(ws) is None   # nothing imported yet: callers use the warehouse
True
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ibis
from ibis.expr.types import Table

from kehu.customer360.sources import TimelineSource, timeline_sources
from kehu.warehouse.sql import parametrised_sql, run_point

if TYPE_CHECKING:
    from kehu.workspace import Workspace

LOOKUP_DIR = Path(".cache") / "customer_lookup"
#: bump when what is stored changes: older files are then rebuilt
LOOKUP_FORMAT = 4
#: files kept per workspace
KEEP_FILES = 2
SCORES = "customer_scores"
#: the latest run's next best offers (:data:`kehu.analytics.run.OFFERS_TABLE`)
OFFERS = "customer_offers"
#: the virtual table of every timeline source's events (materialised in the file)
TIMELINE = "timeline"
#: the tables copied into the file (employees and products whole, the others sorted by
#: customer)
TABLES = ("customers", "employees", SCORES, "contracts", OFFERS, "products")
#: tables whose changes change the source tables as the engine shows them
IDENTITY_TABLES = ("identity_map", "customer_golden")

_BUILD_LOCK = threading.Lock()
_LOCAL = threading.local()


class Lookup:
    """The lookup file of one key: ``table(name)`` gives an Ibis table over it (read-only,
    this thread's connection), or None for a table it does not hold."""

    def __init__(self, path: Path, tables: frozenset[str],
                 sources: tuple[TimelineSource, ...] = ()) -> None:
        self.path = path
        self.tables = tables
        self.sources = sources

    def table(self, name: str) -> Table | None:
        if name not in self.tables:
            return None
        return self.connection().table(name)

    def connection(self) -> Any:
        """This thread's read-only Ibis connection to the file."""
        cons: dict[str, Any] = getattr(_LOCAL, "cons", None) or {}
        _LOCAL.cons = cons
        con = cons.get(str(self.path))
        if con is None:
            for stale in cons.values():  # this thread's connection to an older file
                stale.disconnect()
            cons.clear()
            # one thread per connection: these are point lookups, and the web app runs
            # many at once on its own threads
            con = ibis.duckdb.connect(str(self.path), read_only=True, threads=1,
                                      autoinstall_known_extensions=False,
                                      autoload_known_extensions=False)
            cons[str(self.path)] = con
        return con


class NotInLookup(LookupError):
    """A query needs a table the lookup file does not hold."""


_SQL: dict[tuple[str, str], str] = {}
_SQL_LOCK = threading.Lock()


#: "look the lookup up": the default of :func:`rows`' ``fast``
CURRENT: Any = object()


def rows(ws: Workspace, name: str, build: Callable[[Callable[[str], Table], dict[str, Any]],
                                                     Any], fast: Lookup | None = CURRENT,
         **values: Any) -> list[dict[str, Any]]:
    """Rows of the Ibis expression ``build(table, values)`` as dicts.

    Over the lookup, the expression is compiled to SQL once per file and query ``name``, with
    the ``values`` as bound parameters (compiling an Ibis expression costs more than running
    it on one customer's rows); otherwise (no lookup, or a table it lacks) it runs on the
    warehouse with the values inlined. A caller making several queries passes ``fast``, the
    :func:`lookup` it took once.
    """
    if fast is CURRENT:
        fast = lookup(ws)
    if fast is not None:
        cache_key = (str(fast.path), name)
        with _SQL_LOCK:
            sql = _SQL.get(cache_key)
        try:
            if sql is None:
                def table(t: str) -> Table:
                    got = fast.table(t)
                    if got is None:
                        raise NotInLookup(t)
                    return got

                sql = parametrised_sql(lambda marks: build(table, marks), values)
                with _SQL_LOCK:
                    _SQL[cache_key] = sql
            cur = run_point(fast.connection().con, sql, values)
            # plain tuples, not Arrow: for a few rows, Arrow's per-column set-up costs more
            # than the query (43 score columns: 1.5 ms fetched, 5 ms through Arrow)
            cols = [d[0] for d in cur.description]
            return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
        except NotInLookup:
            pass

    def warehouse_table(t: str) -> Table:
        if t == TIMELINE:
            return timeline_events(ws.engine.table, _sources(ws))
        return ws.engine.table(t)

    return list(build(warehouse_table, values).to_pyarrow().to_pylist())


def _sources(ws: Workspace) -> list[TimelineSource]:
    """The registered timeline sources whose table has been imported."""
    return [s for s in timeline_sources() if ws.warehouse.head_version(s.table) is not None]


def timeline_events(table: Callable[[str], Table], sources: list[TimelineSource]) -> Table:
    """Every source's events, all customers, with the source's name (``source``); needs at
    least one source."""
    parts = [src.project(table(src.table)).mutate(source=ibis.literal(src.name))
             for src in sources]
    union = ibis.union(*parts) if len(parts) > 1 else parts[0]
    return union.filter(union.time.notnull())


def _key(ws: Workspace) -> tuple[str, dict[str, int], list[TimelineSource]] | None:
    sources = _sources(ws)
    # identity resolution's merges change what the source tables show (kehu.identity.follow)
    names = sorted({*TABLES, *(s.table for s in sources), *IDENTITY_TABLES})
    versions = {t: v for t in names if (v := ws.warehouse.head_version(t)) is not None}
    if "customers" not in versions:
        return None
    raw = repr((LOOKUP_FORMAT, sorted(versions.items()),
                sorted((s.name, s.table) for s in sources)))
    return hashlib.sha256(raw.encode()).hexdigest()[:24], versions, sources


def lookup(ws: Workspace, build: bool = True) -> Lookup | None:
    """The lookup of the workspace's current data, built now when missing (unless
    ``build`` is false); None before the first import."""
    key = _key(ws)
    if key is None:
        return None
    digest, versions, sources = key
    path = ws.root / LOOKUP_DIR / f"{digest}.duckdb"
    tables = frozenset({t for t in versions if t in TABLES} | ({TIMELINE} if sources else set()))
    found = Lookup(path, tables, tuple(sources))
    if path.exists():
        return found
    if not build:
        return None
    with _BUILD_LOCK:
        if not path.exists():
            _build(ws, found)
    return found


def prepare(ws: Workspace) -> float:
    """Build the current lookup ahead of the first visitor; seconds taken (0 if it was
    there or nothing was imported)."""
    import time

    t0 = time.perf_counter()
    key = _key(ws)
    if key is None or (ws.root / LOOKUP_DIR / f"{key[0]}.duckdb").exists():
        return 0.0
    lookup(ws)
    return round(time.perf_counter() - t0, 3)


def named_offers(offers: Table, products: Table) -> Table:
    """The offers with ``product_name`` and ``reason_name`` (the product bought that makes
    the offer likely) from the products table."""
    names = products.select(named_id=products.product_id, product_name=products["name"])
    o = offers.left_join(names, offers.product_id == names.named_id).drop("named_id")
    reasons = products.select(named_id=products.product_id, reason_name=products["name"])
    return o.left_join(reasons, o.reason == reasons.named_id).drop("named_id")


def _build(ws: Workspace, target: Lookup) -> None:
    path = target.path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.unlink(missing_ok=True)
    eng = ws.engine
    raw = eng.con.con
    alias = f"lk_{hashlib.sha1(str(tmp).encode()).hexdigest()[:8]}"
    raw.execute(f"ATTACH '{tmp}' AS {alias}")  # internal path and name, nothing from a user
    try:
        if target.sources:
            events = timeline_events(eng.table, list(target.sources))
            sql = ibis.to_sql(events, dialect="duckdb")
            raw.execute(f'CREATE TABLE {alias}."{TIMELINE}" AS SELECT * FROM ({sql}) '
                        'ORDER BY customer_id, time DESC, source, ref')
        for name in sorted(target.tables - {TIMELINE}):
            t = eng.table(name)  # as analyses see it (following identity merges)
            cols = t.columns
            src = f"({ibis.to_sql(t, dialect='duckdb')})"
            if name == SCORES:
                order = ", ".join(f'"{c}" DESC' for c in ("as_of", "run_id") if c in cols)
                select = (f'SELECT * FROM {src} QUALIFY row_number() OVER '
                          f'(PARTITION BY customer_id ORDER BY {order}) = 1 '
                          "ORDER BY customer_id")
            elif name == OFFERS and "products" in target.tables:
                # named once here rather than by two joins on every page (the page's
                # costliest query before): the offered product's and the reason's names
                named = named_offers(t, eng.table("products"))
                select = (f"SELECT * FROM ({ibis.to_sql(named, dialect='duckdb')}) "
                          "ORDER BY customer_id, rank")
            elif "customer_id" in cols:
                select = f'SELECT * FROM {src} ORDER BY customer_id'
            else:
                select = f'SELECT * FROM {src}'
            raw.execute(f'CREATE TABLE {alias}."{name}" AS {select}')
    finally:
        raw.execute(f"DETACH {alias}")
    tmp.replace(path)
    old = sorted((p for p in path.parent.glob("*.duckdb") if p != path),
                 key=lambda p: p.stat().st_mtime)
    for stale in old[:max(0, len(old) - (KEEP_FILES - 1))]:
        stale.unlink(missing_ok=True)
