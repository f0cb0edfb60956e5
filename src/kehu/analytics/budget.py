"""Budgets tracked against actuals from the cube: per budget line, the actual value of its
measure in its month (and dimension value), the variance and the attainment."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from kehu.analytics.cube import DIMENSIONS, TX_MEASURES, CubeQuery, Filter, cube
from kehu.errors import KehuInputError
from kehu.i18n import _

if TYPE_CHECKING:
    from kehu.warehouse import Engine


def budget_vs_actual(engine: Engine) -> pd.DataFrame:
    """One row per budget line: month, measure, dimension, value, budget, actual, variance
    (actual − budget) and attainment (actual / budget)."""
    b = engine.table("budgets").to_pandas()
    if b.empty:
        return b.assign(actual=[], variance=[], attainment=[])
    b["month_key"] = pd.to_datetime(b["month"]).dt.strftime("%Y-%m")
    out = []
    for (measure, dim), part in b.groupby([b.measure, b.dimension.fillna("")], dropna=False):
        if measure not in TX_MEASURES:
            raise KehuInputError(_("Budget measure '{m}' is not a transaction measure of the "
                                   "cube ({all}).").format(m=measure, all=", ".join(TX_MEASURES)))
        by = ["month"] + ([dim] if dim else [])
        if dim and dim not in DIMENSIONS:
            raise KehuInputError(_("Unknown dimension(s) {d}. Dimensions: {all}.").format(
                d=dim, all=", ".join(DIMENSIONS)))
        where = [Filter(dimension="month", values=sorted(part.month_key.unique()))]
        if dim:
            where.append(Filter(dimension=dim, values=sorted(
                part.dimension_value.dropna().astype(str).unique())))
        actual = cube(engine, CubeQuery(measures=[measure], by=by, where=where)).to_pandas()
        keys = ["month_key"] + (["dimension_value"] if dim else [])
        actual = actual.rename(columns={"month": "month_key", measure: "actual"})
        if dim:
            actual = actual.rename(columns={dim: "dimension_value"})
        merged = part.merge(actual, on=keys, how="left")
        out.append(merged)
    res = pd.concat(out, ignore_index=True)
    res["actual"] = res.actual.fillna(0.0)
    res["variance"] = res.actual - res.amount
    res["attainment"] = res.actual / res.amount.where(res.amount != 0)
    return res.drop(columns=["month_key"]).sort_values(["month", "budget_id"])
