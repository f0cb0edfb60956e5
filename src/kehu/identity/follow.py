"""Source tables that follow identity resolution's merges, so a customer entered by two
systems is one customer in every analysis, page and campaign.

Each kehu customer key that holds several source records (a merged cluster in
``identity_map``) is shown under one **surviving id**: the smallest ``customer_id`` among its
records. Ids of customers that were not merged are unchanged, so scores, tasks and links of
everyone else keep their ids. Then:

- every fact (transactions, interactions, tickets, contracts, payments, campaign contacts,
  responses, surveys, churn events, leads, referrals) carries the surviving id instead of
  the merged record's id;
- ``customers`` has one row per customer: the survivor's row, with the fields of the golden
  record (``customer_golden``, chosen by the survivorship rules) where the golden record has
  a value.

The surviving id can change when a cluster's membership changes (a record with a smaller id
joins it, or a merge is undone); the stable identity is the kehu key in ``identity_map``.
The engine applies this in :meth:`kehu.warehouse.Engine.table` when ``[identity]
follow_merges`` is on (the default) and identity resolution has run.

>>> import ibis, pyarrow as pa
>>> m = ibis.memtable(pa.table({"customer_id": ["C1", "W7", "C2"],
...                             "kehu_key": ["K1", "K1", "K2"]}))
>>> tx = ibis.memtable(pa.table({"customer_id": ["W7", "C1", "C2", "X"], "amount": [1, 2, 3, 4]}))
>>> out = remap(tx, survivors(m), ["customer_id"]).order_by("amount").to_pyarrow()
>>> out["customer_id"].to_pylist(), out.column_names
(['C1', 'C1', 'C2', 'X'], ['customer_id', 'amount'])
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import ibis
from ibis.expr.types import Table

if TYPE_CHECKING:
    from kehu.warehouse import Engine

MAP_TABLE = "identity_map"
GOLDEN_TABLE = "customer_golden"
#: columns holding a customer's id, per source table (besides ``customer_id``)
CUSTOMER_COLUMNS: dict[str, tuple[str, ...]] = {"referrals": ("referrer_id", "referred_id")}


def survivors(mapping: Table) -> Table:
    """``customer_id`` → ``survivor_id`` (and ``kehu_key``) for the records of merged
    clusters only (keys with more than one record)."""
    m = mapping.select("customer_id", "kehu_key")
    per_key = m.group_by("kehu_key").aggregate(survivor_id=m.customer_id.min(), n=m.count())
    merged = per_key.filter(per_key.n > 1).select("kehu_key", "survivor_id")
    return m.join(merged, "kehu_key").select("customer_id", "survivor_id", "kehu_key")


def remap(table: Table, merged: Table, columns: list[str]) -> Table:
    """``table`` with each of ``columns`` replaced by the surviving id where it names a merged
    record (column order and types unchanged)."""
    out = table
    for i, col in enumerate(columns):
        s = merged.select(**{f"_src{i}": merged.customer_id, f"_surv{i}": merged.survivor_id})
        j = out.left_join(s, out[col] == s[f"_src{i}"])
        out = j.select(**{c: (j[f"_surv{i}"].coalesce(j[c]).cast(out[c].type())
                              if c == col else j[c]) for c in out.columns})
    return out


def one_row_per_customer(customers: Table, merged: Table, golden: Table | None) -> Table:
    """The survivor's row of each merged customer (others unchanged), with the golden
    record's non-null fields over the survivor's own."""
    j = customers.left_join(merged, customers.customer_id == merged.customer_id)
    keep = j.filter(j.survivor_id.isnull() | (j.survivor_id == j.customer_id))
    keep = keep.select(*customers.columns, _key=keep.kehu_key)
    if golden is None:
        return keep.select(*customers.columns)
    fields = [c for c in golden.columns if c in customers.columns and c != "customer_id"]
    g = golden.select(_gkey=golden.kehu_key, **{f"_g_{c}": golden[c] for c in fields})
    k = keep.left_join(g, keep._key == g._gkey)
    cols: dict[str, Any] = {}
    for c in customers.columns:
        if c in fields:
            cols[c] = k[f"_g_{c}"].cast(k[c].type()).coalesce(k[c])
        else:
            cols[c] = k[c]
    return k.select(**cols)


def follow(engine: Engine, name: str, table: Table) -> Table:
    """``table`` (the source table ``name`` as stored) following the merges of identity
    resolution; unchanged when identity resolution has not run or merged nobody."""
    columns = [c for c in ("customer_id", *CUSTOMER_COLUMNS.get(name, ()))
               if c in table.columns]
    if not columns or not _has_merges(engine):
        return table
    # the same expression for the same versions: analytics may build a predicate from one
    # call of engine.table(name) and apply it to another
    wh = engine.warehouse
    key = (name, wh.version(name), wh.version(MAP_TABLE), wh.version(GOLDEN_TABLE))
    cache: dict[tuple[Any, ...], Table] = engine.__dict__.setdefault("_identity_followed", {})
    hit = cache.get(key)
    # (re)bind the tables the expression reads: the engine may have dropped a cached copy
    engine.table(MAP_TABLE, follow_identity=False)
    if name == "customers" and wh.exists(GOLDEN_TABLE):
        engine.table(GOLDEN_TABLE, follow_identity=False)
    if hit is None:
        if len(cache) > 64:   # versions moved on
            cache.clear()
        hit = cache[key] = _follow(engine, name, table, columns)
    return hit


def _follow(engine: Engine, name: str, table: Table, columns: list[str]) -> Table:
    # views: two followed tables joined in one query must not share relations (Ibis would
    # take the join for a self-join)
    merged = survivors(engine.table(MAP_TABLE, follow_identity=False).view())
    if name == "customers":
        golden = (engine.table(GOLDEN_TABLE, follow_identity=False).view()
                  if engine.warehouse.exists(GOLDEN_TABLE) else None)
        return one_row_per_customer(table, merged, golden).view()
    return remap(table, merged, columns).view()


def _has_merges(engine: Engine) -> bool:
    """Whether ``identity_map`` has a key with several records (cached per map version)."""
    wh = engine.warehouse
    version = wh.version(MAP_TABLE)
    if version is None:
        return False
    cache: dict[int, bool] = engine.__dict__.setdefault("_identity_merges", {})
    if version not in cache:
        m = engine.table(MAP_TABLE, follow_identity=False)
        n = m.group_by("kehu_key").aggregate(n=m.count()).filter(ibis._.n > 1).count()
        cache.clear()
        cache[version] = bool(engine.execute_arrow(n).as_py())
    return cache[version]


def surviving_id(engine: Engine, customer_id: str) -> str | None:
    """The id a merged record is shown under (None when ``customer_id`` was not merged into
    another record, or merges are not followed) — e.g. to send a link to a merged record's
    page to its customer's page."""
    if not engine.follow_identity or not _has_merges(engine):
        return None
    m = engine.table(MAP_TABLE, follow_identity=False)
    key = m.filter(m.customer_id == customer_id).select("kehu_key")
    s = survivors(m.view())
    hit = s.filter(s.kehu_key.isin(key.kehu_key)).survivor_id.min()
    found = engine.execute_arrow(hit).as_py()
    return str(found) if found is not None and found != customer_id else None
