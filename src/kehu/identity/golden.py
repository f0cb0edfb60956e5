"""Golden records: one row per kehu customer, each field chosen among the customer's source
records by its survivorship rule (:class:`kehu.identity.spec.FieldRule`). Written once as an
Ibis expression, so it runs on DuckDB and on Spark.

>>> import ibis, pyarrow as pa
>>> from datetime import datetime
>>> from kehu.identity.spec import IdentitySpec
>>> recs = ibis.memtable(pa.table({
...     "customer_id": ["C1", "W1"], "kehu_key": ["K1", "K1"], "source_system": ["crm", "web"],
...     "updated_at": [datetime(2024, 1, 1), datetime(2025, 1, 1)],
...     "name": ["王小明", "Xiaoming Wang"], "phone": ["13812345678", None],
...     "email": [None, "xm@example.com"]}))
>>> spec = IdentitySpec.parse({"survivorship": {"source_priority": ["crm"],
...     "fields": {"name": {"rule": "source_priority"}}}})
>>> row = golden_records(recs, spec).to_pyarrow().to_pylist()[0]
>>> row["name"], row["phone"], row["email"], row["records"]
('王小明', '13812345678', 'xm@example.com', 2)
"""

from __future__ import annotations

from typing import Any

import ibis
from ibis.expr.types import Table

from kehu.identity.spec import GOLDEN_FIELDS, IdentitySpec

#: fields that count towards a record's completeness
IDENTITY_FIELDS = ("name", "gender", "birth_date", "phone", "email", "id_number", "address",
                   "city", "region")
DATE_FIELDS = ("signup_date",)


def _rank(t: Table, sources: list[str]) -> Any:
    """0 for the first source of ``sources``, 1 for the next …; unlisted sources last."""
    if not sources:
        return ibis.literal(0)
    cases = [(t.source_system == ibis.literal(s), i) for i, s in enumerate(sources)]
    return ibis.cases(*cases, else_=len(sources))


def golden_records(records: Table, spec: IdentitySpec) -> Table:
    """One row per ``kehu_key`` of ``records`` (``customer_id``, ``kehu_key``,
    ``source_system``, ``updated_at`` and any golden fields), with ``records`` (how many
    source records) and ``sources`` (their systems)."""
    t = records
    fields = [f for f in GOLDEN_FIELDS if f in t.columns]
    filled = [t[f].notnull().cast("int32") for f in IDENTITY_FIELDS if f in t.columns]
    completeness = sum(filled[1:], filled[0]) if filled else ibis.literal(0)
    updated = t.updated_at if "updated_at" in t.columns else ibis.null("timestamp")
    t = t.mutate(_complete=completeness, _updated=updated)
    extra: dict[str, Any] = {}
    for f in fields:
        kind = spec.rule_for(f).rule
        if kind == "source_priority":
            extra[f"_rank_{f}"] = _rank(t, spec.priority_for(f))
        elif kind == "most_frequent":
            extra[f"_freq_{f}"] = t.count().over(group_by=[t.kehu_key, t[f]])
    global_rank = _rank(t, spec.survivorship.source_priority)
    t = t.mutate(_rank=global_rank, **extra)
    newest = [ibis.desc(t._updated), t._rank, t.customer_id]
    aggs: dict[str, Any] = {}
    for f in fields:
        rule = spec.rule_for(f).rule
        if f in DATE_FIELDS and f not in spec.survivorship.fields:
            order = [t[f], t.customer_id]                   # a relationship began earliest
        elif rule == "most_recent":
            order = newest
        elif rule == "most_complete":
            order = [ibis.desc(t._complete), *newest]
        elif rule == "source_priority":
            order = [t[f"_rank_{f}"], *newest]
        else:   # most_frequent
            order = [ibis.desc(t[f"_freq_{f}"]), *newest]
        aggs[f] = t[f].first(order_by=order, include_null=False)
    aggs["records"] = t.count()
    aggs["sources"] = t.source_system.collect(distinct=True)
    return t.group_by("kehu_key").aggregate(**aggs).order_by("kehu_key")
