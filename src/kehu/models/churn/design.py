"""The logistic model's design: per-column scikit-learn transformers on the typed model frame.

Numeric columns give a standardised value, a cubic spline basis with knots at quantiles (so a
tenure-like curve fits) and a missing indicator; categories give one-hot columns (missing is a
level). :func:`logistic_design` returns the unfitted pipeline and the source column of every
output column, so coefficients can be summed back to the column they came from.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, SplineTransformer, StandardScaler

from kehu.models.churn.columns import ColumnSpec

MISSING = "(missing)"


class NumericBasis(TransformerMixin, BaseEstimator):
    """One numeric column -> [value, spline basis…, missing indicator], median-imputed."""

    def __init__(self, splines: bool = True, min_unique: int = 8) -> None:
        self.splines = splines
        self.min_unique = min_unique

    def fit(self, X: Any, y: Any = None) -> NumericBasis:
        x = np.asarray(X, dtype=float).ravel()
        present = x[np.isfinite(x)]
        self.median_ = float(np.median(present)) if len(present) else 0.0
        self.has_missing_ = bool(len(present) < len(x))
        self.spline_: SplineTransformer | None = None
        if self.splines and len(np.unique(present)) >= self.min_unique:
            knots = np.unique(np.quantile(present, [0.0, 0.25, 0.5, 0.75, 1.0]))
            if len(knots) >= 3:
                self.spline_ = SplineTransformer(
                    knots=knots.reshape(-1, 1), degree=3, extrapolation="constant",
                    include_bias=False).fit(present.reshape(-1, 1))
        return self

    def transform(self, X: Any) -> np.ndarray:
        x = np.asarray(X, dtype=float).ravel()
        miss = ~np.isfinite(x)
        filled = np.where(miss, self.median_, x).reshape(-1, 1)
        parts = [filled]
        if self.spline_ is not None:
            parts.append(self.spline_.transform(filled))
        if self.has_missing_:
            parts.append(miss.astype(float).reshape(-1, 1))
        return np.hstack(parts)


class CategoryBasis(TransformerMixin, BaseEstimator):
    """One category column -> one-hot columns; missing is a level, unseen levels are all 0."""

    def fit(self, X: Any, y: Any = None) -> CategoryBasis:
        self.encoder_ = OneHotEncoder(handle_unknown="ignore", sparse_output=False).fit(
            self._text(X))
        return self

    @staticmethod
    def _text(X: Any) -> np.ndarray:
        s = pd.Series(np.asarray(X, dtype=object).ravel())
        return s.where(s.notna(), MISSING).astype(str).to_numpy(dtype=object).reshape(-1, 1)

    def transform(self, X: Any) -> np.ndarray:
        return np.asarray(self.encoder_.transform(self._text(X)))


def logistic_design(columns: list[ColumnSpec], splines: bool = True) -> Pipeline:
    """The unfitted design pipeline (features then standardisation) for these columns."""
    parts: list[tuple[str, Any, list[str]]] = []
    for c in columns:
        if c.kind == "category":
            parts.append((c.key, CategoryBasis(), [c.key]))
        else:
            parts.append((c.key, NumericBasis(splines=splines and c.kind == "numeric"),
                          [c.key]))
    return Pipeline([("features", ColumnTransformer(parts, remainder="drop",
                                                    sparse_threshold=0.0)),
                     ("scale", StandardScaler())])


def source_index(design: Pipeline, keys: list[str]) -> np.ndarray:
    """For each output column of a fitted design, the position of its source column in keys."""
    ct: ColumnTransformer = design.named_steps["features"]
    width = sum(s.stop - s.start for s in ct.output_indices_.values())
    out = np.zeros(width, dtype=int)
    for i, key in enumerate(keys):
        sl = ct.output_indices_[key]
        out[sl] = i
    return out


__all__ = ["CategoryBasis", "NumericBasis", "logistic_design", "source_index"]
