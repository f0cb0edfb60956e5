"""The warehouse: Delta Lake tables of everything that arrives in bulk and everything computed.

:class:`Warehouse` owns storage (Delta commits: append, atomic upsert, history);
:class:`Engine` exposes the tables as Ibis tables executed by DuckDB in-process.
"""

from __future__ import annotations

from kehu.warehouse.delta import MergeResult, Warehouse
from kehu.warehouse.engine import Engine

__all__ = ["Engine", "MergeResult", "Warehouse"]
