"""Identity resolution in the warehouse: the source records it reads, the tables it writes,
and the function that makes transactions, interactions and every other fact follow the
merged customer.

Tables (Delta, history kept):

- ``identity_map``: ``customer_id`` (the id in its source system) → ``kehu_key``, with the
  ``source_system``, the run that wrote it and the journal entry that last changed it;
- ``customer_golden``: one row per ``kehu_key`` chosen by the survivorship rules;
- ``identity_records``: the source records as resolved (cleaned values, for golden records
  and the review queue);
- ``identity_links``: scored pairs at or above the review threshold of the last run.

``identity_records`` and ``identity_map`` are written sorted by ``customer_id`` in small
Parquet row groups, and every write of the map records its counts (records, customers,
customers with several records) in the commit: the review queue looks up a page of records
by reading only the row groups that hold them (:func:`read_rows`), and the status reads the
counts (:func:`map_counts`), so neither grows with the number of records.

>>> import ibis, pyarrow as pa
>>> tx = ibis.memtable(pa.table({"customer_id": ["C1", "W1", "C9"], "amount": [10, 5, 7]}))
>>> mapping = ibis.memtable(pa.table({"customer_id": ["C1", "W1"], "kehu_key": ["K1", "K1"]}))
>>> out = with_kehu_key(tx, mapping).order_by("source_customer_id").to_pyarrow()
>>> list(zip(out["source_customer_id"].to_pylist(), out["customer_id"].to_pylist()))
[('C1', 'K1'), ('C9', 'C9'), ('W1', 'K1')]
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import ibis
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from ibis.expr.types import Table

from kehu.identity.normalise import emails, id_numbers, phones

if TYPE_CHECKING:
    from kehu.warehouse import Engine
    from kehu.warehouse.delta import Warehouse

MAP_TABLE = "identity_map"
GOLDEN_TABLE = "customer_golden"
RECORDS_TABLE = "identity_records"
LINKS_TABLE = "identity_links"
#: customer columns identity resolution reads (those the table has)
SOURCE_COLUMNS = ("customer_id", "source_system", "name", "gender", "birth_date", "phone",
                  "email", "id_number", "address", "city", "region", "customer_type",
                  "account_manager_id", "signup_date", "signup_channel", "industry")
MAP_SCHEMA = pa.schema([("customer_id", pa.string()), ("source_system", pa.string()),
                        ("kehu_key", pa.string()), ("run_id", pa.int64()),
                        ("journal_id", pa.int64())])
#: rows per Parquet row group of ``identity_records`` and ``identity_map`` (written sorted by
#: ``customer_id``): a lookup of one record reads one group of this many rows
ROW_GROUP = 1024
#: the commit metadata of the map's counts (see :func:`map_counts`)
COUNTS = {"records": "kehu.records", "customers": "kehu.customers",
          "merged_customers": "kehu.merged_customers"}


def with_kehu_key(table: Table, mapping: Table, column: str = "customer_id") -> Table:
    """``table`` with ``column`` replaced by the kehu customer key where the mapping has
    one (ids identity resolution has not seen keep their value) and the original id kept as
    ``source_customer_id``. Apply it to transactions, interactions, tickets … before
    analysing them, so a customer entered by two systems is one customer."""
    m = mapping.select(_src=mapping.customer_id, _key=mapping.kehu_key)
    joined = table.left_join(m, table[column] == m._src)
    cols = {c: joined[c] for c in table.columns if c != column}
    return joined.select(source_customer_id=joined[column],
                         **{column: joined._key.coalesce(joined[column])}, **cols)


def keyed(engine: Engine, name: str, column: str = "customer_id") -> Table:
    """The warehouse table ``name`` with its customer ids following the merged keys
    (unchanged when identity resolution has not run)."""
    t = engine.table(name, follow_identity=False)
    if not engine.warehouse.exists(MAP_TABLE):
        return t.mutate(source_customer_id=t[column]).relocate("source_customer_id")
    return with_kehu_key(t, engine.table(MAP_TABLE), column)


def source_records(engine: Engine) -> pa.Table:
    """The customers of the warehouse as identity records: their columns, ``record_id``
    (= ``customer_id``) and ``updated_at`` (when the import that wrote the row finished)."""
    t = engine.table("customers", follow_identity=False)
    cols = [c for c in SOURCE_COLUMNS if c in t.columns]
    sel: dict[str, Any] = {c: t[c] for c in cols}
    if engine.warehouse.exists("_imports") and "_import_id" in t.columns:
        imp = engine.table("_imports").select(_iid=ibis._.import_id,
                                              _done=ibis._.finished_at)
        j = t.left_join(imp, t._import_id == imp._iid)
        sel = {c: j[c] for c in cols}
        sel["updated_at"] = j._done.cast("timestamp")
    else:
        sel["updated_at"] = ibis.null("timestamp")
        j = t
    out = engine.execute_arrow(j.select(**sel))
    return out.append_column("record_id", out.column("customer_id"))


def clean_records(raw: pa.Table, norm: pa.Table) -> pa.Table:
    """The records as stored for golden records and review: raw fields, with phone, e-mail
    and ID number normalised; plus the matching columns the reviewer sees."""
    cols: dict[str, Any] = {"customer_id": raw.column("customer_id").cast(pa.string()),
                            "source_system": norm.column("source_system"),
                            "updated_at": raw.column("updated_at").cast(pa.timestamp("us"))}
    for c in ("name", "gender", "birth_date", "address", "city", "region", "customer_type",
              "account_manager_id", "signup_date", "signup_channel", "industry"):
        if c in raw.column_names:
            cols[c] = raw.column(c)
    for c, fn in (("phone", phones), ("email", emails), ("id_number", id_numbers)):
        if c in raw.column_names:
            cols[c] = fn(raw.column(c).combine_chunks())
    cols["name_pinyin"] = norm.column("name_pinyin")
    return pa.table(cols)


def empty_map() -> pa.Table:
    return MAP_SCHEMA.empty_table()


def _plain_schema(schema: pa.Schema) -> pa.Schema:
    return pa.schema([pa.field(f.name, pa.string()) if pa.types.is_string_view(f.type)
                      else pa.field(f.name, pa.binary()) if pa.types.is_binary_view(f.type)
                      else f for f in schema])


def plain(t: pa.Table) -> pa.Table:
    """``t`` with the string_view columns that Delta merges write as plain strings (pyarrow
    has no kernels to filter or take them)."""
    return t.cast(_plain_schema(t.schema))


def read_table(engine: Engine, name: str, column: str | None = None,
               values: list[str] | None = None) -> pa.Table:
    """A warehouse table (rows whose ``column`` is in ``values``), string_view columns read
    back as plain strings."""
    t = plain(engine.warehouse.read(name))
    if column is not None and values is not None:
        t = t.filter(pc.is_in(t[column], pa.array(values, pa.string())))
    return t


# -- lookups by customer id --------------------------------------------------------------------
#: per Parquet file and column: its metadata and its row groups' min / max (files of a Delta
#: table never change, so what was read of one stays true)
_GROUPS: dict[tuple[str, str], tuple[pq.FileMetaData, _Ranges]] = {}
#: per table folder: (head version, its files or None, its schema with plain strings)
_FILES: dict[str, tuple[int, list[str] | None, pa.Schema]] = {}
_CACHE_LOCK = threading.Lock()
#: files whose row groups are kept (a table version of a few million records has one or two)
_CACHE_FILES = 32


def _files(wh: Warehouse, name: str) -> tuple[list[str] | None, pa.Schema]:
    """The Parquet files of the table's current version (None when a reader must go through
    Delta: deletion vectors or column mapping, which kehu never writes) and its schema."""
    version = wh.head_version(name)
    key = str(wh.path(name))
    hit = _FILES.get(key)
    if hit is not None and version is not None and hit[0] == version:
        return hit[1], hit[2]
    dt = wh.delta(name)
    features = set(dt.protocol().reader_features or [])
    files = None if features & {"deletionVectors", "columnMapping"} else list(dt.file_uris())
    schema = _plain_schema(pa.schema(dt.schema().to_arrow()))
    with _CACHE_LOCK:
        _FILES[key] = (dt.version(), files, schema)
    return files, schema


class _Ranges:
    """The min and max of one column in each row group of a file, to find the groups that
    may hold some values: by binary search when the ranges do not overlap (a sorted column
    written in groups, in whatever order the groups were written), else group by group.

    >>> r = _Ranges(["f", "a", "m"], ["k", "e", "z"])      # groups written out of order
    >>> r.disjoint, r.groups(["b", "g", "h", "zz"])
    (True, [0, 1])
    >>> _Ranges(["a", "c", None], ["z", "d", None]).groups(["e"])   # overlap, no stats
    [0, 2]
    """

    def __init__(self, lo: list[Any], hi: list[Any]) -> None:
        self.lo, self.hi = lo, hi
        known = None not in lo and None not in hi
        self.order = sorted(range(len(lo)), key=lambda i: lo[i]) if known else []
        self.starts = [lo[i] for i in self.order]
        self.disjoint = known and all(hi[self.order[k]] < lo[self.order[k + 1]]
                                      for k in range(len(self.order) - 1))

    def groups(self, values: list[str]) -> list[int]:
        """The groups whose range holds one of ``values`` (sorted)."""
        found: set[int] = set()
        if self.disjoint:
            for v in values:
                k = bisect.bisect_right(self.starts, v) - 1
                if k >= 0 and v <= self.hi[self.order[k]]:
                    found.add(self.order[k])
            return sorted(found)
        for i, (a, b) in enumerate(zip(self.lo, self.hi, strict=True)):
            if a is None or b is None:
                found.add(i)
                continue
            j = bisect.bisect_left(values, a)
            if j < len(values) and values[j] <= b:
                found.add(i)
        return sorted(found)


def _groups(path: str, column: str) -> tuple[pq.FileMetaData, _Ranges]:
    """The file's metadata and its row groups' ranges of ``column`` (None: unknown)."""
    hit = _GROUPS.get((path, column))
    if hit is not None:
        return hit
    md = pq.read_metadata(path)
    leaf = [md.schema.column(j).path for j in range(md.num_columns)].index(column)
    lo: list[Any] = []
    hi: list[Any] = []
    for i in range(md.num_row_groups):
        st = md.row_group(i).column(leaf).statistics
        ok = st is not None and st.has_min_max
        lo.append(st.min if ok else None)
        hi.append(st.max if ok else None)
    out = (md, _Ranges(lo, hi))
    with _CACHE_LOCK:
        if len(_GROUPS) >= _CACHE_FILES:
            _GROUPS.clear()
        _GROUPS[(path, column)] = out
    return out


def _conform(t: pa.Table, schema: pa.Schema) -> pa.Table:
    cols = [t.column(f.name).cast(f.type) if f.name in t.column_names
            else pa.nulls(t.num_rows, f.type) for f in schema]
    return pa.Table.from_arrays(cols, schema=schema)


def read_rows(engine: Engine, name: str, column: str, values: list[str],
              columns: list[str] | None = None) -> pa.Table:
    """The rows of warehouse table ``name`` whose ``column`` is one of ``values``, reading
    only the Parquet row groups whose min / max may hold them — on a table written sorted by
    ``column`` in small groups (:func:`write_records`, :func:`write_map`), a few groups
    whatever the table's size. String columns come back as plain strings."""
    files, schema = _files(engine.warehouse, name)
    if columns is not None:
        schema = pa.schema([schema.field(c) for c in columns])
    wanted = sorted({v for v in values if v is not None})
    if files is None:   # pragma: no cover - tables kehu never writes
        t = read_table(engine, name, column, wanted)
        return t.select(schema.names)
    value_set = pa.array(wanted, pa.string())
    parts = [schema.empty_table()]
    for path in files if wanted else []:
        md, ranges = _groups(path, column)
        groups = ranges.groups(wanted)
        if not groups:
            continue
        pf = pq.ParquetFile(path, metadata=md)
        have = set(pf.schema_arrow.names)
        read = [c for c in {*schema.names, column} if c in have]
        t = plain(pf.read_row_groups(groups, columns=read))
        t = t.filter(pc.is_in(t[column].cast(pa.string()), value_set))
        parts.append(_conform(t, schema))
    return pa.concat_tables(parts)


# -- writing records and keys ----------------------------------------------------------------
def _by_customer(t: pa.Table) -> pa.Table:
    return plain(t).sort_by("customer_id").combine_chunks()


def write_records(wh: Warehouse, records: pa.Table,
                  metadata: Mapping[str, Any] | None = None) -> int:
    """Replace ``identity_records`` (sorted by customer id, in small row groups)."""
    return wh.overwrite(RECORDS_TABLE, _by_customer(records), metadata=metadata,
                        row_group_size=ROW_GROUP)


def counts(mapping: pa.Table) -> dict[str, int]:
    """Records, customers (keys) and customers with several records of a mapping.

    >>> counts(pa.table({"kehu_key": ["K1", "K1", "K2", "K3"]}))
    {'records': 4, 'customers': 3, 'merged_customers': 1}
    """
    if not mapping.num_rows:
        return {"records": 0, "customers": 0, "merged_customers": 0}
    per_key = pc.value_counts(mapping["kehu_key"]).field("counts")
    return {"records": mapping.num_rows, "customers": len(per_key),
            "merged_customers": int(pc.sum(pc.greater(per_key, 1)).as_py() or 0)}


def _with_counts(metadata: Mapping[str, Any] | None, mapping: pa.Table) -> dict[str, Any]:
    return {**(metadata or {}), **{COUNTS[k]: v for k, v in counts(mapping).items()}}


def write_map(wh: Warehouse, mapping: pa.Table,
              metadata: Mapping[str, Any] | None = None) -> int:
    """Replace ``identity_map`` (sorted by customer id, in small row groups, its counts in
    the commit)."""
    m = _by_customer(mapping.select(MAP_SCHEMA.names)).cast(MAP_SCHEMA)
    return wh.overwrite(MAP_TABLE, m, metadata=_with_counts(metadata, m),
                        row_group_size=ROW_GROUP)


def update_map(wh: Warehouse, keys: Mapping[str, str], journal_id: int,
               metadata: Mapping[str, Any] | None = None) -> int:
    """Give the records of ``keys`` (customer id → kehu key) their new keys, changed by
    journal entry ``journal_id``: one commit that keeps the map's order and row groups, and
    fails rather than overwrite a concurrent change of the map."""
    ids = pa.array(list(keys), pa.string())
    new = pa.array(list(keys.values()), pa.string())

    def change(current: pa.Table) -> pa.Table:
        cur = plain(current).select(MAP_SCHEMA.names).cast(MAP_SCHEMA)
        at = pc.index_in(cur["customer_id"], value_set=ids)
        hit = pc.is_valid(at)
        key = pc.if_else(hit, pc.take(new, at), cur["kehu_key"])
        journal = pc.if_else(hit, pa.scalar(journal_id, pa.int64()), cur["journal_id"])
        return cur.set_column(cur.schema.get_field_index("kehu_key"), "kehu_key", key) \
            .set_column(cur.schema.get_field_index("journal_id"), "journal_id", journal) \
            .combine_chunks()

    return wh.rewrite(MAP_TABLE, change, metadata=lambda m: _with_counts(metadata, m),
                      row_group_size=ROW_GROUP)


def map_counts(engine: Engine) -> dict[str, int]:
    """Records, customers and customers with several records now: from the commit that
    wrote the map (no read of the table), else counted."""
    wh = engine.warehouse
    if not wh.exists(MAP_TABLE):
        return counts(empty_map())
    last = wh.history(MAP_TABLE, 1)
    if last:
        got = {k: last[0].get(v) for k, v in COUNTS.items()}
        if all(isinstance(v, (str, int)) and str(v).isdigit() for v in got.values()):
            return {k: int(v) for k, v in got.items()}   # type: ignore[arg-type]
    return counts(read_table(engine, MAP_TABLE).select(["kehu_key"]))


def read_map(engine: Engine, customer_ids: list[str] | None = None,
             keys: list[str] | None = None) -> pa.Table:
    """The current keys (all, or of some customers / some keys). Customers alone are looked
    up by :func:`read_rows`; keys need a read of the whole map."""
    if not engine.warehouse.exists(MAP_TABLE):
        return empty_map()
    if keys is None and customer_ids is not None:
        return read_rows(engine, MAP_TABLE, "customer_id", customer_ids,
                         MAP_SCHEMA.names).cast(MAP_SCHEMA)
    t = read_table(engine, MAP_TABLE).select(MAP_SCHEMA.names).cast(MAP_SCHEMA)
    mask = None
    if customer_ids is not None:
        mask = pc.is_in(t["customer_id"], pa.array(customer_ids, pa.string()))
    if keys is not None:
        k = pc.is_in(t["kehu_key"], pa.array(keys, pa.string()))
        mask = k if mask is None else pc.or_(mask, k)
    return t if mask is None else t.filter(mask)


def members(mapping: pa.Table, keys: list[str]) -> pa.Table:
    return mapping.filter(pc.is_in(mapping["kehu_key"], pa.array(keys, pa.string())))
