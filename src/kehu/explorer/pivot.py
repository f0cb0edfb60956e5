"""A view of the cube as a pivot table: one dimension on the rows and optionally one on the
columns, cells from :func:`kehu.analytics.cube.cube`, and totals that are the cube's own
answers one level up (so the totals of distinct counts and means are right, not sums of
cells). Also its ECharts option, its grid of labelled values for export, and the API's
capped answer.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kehu.analytics.cube import DIMENSIONS, CubeQuery, cube
from kehu.explorer.labels import (
    ADDITIVE,
    MEASURE_FORMATS,
    TIME_DIMENSIONS,
    dimension_label,
    measure_label,
    natural_order,
    value_label,
)
from kehu.explorer.view import ExplorerView
from kehu.i18n import _

if TYPE_CHECKING:
    from kehu.warehouse import Engine

Key = str | None
Value = float | int | None

#: the most rows and columns a pivot shows (filter or drill down to see the rest)
MAX_ROWS = 200
MAX_COLS = 40
#: the most rows the API returns for one query
API_MAX_ROWS = 10_000


def clean(value: Any) -> Value:
    """A cube value as JSON can carry it (NaN and infinities are None)."""
    if value is None or isinstance(value, bool):
        return None if value is None else int(value)
    if isinstance(value, int):
        return value
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _rows(engine: Engine, q: CubeQuery) -> list[dict[str, Any]]:
    return [{k: (v if k in q.by else clean(v)) for k, v in r.items()}
            for r in cube(engine, q).to_pyarrow().to_pylist()]


@dataclass
class Pivot:
    """Cells by (row key, column key) and measure; the column key is None without columns.
    ``row_count`` / ``col_count`` are the values there were before the caps."""

    measures: list[str]
    rows: str | None
    cols: str | None
    row_keys: list[Key] = field(default_factory=list)
    col_keys: list[Key] = field(default_factory=list)
    row_count: int = 0
    col_count: int = 0
    cells: dict[tuple[Key, Key], dict[str, Value]] = field(default_factory=dict)
    row_totals: dict[Key, dict[str, Value]] = field(default_factory=dict)
    col_totals: dict[Key, dict[str, Value]] = field(default_factory=dict)
    grand: dict[str, Value] = field(default_factory=dict)

    @property
    def truncated(self) -> bool:
        return self.row_count > len(self.row_keys) or self.col_count > len(self.col_keys)

    def cell(self, row: Key, col: Key, measure: str) -> Value:
        if self.cols is None:
            return self.row_totals.get(row, {}).get(measure)
        return self.cells.get((row, col), {}).get(measure)


def _order(dimension: str, totals: dict[Key, dict[str, Value]], measure: str) -> list[Key]:
    """Time levels in time order, coded dimensions in their scheme's order, the others by the
    measure, largest first; a missing value last."""
    keys = [k for k in totals if k is not None]
    if dimension in TIME_DIMENSIONS:
        keys.sort()
    elif (nat := natural_order(dimension)) is not None:
        rank = {v: i for i, v in enumerate(nat)}
        keys.sort(key=lambda k: (rank.get(k, len(rank)), k))
    else:
        def by_value(k: str) -> tuple[float, str]:
            v = totals[k].get(measure)
            return (-float(v) if v is not None else math.inf, k)

        keys.sort(key=by_value)
    return keys + ([None] if None in totals else [])


def _by(engine: Engine, view: ExplorerView, dims: list[str],
        measures: list[str]) -> dict[tuple[Key, ...], dict[str, Value]]:
    out: dict[tuple[Key, ...], dict[str, Value]] = {}
    for r in _rows(engine, view.query(by=dims, measures=measures)):
        out[tuple(r[d] for d in dims)] = {m: r[m] for m in measures}
    return out


def pivot(engine: Engine, view: ExplorerView, max_rows: int = MAX_ROWS,
          max_cols: int = MAX_COLS) -> Pivot:
    """The view's pivot: with rows only, every measure of the view per row; with rows and
    columns, the view's cell measure per (row, column); totals from the cube itself.
    Raises KehuInputError (from the cube) for measures and dimensions that do not mix."""
    measures = [view.cell_measure] if view.cols else list(view.measures)
    p = Pivot(measures=measures, rows=view.rows, cols=view.cols)
    p.grand = _by(engine, view, [], measures).get((), {m: None for m in measures})
    if view.rows is None:
        return p
    p.row_totals = {k[0]: v for k, v in _by(engine, view, [view.rows], measures).items()}
    keys = _order(view.rows, p.row_totals, measures[0])
    p.row_count, p.row_keys = len(keys), keys[:max_rows]
    if view.cols is None:
        return p
    p.col_totals = {k[0]: v for k, v in _by(engine, view, [view.cols], measures).items()}
    keys = _order(view.cols, p.col_totals, measures[0])
    p.col_count, p.col_keys = len(keys), keys[:max_cols]
    shown = set(p.row_keys), set(p.col_keys)
    p.cells = {(k[0], k[1]): v for k, v in _by(engine, view, [view.rows, view.cols],
                                                measures).items()
               if k[0] in shown[0] and k[1] in shown[1]}
    return p


def dimension_values(engine: Engine, dimension: str, limit: int = 500) -> list[str]:
    """The values ``dimension`` takes (in the pivot's order, missing ones left out), for a
    filter's choices."""
    measure = "transactions" if DIMENSIONS[dimension].grain == "transaction" else "customers"
    totals = {r[dimension]: {measure: r[measure]}
              for r in _rows(engine, CubeQuery(measures=[measure], by=[dimension]))}
    return [k for k in _order(dimension, totals, measure) if k is not None][:limit]


# -- the grid: what the table shows, as export writes it ----------------------------------------


def grid(p: Pivot, locale: str) -> list[list[Any]]:
    """The pivot as rows of labelled values, header first and totals last — what the page's
    table shows, unformatted (exports write it)."""
    total = _("Total")
    if p.rows is None:
        return [[measure_label(m) for m in p.measures], [p.grand.get(m) for m in p.measures]]
    rlabel = dimension_label(p.rows)
    if p.cols is None:
        out: list[list[Any]] = [[rlabel, *(measure_label(m) for m in p.measures)]]
        out += [[value_label(p.rows, k, locale), *(p.cell(k, None, m) for m in p.measures)]
                for k in p.row_keys]
        out.append([total, *(p.grand.get(m) for m in p.measures)])
        return out
    m = p.measures[0]
    corner = f"{rlabel} \\ {dimension_label(p.cols)}"
    out = [[corner, *(value_label(p.cols, c, locale) for c in p.col_keys), total]]
    for r in p.row_keys:
        out.append([value_label(p.rows, r, locale), *(p.cell(r, c, m) for c in p.col_keys),
                    p.row_totals.get(r, {}).get(m)])
    out.append([total, *(p.col_totals.get(c, {}).get(m) for c in p.col_keys),
                p.grand.get(m)])
    return out


def to_csv(rows: Sequence[Sequence[Any]]) -> bytes:
    """CSV in UTF-8 with a byte-order mark (so Excel reads Chinese correctly)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    for r in rows:
        w.writerow(["" if v is None else v for v in r])
    return b"\xef\xbb\xbf" + buf.getvalue().encode("utf-8")


def to_xlsx(rows: Sequence[Sequence[Any]], title: str) -> bytes:
    """An Excel workbook of one sheet named ``title``."""
    import openpyxl

    wb = openpyxl.Workbook(write_only=True)
    bad = set('[]:*?/\\')
    sheet = wb.create_sheet("".join("_" if ch in bad else ch for ch in title)[:31] or "cube")
    for r in rows:
        sheet.append(list(r))
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


# -- the chart ----------------------------------------------------------------------------------


def _rounded(v: Value, measure: str) -> float | int | None:
    if v is None or isinstance(v, int):
        return v
    return round(v, 4 if MEASURE_FORMATS.get(measure) == "percent" else 2)


def chart(p: Pivot, locale: str) -> dict[str, Any] | None:
    """The ECharts option of the pivot: bars for one dimension, stacked bars for two when the
    measure adds up, else a heat map (None without rows: a single total needs no chart)."""
    if p.rows is None or not p.row_keys:
        return None
    m = p.measures[0]
    name = measure_label(m)
    rows = [value_label(p.rows, k, locale) for k in p.row_keys]
    axis_label = {"interval": 0, "rotate": 30} if len(rows) > 8 else {}
    if p.cols is None:
        return {"tooltip": {"trigger": "axis"},
                "grid": {"left": 72, "right": 20, "top": 30, "bottom": 80 if axis_label else 30},
                "xAxis": {"type": "category", "data": rows, "axisLabel": axis_label},
                "yAxis": {"type": "value", "name": name},
                "series": [{"type": "bar", "name": name,
                            "data": [_rounded(p.cell(k, None, m), m) for k in p.row_keys]}]}
    cols = [value_label(p.cols, c, locale) for c in p.col_keys]
    if m in ADDITIVE:
        return {"tooltip": {"trigger": "axis"},
                "legend": {"type": "scroll", "top": 0},
                "grid": {"left": 72, "right": 20, "top": 40, "bottom": 80 if axis_label else 30},
                "xAxis": {"type": "category", "data": rows, "axisLabel": axis_label},
                "yAxis": {"type": "value", "name": name},
                "series": [{"type": "bar", "stack": "total", "name": label,
                            "data": [_rounded(p.cell(r, c, m), m) for r in p.row_keys]}
                           for c, label in zip(p.col_keys, cols, strict=True)]}
    data = [[x, y, _rounded(p.cell(r, c, m), m)]
            for y, r in enumerate(p.row_keys) for x, c in enumerate(p.col_keys)]
    values = [d[2] for d in data if d[2] is not None]
    return {"tooltip": {"trigger": "item"},
            "grid": {"left": 110, "right": 20, "top": 20, "bottom": 90},
            "xAxis": {"type": "category", "data": cols, "splitArea": {"show": True},
                      "axisLabel": {"interval": 0, "rotate": 30} if len(cols) > 6 else {}},
            "yAxis": {"type": "category", "data": rows, "inverse": True,
                      "splitArea": {"show": True}},
            "visualMap": {"min": min(values, default=0), "max": max(values, default=1),
                          "calculable": True, "orient": "horizontal", "left": "center",
                          "bottom": 0, "text": [name, ""]},
            "series": [{"type": "heatmap", "name": name, "data": data,
                        "label": {"show": len(data) <= 120}}]}


# -- the API's answer ---------------------------------------------------------------------------


@dataclass
class Answer:
    by: list[str]
    measures: list[str]
    rows: list[list[Any]]
    truncated: bool


def answer(engine: Engine, q: CubeQuery, limit: int = 1_000) -> Answer:
    """The cube query's rows (dimension values, then measures), at most ``limit`` of them."""
    limit = max(1, min(limit, API_MAX_ROWS))
    got = cube(engine, q).limit(limit + 1).to_pyarrow().to_pylist()
    names = [*q.by, *q.measures]
    rows = [[r[n] if n in q.by else clean(r[n]) for n in names] for r in got[:limit]]
    return Answer(by=list(q.by), measures=list(q.measures), rows=rows,
                  truncated=len(got) > limit)
