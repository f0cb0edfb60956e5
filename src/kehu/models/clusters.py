"""Behavioural clusters: k-means on standardised behaviour features, k chosen by the
silhouette score, each cluster described in words.

Features per buying customer (built with Ibis, fitted in Python): purchase days, average
spend per purchase day, days since the last purchase, tenure, lines per order, share of
online lines (web, app), number of categories bought. Skewed features are log-transformed
before standardising.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

import ibis
import numpy as np
import pandas as pd

from kehu.errors import KehuInputError
from kehu.i18n import _
from kehu.models.base import Model

if TYPE_CHECKING:
    from ibis.expr.types import Table

    from kehu.warehouse import Engine

FEATURES = ("frequency", "avg_spend", "recency_days", "tenure_days", "lines_per_order",
            "online_share", "categories")
LOG_FEATURES = ("frequency", "avg_spend", "recency_days", "tenure_days", "lines_per_order",
                "categories")


def behaviour_features_expr(engine: Engine, as_of: date) -> Table:
    """``customer_id`` and :data:`FEATURES` (as doubles) per buying customer as of ``as_of``,
    as an Ibis expression."""
    tx = engine.table("transactions")
    t = tx.filter((tx.transaction_time.cast("date") <= ibis.literal(as_of))
                  & (tx.kind.isnull() | (tx.kind != "refund")))
    p = engine.table("products").select("product_id", "category")
    t = t.left_join(p, "product_id")
    day = t.transaction_time.cast("date")
    g = t.group_by(t.customer_id).aggregate(
        frequency=day.nunique(), revenue=t.amount.sum(), last=day.max(), first=day.min(),
        lines=t.count(), orders=t.order_id.coalesce(t.transaction_id).nunique(),
        online=t.channel.isin(["web", "app"]).cast("int64").sum(),
        categories=t.category.nunique())
    d = ibis.literal(as_of)
    out = g.select(
        "customer_id", "frequency", "categories",
        avg_spend=g.revenue / g.frequency,
        recency_days=d.delta(g["last"], unit="day"),
        tenure_days=d.delta(g["first"], unit="day"),
        lines_per_order=g.lines / g.orders,
        online_share=g.online / g.lines,
    )
    return out.select("customer_id", **{f: out[f].cast("float64") for f in FEATURES})


def behaviour_features(engine: Engine, as_of: date) -> pd.DataFrame:
    """One row per buying customer with :data:`FEATURES` (as of ``as_of``), by customer."""
    out = engine.execute_arrow(behaviour_features_expr(engine, as_of).order_by(
        "customer_id")).to_pandas().set_index("customer_id")
    return out[list(FEATURES)].astype(float)


@dataclass
class Cluster:
    label: int
    size: int
    share: float
    means: dict[str, float]
    description: str
    traits: list[str] = field(default_factory=list)


class BehaviourClusters(Model):
    """k-means with k from ``k_range`` chosen by the best silhouette score."""

    def __init__(self, k_range: tuple[int, int] = (2, 8), random_state: int = 0,
                 sample: int = 5000, fit_sample: int = 50_000) -> None:
        self.k_range = k_range
        self.random_state = random_state
        self.sample = sample
        self.fit_sample = fit_sample

    def _matrix(self, x: pd.DataFrame) -> np.ndarray:
        m = x.copy()
        for c in LOG_FEATURES:
            m[c] = np.log1p(m[c].clip(lower=0))
        return ((m - self.center_) / self.scale_).to_numpy()

    def fit(self, features: pd.DataFrame) -> BehaviourClusters:
        from sklearn.cluster import KMeans
        from sklearn.metrics import silhouette_score

        lo, hi = self.k_range
        if lo < 2 or hi < lo:
            raise KehuInputError(_("The 'k_range' parameter must be (low, high) with "
                                   "2 <= low <= high. Got {v} instead.").format(v=self.k_range))
        x = features[list(FEATURES)].fillna(0.0)
        if len(x) < hi * 5:
            raise KehuInputError(_("Too few buying customers ({n}) to cluster into up to {k} "
                                   "groups.").format(n=len(x), k=hi))
        logged = x.copy()
        for c in LOG_FEATURES:
            logged[c] = np.log1p(logged[c].clip(lower=0))
        self.center_ = logged.mean()
        self.scale_ = logged.std(ddof=0).replace(0, 1.0)
        z = self._matrix(x)
        rng = np.random.default_rng(self.random_state)
        # at scale the centres are learned on a sample and every customer is then assigned
        fit_rows = z if len(z) <= self.fit_sample else z[
            rng.choice(len(z), self.fit_sample, replace=False)]
        idx = rng.choice(len(fit_rows), min(self.sample, len(fit_rows)), replace=False)
        scores = {}
        models = {}
        for k in range(lo, hi + 1):
            km = KMeans(n_clusters=k, n_init=4, random_state=self.random_state).fit(fit_rows)
            scores[k] = float(silhouette_score(fit_rows[idx], km.labels_[idx]))
            models[k] = km
        self.k_ = max(scores, key=lambda k: scores[k])
        self.silhouette_ = scores
        self.model_ = models[self.k_]
        self.labels_ = pd.Series(self.model_.predict(z), index=x.index, name="cluster")
        self.params_ = {"k": float(self.k_)}
        self.standard_errors_ = {}
        self.log_likelihood_ = float("nan")
        labels = self.labels_.to_numpy()
        means = x.groupby(labels).mean()
        sizes = pd.Series(np.bincount(labels, minlength=self.k_), name="size")
        self.describe_clusters(means, sizes, x.mean(), x.std(ddof=0))
        return self

    def describe_clusters(self, means: pd.DataFrame, sizes: pd.Series, overall: pd.Series,
                          spread: pd.Series) -> list[Cluster]:
        """Set ``clusters_`` from each label's feature means and size and the features' mean
        and population standard deviation over everyone — statistics an engine computes
        when the customers were labelled where they live (the analysis run on Spark)."""
        self._check_fitted()
        spread = spread.replace(0, 1.0)
        total = float(sizes.sum()) or 1.0
        self.clusters_ = []
        for label in range(self.k_):
            n = int(sizes.get(label, 0))
            m = means.loc[label] if label in means.index else pd.Series(
                np.nan, index=list(FEATURES))
            zs = (m - overall) / spread
            traits = describe(zs.fillna(0.0))
            self.clusters_.append(Cluster(label, n, n / total,
                                          {str(f): float(m[f]) for f in FEATURES},
                                          "; ".join(traits) if traits else _("average on "
                                                                             "every measure"),
                                          traits))
        return self.clusters_

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        self._check_fitted()
        return self.model_.predict(self._matrix(features[list(FEATURES)].fillna(0.0)))


def describe(z: pd.Series, threshold: float = 0.4) -> list[str]:
    """Words for a cluster from its features' standardised differences to everyone.

    >>> describe(pd.Series({"frequency": 1.2, "avg_spend": -0.6, "recency_days": 0.1,
    ...                     "tenure_days": 0, "lines_per_order": -0.5, "online_share": 0.9,
    ...                     "categories": 0}))
    ['buys often', 'spends little per visit', 'small baskets', 'mostly online']
    """
    words: list[tuple[str, float, Any]] = [
        ("frequency", threshold, (_("buys often"), _("buys rarely"))),
        ("avg_spend", threshold, (_("spends a lot per visit"), _("spends little per visit"))),
        ("recency_days", threshold, (_("has not bought for a while"), _("bought recently"))),
        ("tenure_days", threshold, (_("long-standing customer"), _("recent customer"))),
        ("lines_per_order", threshold, (_("big baskets"), _("small baskets"))),
        ("online_share", threshold, (_("mostly online"), _("mostly in store"))),
        ("categories", threshold, (_("buys across many categories"),
                                   _("sticks to few categories"))),
    ]
    out = []
    for feat, th, (high, low) in words:
        v = float(z.get(feat, 0.0))
        if v >= th:
            out.append(high)
        elif v <= -th:
            out.append(low)
    return out
