"""Per-customer churn reasons in plain language, from per-prediction feature contributions.

A prediction's reasons are the features that pushed its log-odds up the most (LightGBM's
SHAP values or the logistic model's terms). Each is stored language-neutral — feature code,
the customer's value, the contribution — and rendered in the reader's language when shown:

>>> render({"feature": "spend_trend_90d", "value": -0.45, "contribution": 0.8})
'spending fell 45 % in the last 90 days (vs the 90 days before)'
>>> render({"feature": "unresolved_complaints", "value": 2, "contribution": 0.5})
'2 unresolved complaints'
>>> render({"feature": "days_to_contract_end", "value": 21, "contribution": 0.4})
'contract ends in 21 days'
>>> render({"feature": "region", "value": "华东", "contribution": 0.1})
'Region: 华东'
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from kehu.analytics.features import feature_label
from kehu.i18n import N_, _

Reason = dict[str, Any]


def _num(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def _int(v: float) -> str:
    return f"{round(v):,}"


# feature -> renderer(value) returning a sentence, or None to fall back to "name: value"
_TEMPLATES: dict[str, Callable[[float], str | None]] = {
    "spend_trend_90d": lambda v: _("spending fell {pct} % in the last 90 days (vs the 90 days "
                                   "before)").format(pct=_int(-100 * v)) if v < 0 else None,
    "frequency_trend_90d": lambda v: _("purchases fell {pct} % in the last 90 days (vs the "
                                       "90 days before)").format(pct=_int(-100 * v))
    if v < 0 else None,
    "days_since_last_purchase": lambda v: _("no purchase for {n} days").format(n=_int(v))
    if v >= 30 else None,
    "purchases_90d": lambda v: _("only {n} purchase days in the last 90 days").format(
        n=_int(v)),
    "spend_90d": lambda v: _("spent only ¥{n} in the last 90 days").format(n=_int(v)),
    "unresolved_complaints": lambda v: _("{n} unresolved complaints").format(n=_int(v))
    if v > 0 else None,
    "complaints_180d": lambda v: _("{n} complaints in the last 180 days").format(n=_int(v))
    if v > 0 else None,
    "tickets_180d": lambda v: _("{n} service tickets in the last 180 days").format(n=_int(v))
    if v > 0 else None,
    "days_to_contract_end": lambda v: _("contract ends in {n} days").format(n=_int(v))
    if v >= 0 else None,
    "late_payments_365d": lambda v: _("{n} late payments in the last year").format(n=_int(v))
    if v > 0 else None,
    "overdue_amount": lambda v: _("¥{n} overdue").format(n=_int(v)) if v > 0 else None,
    "last_nps": lambda v: _("last NPS answer was {n} of 10").format(n=_int(v)),
    "days_since_last_interaction": lambda v: _("no contact with us for {n} days").format(
        n=_int(v)) if v >= 30 else None,
    "tenure_days": lambda v: _("first purchase only {n} days ago").format(n=_int(v)),
    "days_since_signup": lambda v: _("joined only {n} days ago").format(n=_int(v)),
}


# feature -> sentence when the customer has no value (no contract, never answered, ...)
_MISSING: dict[str, str] = {
    "days_to_contract_end": N_("no active contract"),
    "last_nps": N_("never answered an NPS survey"),
    "days_since_last_interaction": N_("no recorded contact with us"),
    "days_since_last_purchase": N_("never bought anything"),
}


def render(reason: Reason) -> str:
    """One reason as a sentence in the current language."""
    code, value = reason["feature"], reason.get("value")
    v = _num(value)
    if value is None and code in _MISSING:
        return _(_MISSING[code])
    if code in _TEMPLATES and v is not None:
        text = _TEMPLATES[code](v)
        if text:
            return text
    shown = "-" if value is None or (v is not None and math.isnan(v)) else (
        f"{v:,.4g}" if v is not None and not isinstance(value, str) else str(value))
    return _("{name}: {value}").format(name=feature_label(code), value=shown)


def _plain(v: Any) -> Any:
    """A JSON-ready value: numpy scalars unwrapped, missing as None, whole floats as ints
    (an integer column holds floats in a batch with a missing value, so 106 and 106.0 must
    read the same whichever batch a customer was scored in), others as text.

    >>> [_plain(v) for v in (np.float64(106.0), 2.5, np.int64(3), float("nan"), "华东")]
    [106, 2.5, 3, None, '华东']
    """
    if isinstance(v, np.generic):
        v = v.item()
    if v is None or (not isinstance(v, str) and pd.isna(v)):
        return None
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v if isinstance(v, (str, int, float, bool)) else str(v)


def top_reasons(contrib: pd.DataFrame, values: pd.DataFrame, k: int = 3,
                min_contribution: float = 0.05) -> list[list[Reason]]:
    """For every row, the ``k`` features that raised the churn log-odds most (at least
    ``min_contribution``), with the row's value of each."""
    c = contrib.to_numpy(dtype=float)
    cols = list(contrib.columns)
    order = np.argsort(-c, axis=1)[:, :k]
    out: list[list[Reason]] = []
    # one object array: a cell of it costs nanoseconds, a DataFrame.iat microseconds
    vals = values.reindex(columns=cols).to_numpy(dtype=object)
    top = np.take_along_axis(c, order, axis=1)
    keep = top >= min_contribution
    rounded = np.round(top, 4).tolist()
    for i, (js, ks) in enumerate(zip(order.tolist(), keep.tolist(), strict=True)):
        row: list[Reason] = []
        for n, j in enumerate(js):
            if not ks[n]:
                break
            row.append({"feature": cols[j], "value": _plain(vals[i, j]),
                        "contribution": rounded[i][n]})
        out.append(row)
    return out


def reasons_json(contrib: pd.DataFrame, values: pd.DataFrame, k: int = 3,
                 min_contribution: float = 0.05) -> list[str]:
    """:func:`top_reasons` of every row as the JSON text stored with the scores — the same
    text as ``json.dumps(reasons, ensure_ascii=False)`` — built column by column rather than
    row by row (a million customers in a second or two instead of ten).

    >>> c = pd.DataFrame({"age": [0.9, 0.01], "region": [0.2, 0.3]})
    >>> v = pd.DataFrame({"age": [41.0, 30.5], "region": ["华东", None]})
    >>> for text in reasons_json(c, v, k=2):
    ...     print(text)
    [{"feature": "age", "value": 41, "contribution": 0.9}, {"feature": "region", ...}]
    [{"feature": "region", "value": null, "contribution": 0.3}]
    """
    c = contrib.to_numpy(dtype=float)
    cols = list(contrib.columns)
    n, k = len(c), min(k, len(cols))
    text = np.dtypes.StringDType()
    out: np.ndarray = np.full(n, "[", dtype=text)
    if n == 0 or k == 0:
        return np.strings.add(out, "]").tolist()
    order = np.argsort(-c, axis=1)[:, :k]
    top = np.take_along_axis(c, order, axis=1)
    # the top is sorted: a row's reasons stop at the first one below the minimum
    keep = np.logical_and.accumulate(top >= min_contribution, axis=1)
    shares = _json_numbers(np.round(top, 4), text)
    for pos in range(k):
        sep = "" if pos == 0 else ", "
        for j in np.unique(order[keep[:, pos], pos]):
            rows = np.flatnonzero(keep[:, pos] & (order[:, pos] == j))
            name = json.dumps(cols[j], ensure_ascii=False)
            head = f'{sep}{{"feature": {name}, "value": '
            piece = np.strings.add(np.strings.add(head, _json_values(values[cols[j]], rows,
                                                                     text)),
                                   np.strings.add(', "contribution": ', shares[rows, pos]))
            out[rows] = np.strings.add(np.strings.add(out[rows], piece), "}")
    return np.strings.add(out, "]").tolist()


def _json_numbers(v: np.ndarray, text: Any) -> np.ndarray:
    """Floats as ``json.dumps`` writes them (NumPy's shortest repr is Python's)."""
    out = v.astype(text)
    out[np.isnan(v)] = "NaN"
    out[np.isposinf(v)] = "Infinity"
    out[np.isneginf(v)] = "-Infinity"
    return out


def _json_values(col: pd.Series, rows: np.ndarray, text: Any) -> np.ndarray:
    """``json.dumps(_plain(v), ensure_ascii=False)`` of ``col`` at positions ``rows``."""
    kind = col.dtype.kind if isinstance(col.dtype, np.dtype) else "O"
    if kind in "iu":
        return col.to_numpy()[rows].astype(text)
    if kind == "f":
        v = col.to_numpy()[rows].astype(float)
        whole = np.isfinite(v) & (v == np.round(v))
        small = whole & (np.abs(v) < 2.0**53)
        out = _json_numbers(v, text)
        out[small] = v[small].astype(np.int64).astype(text)
        big = whole & ~small
        out[big] = [str(int(x)) for x in v[big]]
        out[np.isnan(v)] = "null"
        return out
    codes, uniques = pd.factorize(col.iloc[rows], use_na_sentinel=True)
    shown = np.array([json.dumps(_plain(u), ensure_ascii=False) for u in uniques] + ["null"],
                     dtype=text)
    return shown[codes]   # the sentinel -1 picks the last entry, "null"
