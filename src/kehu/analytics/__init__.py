"""Analytics over the warehouse, written once as Ibis expressions (``ibis.Table -> ibis.Table``)
so DuckDB runs them by default and Spark can run the same expressions.
"""

from __future__ import annotations

from kehu.analytics.summary import customer_summary

__all__ = ["customer_summary"]
