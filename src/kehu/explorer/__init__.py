"""The OLAP explorer's service (issue 6): a view of the cube (measures, rows and columns,
filters, dates) that round-trips through a URL, drill down and back up the hierarchies, the
pivot table with right totals, its chart and exports, and the cube's schema in words. The
numbers are :mod:`kehu.analytics.cube`'s, the same service ``kehu cube`` uses."""

from __future__ import annotations

from kehu.explorer.labels import CubeSchema, cube_schema, dimension_label, measure_label
from kehu.explorer.pivot import Answer, Pivot, answer, chart, grid, pivot, to_csv, to_xlsx
from kehu.explorer.view import Crumb, ExplorerView

__all__ = ["Answer", "Crumb", "CubeSchema", "ExplorerView", "Pivot", "answer", "chart",
           "cube_schema", "dimension_label", "grid", "measure_label", "pivot", "to_csv",
           "to_xlsx"]
