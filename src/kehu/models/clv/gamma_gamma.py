"""Gamma-Gamma spend model (Fader, Hardie & Lee 2005, "RFM and CLV"; Fader & Hardie 2013):
a customer's transaction values vary around their own mean, which varies across customers.

Fitted on customers with repeat purchases (x > 0) from (x, average repeat spend), weighted by
distinct rows.

>>> import numpy as np
>>> m = GammaGamma().fit(np.array([1, 2, 3, 1, 4]), np.array([20.0, 35.5, 18.2, 50.0, 27.3]))
>>> sorted(m.params_)
['gamma', 'p', 'q']
"""

from __future__ import annotations

import numpy as np
from scipy.special import digamma, gammaln

from kehu.errors import KehuInputError
from kehu.i18n import _
from kehu.models.base import Model
from kehu.models.clv.optimise import fit_positive


class GammaGamma(Model):
    param_names = ("p", "q", "gamma")

    def __init__(self, start: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> None:
        self.start = start

    def fit(self, frequency: np.ndarray, monetary_value: np.ndarray,
            weights: np.ndarray | None = None) -> GammaGamma:
        x = np.asarray(frequency, dtype=float)
        m = np.asarray(monetary_value, dtype=float)
        keep = x > 0
        if weights is None:
            uniq, counts = np.unique(np.column_stack([x[keep], m[keep]]), axis=0,
                                     return_counts=True)
            x, m, w = uniq[:, 0], uniq[:, 1], counts.astype(float)
        else:
            x, m, w = x[keep], m[keep], np.asarray(weights, dtype=float)[keep]
        if len(x) == 0:
            raise KehuInputError(_("Gamma-Gamma needs customers with repeat purchases; none "
                                   "were given."))
        if np.any(m <= 0):
            raise KehuInputError(_("Gamma-Gamma needs positive average spend for customers "
                                   "with repeat purchases; {n} are <= 0.").format(
                n=int(np.sum(m <= 0))))
        self.n_customers_ = int(w.sum())
        theta, ll, se = fit_positive(lambda th: _loglik(th, x, m, w),
                                     np.array(self.start, dtype=float), self.param_names)
        self.params_ = dict(zip(self.param_names, theta.tolist(), strict=True))
        self.standard_errors_ = dict(zip(self.param_names, se.tolist(), strict=True))
        self.log_likelihood_ = float(ll)
        return self

    def expected_spend(self, frequency: np.ndarray, monetary_value: np.ndarray) -> np.ndarray:
        """E[mean spend | x, m̄]: a weighted mix of the population and the customer's mean."""
        self._check_fitted()
        p, q, g = (self.params_[k] for k in self.param_names)
        x = np.asarray(frequency, dtype=float)
        m = np.asarray(monetary_value, dtype=float)
        pop = p * g / (q - 1)
        return np.where(x > 0, (p * (g + x * m)) / (p * x + q - 1), pop)


def _loglik(theta: np.ndarray, x: np.ndarray, m: np.ndarray, w: np.ndarray
            ) -> tuple[float, np.ndarray]:
    p, q, g = theta
    px = p * x
    s = x * m + g
    ll_i = (gammaln(px + q) - gammaln(px) - gammaln(q) + q * np.log(g)
            + (px - 1) * np.log(m) + px * np.log(x) - (px + q) * np.log(s))
    d_p = x * (digamma(px + q) - digamma(px) + np.log(m) + np.log(x) - np.log(s))
    d_q = digamma(px + q) - digamma(q) + np.log(g) - np.log(s)
    d_g = q / g - (px + q) / s
    return float(np.sum(w * ll_i)), np.array([np.sum(w * d) for d in (d_p, d_q, d_g)])
