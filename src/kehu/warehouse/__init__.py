"""The warehouse: Delta Lake tables of everything that arrives in bulk and everything computed.

:class:`Warehouse` owns storage (Delta commits: append, atomic upsert, history);
:class:`Engine` exposes the tables as Ibis tables, executed by DuckDB in-process
(:class:`DuckDBEngine`, the default) or by Apache Spark (:class:`SparkEngine`, imported on
use: ``from kehu.warehouse.spark import SparkEngine``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kehu.warehouse.delta import MergeResult, Warehouse
from kehu.warehouse.engine import DuckDBEngine, Engine

if TYPE_CHECKING:
    from kehu.settings import EngineSection

__all__ = ["DuckDBEngine", "Engine", "MergeResult", "Warehouse", "open_engine"]


def open_engine(warehouse: Warehouse, settings: EngineSection) -> Engine:
    """The engine the settings name, over ``warehouse`` (Spark starts on first use).

    >>> import tempfile
    >>> from kehu.settings import EngineSection
    >>> open_engine(Warehouse(tempfile.mkdtemp()), EngineSection(name="spark")).name
    'spark'
    """
    if settings.name == "spark":
        from kehu.warehouse.spark import SparkEngine

        return SparkEngine(warehouse, master=settings.spark_master,
                           config=settings.spark_config, read=settings.spark_read)
    return DuckDBEngine(warehouse, threads=settings.threads,
                        memory_limit=settings.memory_limit)
