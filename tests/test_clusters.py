"""Behavioural clusters recover planted groups and describe them in words."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kehu.errors import KehuInputError
from kehu.models.clusters import FEATURES, BehaviourClusters


def planted(n: int = 600, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 3, n)
    # 0: frequent online small baskets; 1: rare big-spending in-store; 2: lapsed
    freq = np.choose(truth, [rng.poisson(40, n), rng.poisson(3, n), rng.poisson(2, n)]) + 1
    spend = np.choose(truth, [rng.gamma(2, 20, n), rng.gamma(2, 400, n), rng.gamma(2, 30, n)])
    rec = np.choose(truth, [rng.integers(1, 20, n), rng.integers(10, 60, n),
                            rng.integers(300, 700, n)])
    online = np.choose(truth, [rng.uniform(0.7, 1, n), rng.uniform(0, 0.2, n),
                               rng.uniform(0.3, 0.6, n)])
    df = pd.DataFrame({"frequency": freq, "avg_spend": spend, "recency_days": rec,
                       "tenure_days": rec + rng.integers(100, 900, n),
                       "lines_per_order": np.choose(truth, [1.2, 4.0, 1.5]) +
                       rng.uniform(0, 0.3, n),
                       "online_share": online, "categories": np.choose(truth, [2, 6, 1])},
                      index=[f"C{i}" for i in range(n)])
    return df[list(FEATURES)].astype(float), truth


def test_recovers_planted_groups_and_words() -> None:
    x, truth = planted()
    m = BehaviourClusters(k_range=(2, 6)).fit(x)
    assert m.k_ == 3
    from sklearn.metrics import adjusted_rand_score

    assert adjusted_rand_score(truth, m.labels_.to_numpy()) > 0.9
    by_desc = {c.description for c in m.clusters_}
    assert any("mostly online" in d and "buys often" in d for d in by_desc)
    assert any("has not bought for a while" in d for d in by_desc)
    assert sum(c.size for c in m.clusters_) == len(x)
    again = BehaviourClusters(k_range=(2, 6)).fit(x)
    assert (again.labels_ == m.labels_).all()  # deterministic
    assert (m.predict(x) == m.labels_.to_numpy()).all()


def test_too_few_customers() -> None:
    x, _ = planted(10)
    with pytest.raises(KehuInputError, match="Too few buying customers"):
        BehaviourClusters(k_range=(2, 8)).fit(x)
