"""Purchase histories drawn from the BG/NBD process, for examples, tests and benchmarks."""

from __future__ import annotations

import numpy as np

#: Fader, Hardie & Lee (2005), CDNOW 1/10 sample, weeks
CDNOW_PARAMS = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}


def simulate_bgnbd(n: int, r: float = CDNOW_PARAMS["r"], alpha: float = CDNOW_PARAMS["alpha"],
                   a: float = CDNOW_PARAMS["a"], b: float = CDNOW_PARAMS["b"], seed: int = 1,
                   min_weeks: int = 27, max_weeks: int = 39
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(frequency, recency, T) in weeks for ``n`` customers observed ``min_weeks`` to
    ``max_weeks`` weeks, purchases recorded at day resolution.

    >>> x, tx, T = simulate_bgnbd(1000, seed=3)
    >>> bool((tx <= T).all() and (x >= 0).all() and ((x == 0) <= (tx == 0)).all())
    True
    """
    rng = np.random.default_rng(seed)
    lam = rng.gamma(r, 1 / alpha, n)
    p = rng.beta(a, b, n)
    T = rng.integers(min_weeks * 7, max_weeks * 7 + 1, n) / 7.0
    x = np.zeros(n)
    tx = np.zeros(n)
    t = np.zeros(n)
    alive = np.ones(n, dtype=bool)
    while alive.any():
        idx = np.flatnonzero(alive)
        t[idx] += rng.exponential(1 / lam[idx])
        ok = t[idx] <= T[idx]
        hit = idx[ok]
        x[hit] += 1
        tx[hit] = np.floor(t[hit] * 7) / 7  # purchase days
        alive[idx[~ok]] = False
        drop = hit[rng.random(len(hit)) < p[hit]]
        alive[drop] = False
    return x, tx, np.floor(T * 7) / 7
