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

>>> import ibis, pyarrow as pa
>>> tx = ibis.memtable(pa.table({"customer_id": ["C1", "W1", "C9"], "amount": [10, 5, 7]}))
>>> mapping = ibis.memtable(pa.table({"customer_id": ["C1", "W1"], "kehu_key": ["K1", "K1"]}))
>>> out = with_kehu_key(tx, mapping).order_by("source_customer_id").to_pyarrow()
>>> list(zip(out["source_customer_id"].to_pylist(), out["customer_id"].to_pylist()))
[('C1', 'K1'), ('C9', 'C9'), ('W1', 'K1')]
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import ibis
import pyarrow as pa
import pyarrow.compute as pc
from ibis.expr.types import Table

from kehu.identity.normalise import emails, id_numbers, phones

if TYPE_CHECKING:
    from kehu.warehouse import Engine

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


def read_table(engine: Engine, name: str, column: str | None = None,
               values: list[str] | None = None) -> pa.Table:
    """A warehouse table (rows whose ``column`` is in ``values``), with the string_view
    columns that Delta merges write read back as plain strings (pyarrow has no kernels to
    filter them)."""
    t = engine.warehouse.read(name)
    t = t.cast(pa.schema([pa.field(f.name, pa.string()) if pa.types.is_string_view(f.type)
                          else f for f in t.schema]))
    if column is not None and values is not None:
        t = t.filter(pc.is_in(t[column], pa.array(values, pa.string())))
    return t


def read_map(engine: Engine, customer_ids: list[str] | None = None,
             keys: list[str] | None = None) -> pa.Table:
    """The current keys (all, or of some customers / some keys)."""
    if not engine.warehouse.exists(MAP_TABLE):
        return empty_map()
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
