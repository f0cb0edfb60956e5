"""BG/NBD (Fader, Hardie & Lee 2005): repeat purchases and the probability a customer is alive.

Fitted by maximum likelihood from **sufficient statistics**: the distinct (x, t_x, T) triples
with their counts, so the fit costs the number of distinct histories, not of customers, and a
Spark run only ships that small table to the driver. The log-likelihood is vectorised with an
analytic gradient.

>>> from kehu.models.clv.simulate import simulate_bgnbd
>>> m = BetaGeo().fit(*simulate_bgnbd(20_000, r=0.25, alpha=4.0, a=0.8, b=2.5, seed=7))
>>> true = {"r": 0.25, "alpha": 4.0, "a": 0.8, "b": 2.5}
>>> all(abs(m.params_[k] / v - 1) < 0.1 for k, v in true.items())   # recovers them
True
"""

from __future__ import annotations

import numpy as np
from scipy.special import betaln, digamma, gammaln, hyp2f1

from kehu.errors import KehuInputError
from kehu.i18n import _
from kehu.models.base import Model
from kehu.models.clv.optimise import fit_positive


def sufficient_statistics(frequency: np.ndarray, recency: np.ndarray, T: np.ndarray
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Distinct (x, t_x, T) rows and how many customers share each (a hash group-by: for
    1 M customers about ten times faster than ``np.unique(axis=0)``)."""
    import pandas as pd

    df = pd.DataFrame({"x": np.asarray(frequency, dtype=float),
                       "tx": np.asarray(recency, dtype=float),
                       "T": np.asarray(T, dtype=float)})
    g = df.groupby(["x", "tx", "T"], sort=True).size()
    idx = g.index
    return (idx.get_level_values(0).to_numpy(), idx.get_level_values(1).to_numpy(),
            idx.get_level_values(2).to_numpy(), g.to_numpy(dtype=float))


class BetaGeo(Model):
    """The BG/NBD model. Parameters ``r, alpha`` (purchase rates ~ Gamma(r, alpha)) and
    ``a, b`` (dropout probability ~ Beta(a, b))."""

    param_names = ("r", "alpha", "a", "b")

    def __init__(self, start: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)) -> None:
        self.start = start

    # -- fitting ----------------------------------------------------------------------------
    def fit(self, frequency: np.ndarray, recency: np.ndarray, T: np.ndarray,
            weights: np.ndarray | None = None) -> BetaGeo:
        """Fit on per-customer (x, t_x, T), or on distinct triples with ``weights``."""
        x, tx, t = (np.asarray(v, dtype=float) for v in (frequency, recency, T))
        _validate(x, tx, t)
        if weights is None:
            x, tx, t, w = sufficient_statistics(x, tx, t)
        else:
            w = np.asarray(weights, dtype=float)
        self.n_customers_ = int(w.sum())
        self.n_distinct_ = len(w)
        # the special functions depend on x only, which takes few values: computed per value
        ux, ix = np.unique(x, return_inverse=True)
        theta, ll, se = fit_positive(lambda th: _loglik(th, x, tx, t, w, (ux, ix.ravel())),
                                     np.array(self.start, dtype=float), self.param_names)
        self.params_ = dict(zip(self.param_names, theta.tolist(), strict=True))
        self.standard_errors_ = dict(zip(self.param_names, se.tolist(), strict=True))
        self.log_likelihood_ = float(ll)
        return self

    # -- predictions ------------------------------------------------------------------------
    def _p(self) -> tuple[float, float, float, float]:
        self._check_fitted()
        p = self.params_
        return p["r"], p["alpha"], p["a"], p["b"]

    def probability_alive(self, frequency: np.ndarray, recency: np.ndarray,
                          T: np.ndarray) -> np.ndarray:
        """P(alive | x, t_x, T) (Fader, Hardie & Lee 2008, note 021)."""
        r, alpha, a, b = self._p()
        x, tx, t = (np.asarray(v, dtype=float) for v in (frequency, recency, T))
        log_div = (r + x) * np.log((alpha + t) / (alpha + tx)) + np.log(
            a / (b + np.maximum(x, 1) - 1))
        return np.where(x == 0, 1.0, 1.0 / (1.0 + np.exp(log_div)))

    def expected_purchases(self, t: float | np.ndarray, frequency: np.ndarray,
                           recency: np.ndarray, T: np.ndarray) -> np.ndarray:
        """Expected repeat purchases in the next ``t`` periods given the history (FHL eq. 10)."""
        r, alpha, a, b = self._p()
        x, tx, T_ = (np.asarray(v, dtype=float) for v in (frequency, recency, T))
        t = np.asarray(t, dtype=float)
        _a, _b, _c = r + x, b + x, a + b + x - 1
        z = t / (alpha + T_ + t)
        with np.errstate(divide="ignore", invalid="ignore"):
            ln_hyp = np.log(hyp2f1(_a, _b, _c, z))
            alt = np.log(hyp2f1(_c - _a, _c - _b, _c, z)) + (_c - _a - _b) * np.log(1 - z)
        ln_hyp = np.where(np.isinf(ln_hyp), alt, ln_hyp)
        first = (a + b + x - 1) / (a - 1)
        second = 1 - np.exp(ln_hyp + (r + x) * np.log((alpha + T_) / (alpha + t + T_)))
        denom = 1 + (x > 0) * (a / (b + x - 1)) * ((alpha + T_) / (alpha + tx)) ** (r + x)
        return first * second / denom

    def expected_purchases_new(self, t: float | np.ndarray) -> np.ndarray:
        """Expected purchases in (0, t] of a customer who just made the first purchase."""
        r, alpha, a, b = self._p()
        t = np.asarray(t, dtype=float)
        return (a + b - 1) / (a - 1) * (
            1 - (alpha / (alpha + t)) ** r * hyp2f1(r, b, a + b - 1, t / (alpha + t)))


def _validate(x: np.ndarray, tx: np.ndarray, t: np.ndarray) -> None:
    if not (len(x) == len(tx) == len(t)) or len(x) == 0:
        raise KehuInputError(_("frequency, recency and T must be non-empty and equally long."))
    if np.any(x < 0) or np.any(x != np.floor(x)):
        raise KehuInputError(_("frequency must be whole numbers >= 0."))
    if np.any(tx < 0) or np.any(tx > t + 1e-9):
        raise KehuInputError(_("recency must be between 0 and T for every customer."))
    if np.any((x == 0) & (tx != 0)):
        raise KehuInputError(_("recency must be 0 for customers without repeat purchases."))


def _loglik(theta: np.ndarray, x: np.ndarray, tx: np.ndarray, T: np.ndarray,
            w: np.ndarray, distinct: tuple[np.ndarray, np.ndarray] | None = None
            ) -> tuple[float, np.ndarray]:
    """Weighted BG/NBD log-likelihood and its gradient wrt (r, alpha, a, b).

    ``distinct``: the distinct values of ``x`` and each row's index into them; the gamma,
    beta and digamma terms are then evaluated once per value (the same numbers, a fraction
    of the time: ~50 frequencies against ~10⁶ rows)."""
    r, alpha, a, b = theta
    pos = x > 0
    ux, ix = distinct if distinct is not None else (x, None)

    def per_x(values: np.ndarray) -> np.ndarray:
        return values if ix is None else values[ix]

    a1 = per_x(gammaln(r + ux) - gammaln(r)) + r * np.log(alpha)
    a2 = per_x(betaln(a, b + ux) - betaln(a, b))  # = ln[B(a, b+x) / B(a, b)]
    a3 = -(r + x) * np.log(alpha + T)
    with np.errstate(divide="ignore", invalid="ignore"):
        a4 = np.where(pos, np.log(a) - np.log(b + x - 1) - (r + x) * np.log(alpha + tx), -np.inf)
    m = np.maximum(a3, a4)
    e3, e4 = np.exp(a3 - m), np.exp(a4 - m)
    lse = m + np.log(e3 + e4)
    ll = float(np.sum(w * (a1 + a2 + lse)))
    w3 = e3 / (e3 + e4)
    w4 = 1 - w3
    d_r = per_x(digamma(r + ux) - digamma(r)) + np.log(alpha) - w3 * np.log(alpha + T) \
        - w4 * np.where(pos, np.log(alpha + tx), 0.0)
    d_alpha = r / alpha - w3 * (r + x) / (alpha + T) \
        - w4 * np.where(pos, (r + x) / (alpha + tx), 0.0)
    d_a = per_x(digamma(a) - digamma(a + b + ux) - digamma(a) + digamma(a + b)) + w4 / a
    d_b = per_x(digamma(b + ux) - digamma(a + b + ux) - digamma(b) + digamma(a + b)) \
        - w4 * np.where(pos, 1.0 / np.where(pos, b + x - 1, 1.0), 0.0)
    grad = np.array([np.sum(w * d) for d in (d_r, d_alpha, d_a, d_b)])
    return ll, grad
