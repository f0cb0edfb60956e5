"""How good churn scores are: ranking (ROC AUC, PR AUC), lift and capture in the top of the
list, and calibration (do predicted probabilities match observed churn rates).

>>> y = np.array([1, 0, 1, 0, 0, 0, 0, 0, 0, 1])
>>> p = np.array([.9, .8, .7, .6, .5, .4, .3, .2, .1, .05])
>>> round(roc_auc(y, p), 4), round(pr_auc(y, p), 4)
(0.619, 0.6556)
>>> lift_capture(y, p, 0.2)  # top 2 of 10 rows hold 1 of the 3 churners
(1.6666666666666667, 0.3333333333333333)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score


def _arrays(y: Any, p: Any) -> tuple[np.ndarray, np.ndarray]:
    ya = np.asarray(y, dtype=float).ravel()
    pa_ = np.asarray(p, dtype=float).ravel()
    if ya.shape != pa_.shape:
        raise ValueError(f"y and p differ in length: {ya.shape[0]} and {pa_.shape[0]}")
    return ya, pa_


def roc_auc(y: Any, p: Any) -> float:
    """Area under the ROC curve: the chance a random churner scores above a random stayer."""
    ya, pa_ = _arrays(y, p)
    return float(roc_auc_score(ya, pa_))


def pr_auc(y: Any, p: Any) -> float:
    """Average precision (area under the precision-recall curve, step-wise)."""
    ya, pa_ = _arrays(y, p)
    return float(average_precision_score(ya, pa_))


def lift_capture(y: Any, p: Any, fraction: float) -> tuple[float, float]:
    """Lift and capture rate in the top ``fraction`` of rows by score.

    The top is the ``ceil(fraction * n)`` highest scores (ties kept in input order). Lift is the
    churn rate there divided by the overall churn rate; capture is the share of all churners
    found there.

    >>> lift_capture([0, 1, 0, 1], [.1, .9, .2, .8], 0.5)
    (2.0, 1.0)
    """
    ya, pa_ = _arrays(y, p)
    n = len(ya)
    k = max(1, math.ceil(fraction * n - 1e-9))
    top = np.argsort(-pa_, kind="stable")[:k]
    positives = ya.sum()
    if positives == 0:
        return float("nan"), float("nan")
    rate = ya[top].mean()
    return float(rate / (positives / n)), float(ya[top].sum() / positives)


def calibration_curve(y: Any, p: Any, bins: int = 10) -> list[dict[str, float]]:
    """Mean predicted probability and observed churn rate per score decile (equal-count bins
    of the sorted scores), lowest scores first.

    >>> for b in calibration_curve([0, 0, 1, 1], [.1, .2, .7, .9], bins=2):
    ...     print(round(b["predicted"], 2), b["observed"], b["n"])
    0.15 0.0 2
    0.8 1.0 2
    """
    ya, pa_ = _arrays(y, p)
    order = np.argsort(pa_, kind="stable")
    out = []
    for part in np.array_split(order, min(bins, len(order))):
        if len(part):
            out.append({"predicted": float(pa_[part].mean()), "observed": float(ya[part].mean()),
                        "n": len(part)})
    return out


def summary(y: Any, p: Any) -> dict[str, Any]:
    """All the metrics above for one set of scores, as plain data."""
    lift10, cap10 = lift_capture(y, p, 0.1)
    lift20, cap20 = lift_capture(y, p, 0.2)
    return {"auc": roc_auc(y, p), "pr_auc": pr_auc(y, p), "lift_top_decile": lift10,
            "capture_top_decile": cap10, "lift_top_20": lift20, "capture_top_20": cap20,
            "calibration": calibration_curve(y, p)}


__all__ = ["calibration_curve", "lift_capture", "pr_auc", "roc_auc", "summary"]
