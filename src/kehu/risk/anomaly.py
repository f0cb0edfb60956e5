"""Unusual usage: an Isolation Forest (scikit-learn) on per-customer usage features, with the
features that made each customer unusual.

Features (as of day ``d``; usage = transaction amount; windows of ``window_days`` ending
with ``d``, the latest one compared with the ``trailing_periods`` before it, zero-filled):

- ``usage_ratio``: ln(1 + latest window) − ln(1 + trailing median);
- ``count_ratio``: ln(1 + transactions in the latest window) − ln(1 + trailing mean count);
- ``variability``: standard deviation / mean of the trailing windows;
- ``night_share``: share of the last ``share_days``' transactions in ``night_hours``;
- ``intl_share``: share of the last ``share_days``' amount on ``international_products``.

System-generated lines (``exclude_kinds``, e.g. monthly bills stamped at midnight) do not
count for the two shares. Why a feature stands out: its robust z-score, (x − median) /
(1.4826 · MAD), against all scored customers; the ``top_features`` largest |z| are reported.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import ibis
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from ibis.expr.types import Table
from pydantic import BaseModel, ConfigDict, Field

from kehu.errors import KehuInputError
from kehu.i18n import _
from kehu.models.base import NotFittedError
from kehu.risk.compile import period_usage

FEATURES = ("usage_ratio", "count_ratio", "variability", "night_share", "intl_share")
TOP_TYPE = pa.struct([("feature", pa.string()), ("value", pa.float64()), ("z", pa.float64())])


class UsageFeatureConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    window_days: int = Field(30, ge=1, le=366)
    trailing_periods: int = Field(6, ge=2, le=36)
    share_days: int = Field(90, ge=1, le=3660)
    night_hours: tuple[int, int] = (0, 6)
    international_products: list[str] = Field(default_factory=lambda: ["IDD", "ROAM"])
    exclude_kinds: list[str] = Field(default_factory=lambda: ["bill"])


def usage_features(transactions: Table, as_of: date,
                   config: UsageFeatureConfig | None = None) -> Table:
    """Per customer active in the compared windows: ``customer_id``, ``recent_amount``,
    ``trailing_median`` and the features of the module docstring."""
    cfg = config or UsageFeatureConfig()
    u = period_usage(transactions, as_of, cfg.window_days, cfg.trailing_periods)
    old = u.bucket > 0
    g = u.group_by("customer_id").aggregate(
        recent_amount=u.amount.max(where=u.bucket == 0),
        trailing_median=u.amount.median(where=old),
        _mean=u.amount.mean(where=old), _sd=u.amount.std(where=old),
        _n=u.n.max(where=u.bucket == 0), _n_mean=u.n.mean(where=old))
    g = g.mutate(
        usage_ratio=(g.recent_amount.clip(lower=0) + 1).ln()
        - (g.trailing_median.clip(lower=0) + 1).ln(),
        count_ratio=(g._n.cast("float64") + 1).ln() - (g._n_mean + 1).ln(),
        variability=ibis.cases((g._mean > 0, g._sd / g._mean), else_=0.0))
    tx = transactions
    day = tx.transaction_time.cast("date")
    s = tx.filter((day > ibis.literal(as_of - timedelta(days=cfg.share_days)))
                  & (day <= ibis.literal(as_of)))
    if cfg.exclude_kinds:
        s = s.filter(s.kind.isnull() | ~s.kind.isin(cfg.exclude_kinds))
    h = s.transaction_time.hour()
    a, b = cfg.night_hours
    night = ((h >= a) & (h < b)) if a < b else ((h >= a) | (h < b))
    pos = s.amount.clip(lower=0)
    intl = s.product_id.isin(cfg.international_products).fill_null(False) \
        if cfg.international_products else ibis.literal(False)
    sh = s.group_by("customer_id").aggregate(
        _lines=s.count(), _night=night.sum(), _amt=pos.sum(), _intl=pos.sum(where=intl))
    sh = sh.mutate(night_share=sh._night.cast("float64") / sh._lines,
                   intl_share=ibis.cases((sh._amt > 0, sh._intl.fill_null(0) / sh._amt),
                                         else_=0.0))
    j = g.left_join(sh.select("customer_id", "night_share", "intl_share"), "customer_id")
    return j.select("customer_id", "recent_amount", "trailing_median", "usage_ratio",
                    "count_ratio", j.variability.fill_null(0.0).name("variability"),
                    j.night_share.fill_null(0.0).name("night_share"),
                    j.intl_share.fill_null(0.0).name("intl_share"))


class UsageAnomalyModel:
    """Isolation Forest over :data:`FEATURES` (scikit-learn's estimator contract).

    >>> rng = np.random.default_rng(0)
    >>> df = pd.DataFrame({f: rng.normal(0, 0.1, 200) for f in FEATURES})
    >>> df["customer_id"] = [f"c{i}" for i in range(200)]
    >>> df.loc[7, "usage_ratio"] = 3.0
    >>> out = UsageAnomalyModel(random_state=0).fit(df).score(df)
    >>> out.column("customer_id")[0].as_py(), out.column("top_features")[0][0]["feature"].as_py()
    ('c7', 'usage_ratio')
    >>> UsageAnomalyModel(contamination=0.9).fit(df)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    kehu.errors.KehuInputError: The 'contamination' parameter of ... Got 0.9 instead.
    """

    def __init__(self, contamination: float | str = "auto", n_estimators: int = 200,
                 top_features: int = 3, random_state: int | None = 0) -> None:
        self.contamination = contamination
        self.n_estimators = n_estimators
        self.top_features = top_features
        self.random_state = random_state

    def fit(self, df: pd.DataFrame) -> UsageAnomalyModel:
        from sklearn.ensemble import IsolationForest

        c = self.contamination
        if not (c == "auto" or (isinstance(c, int | float) and 0 < c <= 0.5)):
            raise KehuInputError(_("The 'contamination' parameter of UsageAnomalyModel must be "
                                   "'auto' or a float in (0, 0.5]. Got {v} instead.").format(
                v=c))
        x = df[list(FEATURES)].to_numpy(float)
        self.forest_ = IsolationForest(n_estimators=self.n_estimators, contamination=c,
                                       random_state=self.random_state).fit(x)
        self.median_ = np.median(x, axis=0)
        mad = 1.4826 * np.median(np.abs(x - self.median_), axis=0)
        mean_ad = 1.2533 * np.mean(np.abs(x - self.median_), axis=0)
        self.scale_ = np.where(mad > 0, mad, np.where(mean_ad > 0, mean_ad, 1.0))
        return self

    def score(self, df: pd.DataFrame) -> pa.Table:
        """Scored customers, most unusual first: ``anomaly_score`` (higher = more unusual),
        ``rank``, ``is_anomaly``, the features, ``top_features`` and ``why``."""
        if not hasattr(self, "forest_"):
            raise NotFittedError(_("This {model} is not fitted yet: call fit() first.").format(
                model=type(self).__name__))
        x = df[list(FEATURES)].to_numpy(float)
        score = -self.forest_.score_samples(x)
        flag = self.forest_.predict(x) == -1
        z = (x - self.median_) / self.scale_
        k = min(self.top_features, len(FEATURES))
        top = np.argsort(-np.abs(z), axis=1, kind="stable")[:, :k]
        n = len(df)
        rows = np.arange(n)[:, None]
        names = np.array(FEATURES, dtype=object)[top]
        zt = np.round(z[rows, top], 2)
        structs = pa.StructArray.from_arrays(
            [pa.array(names.ravel(), pa.string()), pa.array(x[rows, top].ravel()),
             pa.array(zt.ravel())], fields=list(TOP_TYPE))
        tops = pa.ListArray.from_arrays(pa.array(np.arange(0, n * k + 1, k), pa.int32()),
                                        structs)
        why = [pc.binary_join_element_wise(pa.array(names[:, j], pa.string()),
                                           pc.cast(pa.array(np.round(zt[:, j], 1)), pa.string()),
                                           " z=") for j in range(k)]
        out = pa.table({"customer_id": pa.array(df["customer_id"].astype(str)),
                        "anomaly_score": pa.array(np.round(score, 6)),
                        "is_anomaly": pa.array(flag),
                        **{f: pa.array(df[f].to_numpy(float)) for f in
                           ("recent_amount", "trailing_median", *FEATURES) if f in df},
                        "top_features": tops,
                        "why": pc.binary_join_element_wise(*why, "; ") if why
                        else pa.array([""] * n)})
        order = pc.sort_indices(out, [("anomaly_score", "descending"),
                                      ("customer_id", "ascending")])
        out = out.take(order)
        return out.add_column(1, "rank", pa.array(np.arange(1, n + 1, dtype=np.int64)))

    def empty_result(self) -> pa.Table:
        return pa.table({"customer_id": pa.array([], pa.string()),
                         "rank": pa.array([], pa.int64()),
                         "anomaly_score": pa.array([], pa.float64()),
                         "is_anomaly": pa.array([], pa.bool_()),
                         "top_features": pa.array([], pa.list_(TOP_TYPE)),
                         "why": pa.array([], pa.string())})


def auc(scores: Any, positives: Any) -> float:
    """Area under the ROC curve of ``scores`` for boolean ``positives`` (Mann–Whitney).

    >>> auc([0.9, 0.8, 0.1, 0.3], [True, True, False, False])
    1.0
    """
    from scipy.stats import rankdata

    s = np.asarray(scores, float)
    y = np.asarray(positives, bool)
    npos, nneg = int(y.sum()), int((~y).sum())
    if not npos or not nneg:
        return float("nan")
    r = rankdata(s)
    return float((r[y].sum() - npos * (npos + 1) / 2) / (npos * nneg))
