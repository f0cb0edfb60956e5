"""Column typing for messy per-customer tables: what each column is and how to feed it to a model.

A :class:`ColumnTyper` learns from the training frame, once, what every column is:

- ``numeric``: numbers, also numbers stored as text with blanks, thousands separators or
  currency signs (``"  29.85"``, ``" "``, ``"1,234"``); blanks and unparseable cells are missing;
- ``flag``: yes/no text (``Yes/No``, ``Y/N``, ``true/false``, ``是/否``, ``1/0``) as 1/0;
- ``category``: other text, as a pandas category with the levels seen in training (rare levels
  pooled into ``(other)``; a level never seen in training is missing at scoring time);

and which columns it drops, with the reason: ``id`` (a different value on every row),
``constant``, ``empty``, ``date`` and ``high_cardinality``. Missing values stay missing.

>>> frame = pd.DataFrame({"id": [f"C{i}" for i in range(30)],
...                       "charges": ["  29.85", " ", "1,234"] * 10,
...                       "partner": ["Yes", "No", "是"] * 10,
...                       "plan": ["A", "B", "B"] * 10, "country": ["CN"] * 30})
>>> typer = ColumnTyper().fit(frame)
>>> {c.name: c.kind for c in typer.columns_}
{'charges': 'numeric', 'partner': 'flag', 'plan': 'category'}
>>> typer.dropped_
{'id': 'id', 'country': 'constant'}
>>> typer.transform(frame.head(3)).iloc[:, :2].to_numpy().tolist()
[[29.85, 1.0], [nan, 0.0], [1234.0, 1.0]]
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from kehu.errors import KehuInputError
from kehu.i18n import _
from kehu.ingest.coerce import _FALSE, _TRUE, clean_text, to_float

OTHER = "(other)"
_DATE_TEXT = re.compile(r"^\s*\d{4}\s*[-/.年]\s*\d{1,2}\s*[-/.月]\s*\d{1,2}")
_ID_NAME = re.compile(r"(^|[\s_\-.])(id|no|number|key|uuid)$|编号|号码|账号|^id[\s_\-.]", re.I)


@dataclass
class ColumnSpec:
    """How one source column enters the model (``key`` is its safe internal name)."""

    name: str
    key: str
    kind: str
    categories: list[str] = field(default_factory=list)


def _text(s: pd.Series) -> pa.Array:
    """Cleaned text of a column: trimmed, blanks and null tokens as nulls."""
    values = [None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)
              for v in s.tolist()]
    return clean_text(pa.array(values, pa.string()))


def _floats(s: pd.Series) -> tuple[np.ndarray, int]:
    """Numbers of a column (missing as NaN) and how many present cells were not numbers."""
    if pd.api.types.is_bool_dtype(s.dtype) or pd.api.types.is_numeric_dtype(s.dtype):
        return pd.to_numeric(s, errors="coerce").astype("float64").to_numpy(), 0
    c = to_float(_text(s))
    return c.values.to_numpy(zero_copy_only=False).astype("float64"), int(pc.sum(c.bad).as_py()
                                                                          or 0)


def _flags(s: pd.Series) -> np.ndarray:
    """Yes/no cells as 1.0/0.0, anything else as NaN."""
    if pd.api.types.is_bool_dtype(s.dtype) or pd.api.types.is_numeric_dtype(s.dtype):
        v = pd.to_numeric(s, errors="coerce").astype("float64").to_numpy()
        return np.where(np.isin(v, (0.0, 1.0)), v, np.nan)
    low = pc.utf8_lower(_text(s))
    t = pc.is_in(low, value_set=pa.array(_TRUE)).to_numpy(zero_copy_only=False)
    f = pc.is_in(low, value_set=pa.array(_FALSE)).to_numpy(zero_copy_only=False)
    return np.where(t, 1.0, np.where(f, 0.0, np.nan))


class ColumnTyper:
    """Learn column kinds on a training frame; turn any frame with those columns into a model
    frame (internal column names ``f0``, ``f1``, …; floats and pandas categories).

    Parameters: ``min_level_count`` — category levels seen fewer times are pooled into
    ``(other)``; ``max_levels`` — at most this many levels per category are kept;
    ``max_bad_fraction`` — a text column is numeric when at most this share of its present
    cells are not numbers (those become missing).
    """

    def __init__(self, min_level_count: int = 10, max_levels: int = 100,
                 max_bad_fraction: float = 0.02) -> None:
        self.min_level_count = min_level_count
        self.max_levels = max_levels
        self.max_bad_fraction = max_bad_fraction

    def fit(self, X: pd.DataFrame) -> ColumnTyper:
        if not isinstance(X, pd.DataFrame):
            raise KehuInputError(_("The features must be a pandas DataFrame with one row per "
                                   "customer. Got {kind} instead.").format(kind=type(X).__name__))
        self.columns_: list[ColumnSpec] = []
        self.dropped_: dict[str, str] = {}
        for name in X.columns:
            kind, cats = self._kind(str(name), X[name])
            if kind in ("numeric", "flag", "category"):
                self.columns_.append(ColumnSpec(str(name), f"f{len(self.columns_)}", kind, cats))
            else:
                self.dropped_[str(name)] = kind
        return self

    def _kind(self, name: str, s: pd.Series) -> tuple[str, list[str]]:
        n = len(s)
        if pd.api.types.is_datetime64_any_dtype(s.dtype):
            return "date", []
        if pd.api.types.is_bool_dtype(s.dtype) or pd.api.types.is_numeric_dtype(s.dtype):
            v, _bad = _floats(s)
            return self._numeric_kind(name, v, n), []
        text = _text(s)
        present = text.drop_null()
        if len(present) == 0:
            return "empty", []
        counts = pc.value_counts(present)
        levels = counts.field("values").to_pylist()
        freq = counts.field("counts").to_numpy()
        if len(levels) == 1 and len(present) == n:
            return "constant", []
        low = {str(v).lower() for v in levels}
        if low <= set(_TRUE) | set(_FALSE) and len(levels) > 1:
            return "flag", []
        sample = present.slice(0, 200).to_pylist()
        if sum(bool(_DATE_TEXT.match(str(x))) for x in sample) > 0.8 * len(sample):
            return "date", []   # dates as text: not a number (years would pass as one)
        v, bad = _floats(s)
        if bad <= self.max_bad_fraction * len(present) and np.isfinite(v).any():
            return self._numeric_kind(name, v, n), []
        if len(levels) == len(present) and len(present) >= 20:
            return "id", []
        if len(levels) > max(50, len(present) // 2):
            return "high_cardinality", []
        order = np.argsort(-freq, kind="stable")
        keep = [str(levels[i]) for i in order[: self.max_levels]
                if freq[i] >= self.min_level_count]
        if len(keep) < len(levels):
            keep.append(OTHER)
        if len(keep) < 2 and len(present) == n:
            return "constant", []
        return "category", keep

    def _numeric_kind(self, name: str, v: np.ndarray, n: int) -> str:
        present = v[np.isfinite(v)]
        if len(present) == 0:
            return "empty"
        uniq = np.unique(present)
        if len(uniq) == 1 and len(present) == n:
            return "constant"
        whole = bool(np.all(present == np.round(present)))
        if whole and len(uniq) == n and n >= 20 and (
                _ID_NAME.search(name) or uniq[-1] - uniq[0] + 1 == n):
            return "id"
        if whole and len(uniq) == len(present) >= 20 and uniq[0] >= 1e6:
            return "id"   # unique long numbers: phone, card or account numbers
        if len(uniq) == 2 and set(uniq.tolist()) == {0.0, 1.0}:
            return "flag"
        return "numeric"

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        """The model frame of ``X`` (needs every column the typer kept)."""
        if not hasattr(self, "columns_"):
            raise KehuInputError(_("This {model} is not fitted yet: call fit() first.").format(
                model=type(self).__name__))
        missing = [c.name for c in self.columns_ if c.name not in X.columns]
        if missing:
            raise KehuInputError(_("The data lacks the column(s) {cols} the model was trained "
                                   "with. Its columns: {have}. Add them or retrain the model."
                                   ).format(cols=", ".join(missing),
                                            have=", ".join(map(str, X.columns))))
        out: dict[str, Any] = {}
        for c in self.columns_:
            s = X[c.name]
            if c.kind == "numeric":
                out[c.key] = _floats(s)[0]
            elif c.kind == "flag":
                out[c.key] = _flags(s)
            else:
                text = pd.Series(_text(s).to_pylist(), index=X.index, dtype="object")
                known = text.isin(c.categories) | text.isna()
                if OTHER in c.categories:
                    text = text.where(known, OTHER)
                out[c.key] = pd.Categorical(text, categories=c.categories)
        return pd.DataFrame(out, index=X.index)

    @property
    def names(self) -> dict[str, str]:
        """Internal key -> source column name."""
        return {c.key: c.name for c in self.columns_}
