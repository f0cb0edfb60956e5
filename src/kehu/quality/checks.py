"""Data-quality checks, each an Ibis expression over a warehouse table (engine-agnostic)."""

from __future__ import annotations

from datetime import date
from typing import Any

import ibis
from ibis.expr.types import Table

from kehu.model import ENTITIES, Entity
from kehu.model.types import ATTR_PREFIX, LINEAGE_COLUMNS, ColumnType

NUMERIC = (ColumnType.INT, ColumnType.FLOAT)


def completeness(t: Table, columns: list[str]) -> dict[str, float]:
    """Share of non-null values per column (1.0 for an empty table)."""
    if not columns:
        return {}
    row = t.aggregate(_n=t.count(), **{c: t[c].count() for c in columns}).to_pyarrow() \
        .to_pylist()[0]
    n = row.pop("_n") or 0
    return {c: (row[c] / n if n else 1.0) for c in columns}


def invalid_values(t: Table, ent: Entity, now: Any) -> dict[str, int]:
    """Values breaking the model's column rules (choices, bounds, future dates)."""
    exprs: dict[str, Any] = {}
    for col in ent.columns:
        c = t[col.name]
        conds = []
        if col.choices:
            conds.append(c.notnull() & ~c.isin(sorted(set(col.choices.values()))))
        if col.type in NUMERIC and col.min_value is not None:
            conds.append(c < col.min_value)
        if col.type in NUMERIC and col.max_value is not None:
            conds.append(c > col.max_value)
        if col.not_future and col.type in (ColumnType.DATE, ColumnType.TIMESTAMP):
            conds.append(c.cast("timestamp") > ibis.literal(now))
        if conds:
            cond = conds[0]
            for x in conds[1:]:
                cond = cond | x
            exprs[col.name] = cond.fill_null(False).cast("int64").sum()
    if not exprs:
        return {}
    row = t.aggregate(**exprs).to_pyarrow().to_pylist()[0]
    return {k: int(v or 0) for k, v in row.items() if v}


def exact_duplicates(t: Table, ent: Entity) -> int:
    """Rows that repeat another row on every business column (key and lineage ignored)."""
    cols = [c for c in t.columns if c not in ent.key and c not in LINEAGE_COLUMNS]
    if not cols:
        return 0
    g = t.group_by(cols).aggregate(_n=t.count())
    extra = g.filter(g._n > 1).aggregate(x=(g._n - 1).sum()).to_pyarrow().to_pylist()[0]["x"]
    return int(extra or 0)


def orphans(engine: Any, t: Table, ent: Entity) -> dict[str, int]:
    """Facts referring to a record that is not in the referenced entity."""
    out = {}
    for ref in ent.references:
        target = engine.table(ref.entity)
        key = ENTITIES[ref.entity].key[0]
        c = t[ref.column]
        n = t.filter(c.notnull() & ~c.isin(target[key])).count().to_pyarrow().as_py()
        out[f"{ref.column}→{ref.entity}"] = int(n)
    return out


def outliers(t: Table, ent: Entity, k: float = 3.0) -> dict[str, dict[str, Any]]:
    """Values beyond Q3 + k·IQR or below Q1 − k·IQR (Tukey's far-out fences)."""
    cols = [c.name for c in ent.columns if c.type in NUMERIC and c.name not in ent.key]
    cols += [c for c in t.columns if c.startswith(ATTR_PREFIX)
             and t[c].type().is_numeric() and not t[c].type().is_boolean()]
    out: dict[str, dict[str, Any]] = {}
    if not cols:
        return out
    q = t.aggregate(**{f"{c}__q1": t[c].quantile(0.25) for c in cols},
                    **{f"{c}__q3": t[c].quantile(0.75) for c in cols}).to_pyarrow() \
        .to_pylist()[0]
    for c in cols:
        q1, q3 = q[f"{c}__q1"], q[f"{c}__q3"]
        if q1 is None or q3 is None:
            continue
        iqr = q3 - q1
        lo, hi = q1 - k * iqr, q3 + k * iqr
        far = t.filter((t[c] < lo) | (t[c] > hi))
        n = int(far.count().to_pyarrow().as_py())
        if n:
            examples = far.order_by(ibis.desc(far[c].abs())).select(c).limit(3) \
                .to_pyarrow().column(0).to_pylist()
            out[c] = {"count": n, "low_fence": lo, "high_fence": hi, "examples": examples}
    return out


def date_coverage(t: Table, column: str) -> dict[str, Any]:
    """First and last date, rows per month, and months with no rows inside that range."""
    f = t.filter(t[column].notnull())
    month = f[column].cast("timestamp").truncate("M").cast("date")
    per = f.group_by(month=month).aggregate(rows=f.count()).order_by("month").to_pyarrow() \
        .to_pylist()
    if not per:
        return {"column": column, "min": None, "max": None, "months": 0, "empty_months": []}
    first, last = per[0]["month"], per[-1]["month"]
    have = {r["month"] for r in per}
    empty = []
    y, m = first.year, first.month
    while (y, m) <= (last.year, last.month):
        d = date(y, m, 1)
        if d not in have:
            empty.append(d.isoformat()[:7])
        m += 1
        if m == 13:
            y, m = y + 1, 1
    bounds = t.aggregate(lo=t[column].min(), hi=t[column].max()).to_pyarrow().to_pylist()[0]
    return {"column": column, "min": bounds["lo"], "max": bounds["hi"], "months": len(per),
            "empty_months": empty, "rows_per_month": {str(r["month"])[:7]: r["rows"]
                                                      for r in per}}


def _digits(e: Any) -> Any:
    """Digits only, without a leading 86 country code (portable: no regex back-references)."""
    d = e.re_replace(r"[^0-9]", "")
    return ibis.cases(((d.length() == 13) & d.startswith("86"), d.substr(2)), else_=d)


def suspected_duplicate_customers(customers: Table, limit: int = 200) -> dict[str, Any]:
    """Groups of customers sharing a normalised phone, e-mail, ID number, or name + birth date.

    Phones lose +86, spaces and dashes; e-mails and ID numbers are compared case-insensitively.
    """
    rules = {
        "phone": _digits(customers.phone.cast("string")),
        "email": customers.email.lower().strip(),
        "id_number": customers.id_number.upper().strip(),
        "name_birth_date": customers.name.strip().concat("|",
                                                         customers.birth_date.cast("string")),
    }
    groups: list[dict[str, Any]] = []
    total = 0
    involved: set[str] = set()
    for rule, expr in rules.items():
        t = customers.select(customer_id=customers.customer_id, k=expr)
        t = t.filter(t.k.notnull() & (t.k != ""))
        g = t.group_by("k").aggregate(ids=t.customer_id.collect(), n=t.count())
        g = g.filter(g.n > 1)
        rows = g.order_by(ibis.desc("n")).to_pyarrow().to_pylist()
        total += len(rows)
        for r in rows:
            involved.update(r["ids"])
        groups.extend({"rule": rule, "key": r["k"], "customer_ids": sorted(r["ids"])}
                      for r in rows[: max(0, limit - len(groups))])
    return {"groups": total, "customers": len(involved), "examples": groups}
