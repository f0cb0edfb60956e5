"""Compiled point queries: an Ibis expression turned into DuckDB SQL once, run many times
with bound parameters (the web app's per-customer lookups)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import ibis

from kehu.errors import EngineError


def parametrised_sql(build: Callable[[dict[str, Any]], Any], names: Iterable[str]) -> str:
    """DuckDB SQL of the Ibis expression ``build(values)`` with each of ``names`` as a bound
    parameter (``$name``): compile once, run many times with different values. Compiling an
    Ibis expression costs more than running it on a few rows (a point lookup), so hot paths
    keep the SQL and execute it on the raw connection.

    >>> t = ibis.table({"customer_id": "string", "tier": "string"}, name="idx")
    >>> sql = parametrised_sql(lambda v: t.filter(t.customer_id == v["cid"]), ["cid"])
    >>> "$cid" in sql and "__kehu_param" not in sql
    True
    """
    marks = {k: marker(k) for k in names}
    return bind_markers(str(ibis.to_sql(build(marks), dialect="duckdb")), marks)


def marker(name: str) -> str:
    """The string literal standing for parameter ``name`` until :func:`bind_markers`."""
    return f"__kehu_param_{name}__"


def bind_markers(sql: str, names: Iterable[str]) -> str:
    """Replace each parameter's marker literal in compiled ``sql`` by ``$name``."""
    for k in names:
        quoted = f"'{marker(k)}'"
        if quoted not in sql:
            raise EngineError(f"Parameter '{k}' was not used as a plain value in the query.")
        sql = sql.replace(quoted, f"${k}")
    return sql
