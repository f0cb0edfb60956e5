"""The cube's monthly aggregate: transaction measures pre-summed by month, channel, product
category and every customer dimension, written by the analysis run so that most cube queries
scan tens of thousands of rows instead of every transaction line.

Sums (revenue, margin, lines) add up over any cut. Distinct counts do not, so they are stored
as *first-occurrence flags* summed per cell: ``b_m`` counts the customers for whom this cell is
their first one in the month, ``b_q`` in the quarter, ``b_y`` in the year, ``b_all`` ever, and
``b_mc`` in the month within one channel. "Buyers by year and region" is then the sum of
``b_y`` over the cells of that year and region, exactly the distinct count, because every
customer has one region. All flags come from one window over each customer's cells ordered by
(month, channel, category); buyers by channel over quarters, years or all time would need a
second sort, which costs more at run time than it saves, so those are counted on the lines.
An order is counted in the cell of its first line.

The cube answers from the aggregate only when that is exact (see :func:`can_answer`): the
aggregate was built from the current versions of the tables it reads and the latest run's
scores, the query uses no product level below category, distinct counts are not cut by
category, and date ranges and time filters select whole periods of the level the distinct
counts need. Everything else runs on the transaction lines.
"""

from __future__ import annotations

import json
from calendar import monthrange
from datetime import date
from typing import TYPE_CHECKING, Any

import ibis
from ibis.expr.types import Table

if TYPE_CHECKING:
    from kehu.analytics.cube import CubeQuery
    from kehu.warehouse import Engine, Warehouse

AGG_TABLE = "cube_monthly"
#: the same sums over fewer customer dimensions (no city, manager, gender, customer type):
#: far fewer rows, and what most questions cut by
COARSE_TABLE = "cube_monthly_coarse"
COARSE_CUSTOMER_DIMS = ("region", "tier", "rfm_class", "lifecycle_stage")
#: tables whose versions the aggregate records; a change in any makes it stale
SOURCES = ("transactions", "customers", "products")
CUSTOMER_DIMS = ("region", "city", "account_manager_id", "gender", "customer_type",
                 "tier", "rfm_class", "lifecycle_stage")
TIME_LEVELS = ("month", "quarter", "year")
#: time level -> buyer flag within any channel, and within the cell's channel
FLAGS = {"month": "b_m", "quarter": "b_q", "year": "b_y", "all": "b_all"}
CHANNEL_FLAGS = {"month": "b_mc"}
DISTINCT_MEASURES = frozenset({"buyers", "orders", "avg_order_value"})
AGG_DIMS = frozenset({*TIME_LEVELS, "channel", "category", *CUSTOMER_DIMS})
COARSE_DIMS = frozenset({*TIME_LEVELS, "channel", "category", *COARSE_CUSTOMER_DIMS})
SUMS = ("revenue", "margin", "transactions", "orders", *FLAGS.values(),
        *CHANNEL_FLAGS.values())


def build(engine: Engine, run_id: str | None) -> Table:
    """The aggregate as an Ibis expression over the warehouse (customer dimensions from the
    customers table and, when ``run_id`` is given, that run's scores)."""
    from kehu.analytics.cube import _customers

    t = engine.table("transactions")
    lines = t.select(
        "customer_id", "channel", "product_id",
        month=t.transaction_time.strftime("%Y-%m"),
        amount=t.amount, margin_line=t.amount - t.cost.fill_null(0),
        order_id=t.order_id, order_key=t.order_id.coalesce(t.transaction_id),
        ts=t.transaction_time, tid=t.transaction_id)
    p = engine.table("products").select("product_id", "category")
    lines = lines.left_join(p, "product_id").drop("product_id", "product_id_right")
    # the first line of every order carries the order (a line without an order id is one)
    multi = lines.filter(lines.order_id.notnull())
    w_order = ibis.window(group_by=multi.order_key, order_by=[multi.ts, multi.tid])
    lines = multi.mutate(
        first_of_order=(ibis.row_number().over(w_order) == 0).cast("int64")).union(
        lines.filter(lines.order_id.isnull()).mutate(first_of_order=ibis.literal(1, "int64")))
    key = ["customer_id", "month", "channel", "category"]
    cells = lines.group_by(key).aggregate(
        revenue=lines.amount.sum(), margin=lines.margin_line.sum(), transactions=lines.count(),
        orders=lines.first_of_order.sum())
    cells = cells.mutate(quarter=cells.month[:4].concat(
        "-Q", ((cells.month[5:7].cast("int64") + 2) // 3).cast("string")),
        year=cells.month[:4])
    cells = _flags(cells)
    cust = _customers(engine, with_scores=run_id is not None).select("customer_id",
                                                                     *CUSTOMER_DIMS)
    cells = cells.left_join(cust, "customer_id").drop("customer_id_right")
    return _regroup(cells, CUSTOMER_DIMS)


def _regroup(t: Table, customer_dims: tuple[str, ...]) -> Table:
    dims = ["year", "quarter", "month", "channel", "category", *customer_dims]
    return t.group_by(dims).aggregate(**{c: t[c].sum() for c in SUMS})


def _flags(cells: Table) -> Table:
    """First-occurrence flags per customer at each level, and per month and channel: one
    window, the cells of a customer ordered by month, channel, category (so the cells of one
    month, and of one month and channel, are contiguous)."""
    def first(col: Any, prev: Any) -> Any:
        return (prev.isnull() | (col != prev)).cast("int64")

    w = ibis.window(group_by=cells.customer_id,
                    order_by=[cells.month, cells.channel, cells.category])
    pm, pc = cells.month.lag().over(w), cells.channel.lag().over(w)
    new_month = first(cells.month, pm)
    same_channel = (pc.isnull() & cells.channel.isnull()) | (pc == cells.channel)
    return cells.mutate(
        b_m=new_month, b_q=first(cells.quarter, cells.quarter.lag().over(w)),
        b_y=first(cells.year, cells.year.lag().over(w)), b_all=pm.isnull().cast("int64"),
        b_mc=ibis.greatest(new_month, (~same_channel.fill_null(False)).cast("int64")))


def source_versions(wh: Warehouse) -> dict[str, int | None]:
    return {name: wh.version(name) for name in SOURCES}


def write(engine: Engine, run_id: str) -> dict[str, int]:
    """Build the aggregates for ``run_id`` and replace the stored ones; returns their rows."""
    wh = engine.warehouse
    meta = {"kehu.run_id": run_id, "kehu.sources": source_versions(wh)}
    fine = engine.materialize(build(engine, run_id))
    coarse = engine.materialize(_regroup(fine, COARSE_CUSTOMER_DIMS))
    rows = engine.execute_arrow(ibis.memtable({"x": [0]}).select(
        fine=fine.count().as_scalar(), coarse=coarse.count().as_scalar())).to_pylist()[0]
    # the coarse table is written last: a reader that finds it current finds both current
    engine.write(AGG_TABLE, fine, mode="overwrite", metadata=meta)
    engine.write(COARSE_TABLE, coarse, mode="overwrite", metadata=meta)
    return {AGG_TABLE: int(rows["fine"]), COARSE_TABLE: int(rows["coarse"])}


def is_current(engine: Engine, table: str = AGG_TABLE) -> bool:
    """Whether the stored aggregate was built from the current tables and the latest run."""
    from kehu.analytics.run import RUNS_TABLE

    wh = engine.warehouse
    if not wh.exists(table):
        return False
    meta = _commit_metadata(wh, table)
    if meta is None:
        return False
    runs = engine.table(RUNS_TABLE) if wh.exists(RUNS_TABLE) else None
    latest = runs.run_id.max().to_pyarrow().as_py() if runs is not None else None
    return bool(meta.get("run_id") == latest and meta.get("sources") == source_versions(wh))


def _commit_metadata(wh: Warehouse, table: str) -> dict[str, Any] | None:
    hist = wh.history(table, 1)
    if not hist:
        return None
    h = hist[0]
    raw = h.get("kehu.sources")
    if raw is None:
        return None
    try:
        sources = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        return None
    return {"run_id": h.get("kehu.run_id"), "sources": sources}


def flag_level(q: CubeQuery) -> str:
    """The time level whose first-occurrence flags a distinct count needs: the finest time
    dimension in ``by`` (``all`` without one)."""
    for level in TIME_LEVELS:
        if level in q.by:
            return level
    return "all"


def can_answer(q: CubeQuery) -> bool:
    """Whether the aggregate gives exactly what the transaction lines would (freshness is
    checked separately by :func:`is_current`)."""
    dims = set(q.by) | {f.dimension for f in q.where}
    if not dims <= AGG_DIMS:
        return False
    distinct = bool(set(q.measures) & DISTINCT_MEASURES)
    if distinct and "category" in dims:
        return False   # an order or a buyer spans categories
    if q.start is not None and not _starts_period(q.start, "month"):
        return False
    if q.end is not None and not _ends_period(q.end, "month"):
        return False
    if "buyers" not in q.measures:
        return True   # orders sit in the cell of their first line: any cut but category
    level = flag_level(q)
    order = (*TIME_LEVELS, "all")
    # a time filter must select whole periods of the flag level (same level or coarser)
    for f in q.where:
        if f.dimension in TIME_LEVELS and order.index(f.dimension) < order.index(level):
            return False
    if _per_channel(q) and level not in CHANNEL_FLAGS:
        return False
    if level == "all":
        return q.start is None and q.end is None
    return ((q.start is None or _starts_period(q.start, level))
            and (q.end is None or _ends_period(q.end, level)))


def _per_channel(q: CubeQuery) -> bool:
    return "channel" in q.by or any(f.dimension == "channel" for f in q.where)


def _starts_period(d: date, level: str) -> bool:
    """Whether ``d`` is the first day of a month / quarter / year."""
    months = {"month": 1, "quarter": 3, "year": 12}[level]
    return d.day == 1 and (d.month - 1) % months == 0


def _ends_period(d: date, level: str) -> bool:
    months = {"month": 1, "quarter": 3, "year": 12}[level]
    return d.day == monthrange(d.year, d.month)[1] and d.month % months == 0


def table_for(q: CubeQuery) -> str:
    """The smallest aggregate that has every dimension of ``q``."""
    dims = set(q.by) | {f.dimension for f in q.where}
    return COARSE_TABLE if dims <= COARSE_DIMS else AGG_TABLE


def answer(engine: Engine, q: CubeQuery) -> Table:
    """The query's measures from the aggregate (call only when :func:`can_answer` and
    :func:`is_current` for :func:`table_for` hold)."""
    a = engine.table(table_for(q))
    if q.start is not None:
        a = a.filter(a.month >= q.start.strftime("%Y-%m"))
    if q.end is not None:
        a = a.filter(a.month <= q.end.strftime("%Y-%m"))
    for f in q.where:
        a = a.filter(a[f.dimension].cast("string").isin(f.values))
    level = flag_level(q)
    flag = CHANNEL_FLAGS.get(level, "") if _per_channel(q) else FLAGS[level]
    aggs: dict[str, Any] = {}
    for m in q.measures:
        if m == "revenue":
            aggs[m] = a.revenue.sum()
        elif m == "margin":
            aggs[m] = a.margin.sum()
        elif m == "orders":
            aggs[m] = a.orders.sum().coalesce(0)
        elif m == "transactions":
            aggs[m] = a.transactions.sum().coalesce(0)
        elif m == "buyers":
            aggs[m] = a[flag].sum().coalesce(0)
        elif m == "avg_order_value":
            aggs[m] = a.revenue.sum() / a.orders.sum()
    if q.by:
        out = a.group_by([a[d].cast("string").name(d) for d in q.by]).aggregate(**aggs)
        return out.order_by(q.by)
    return a.aggregate(**aggs)
