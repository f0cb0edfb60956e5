"""Churn models on a per-customer feature table (one row per customer, a 0/1 label).

:class:`ChurnClassifier` chooses between LightGBM and a regularised logistic regression by inner
cross-validated ROC AUC and returns calibrated probabilities and per-customer contributions;
:mod:`kehu.models.churn.snapshot` evaluates, trains and scores straight from a file.
"""

from __future__ import annotations

from kehu.models.churn.columns import ColumnTyper
from kehu.models.churn.tabular import ChurnClassifier

__all__ = ["ChurnClassifier", "ColumnTyper"]
