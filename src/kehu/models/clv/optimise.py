"""Maximum likelihood on log-parameters with an analytic gradient, and standard errors from
the Hessian (finite differences of the analytic gradient)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.optimize import minimize

from kehu.errors import KehuError
from kehu.i18n import _

# loglik_and_grad(theta) -> (log-likelihood, gradient wrt theta)
LogLik = Callable[[np.ndarray], tuple[float, np.ndarray]]


def fit_positive(loglik: LogLik, start: np.ndarray, names: tuple[str, ...]
                 ) -> tuple[np.ndarray, float, np.ndarray]:
    """Maximise ``loglik`` over positive parameters; returns (theta, ll, standard errors)."""

    def neg(log_theta: np.ndarray) -> tuple[float, np.ndarray]:
        theta = np.exp(log_theta)
        ll, g = loglik(theta)
        if not np.isfinite(ll):
            return 1e300, np.zeros_like(theta)
        return -ll, -g * theta

    res = minimize(neg, np.log(start), jac=True, method="L-BFGS-B",
                   options={"maxiter": 2000, "ftol": 1e-15, "gtol": 1e-10})
    theta = np.exp(res.x)
    ll, grad = loglik(theta)
    if not np.isfinite(ll) or np.max(np.abs(grad * theta)) > 1e-2 * max(1.0, abs(ll)) ** 0.5:
        raise KehuError(_("The {names} fit did not converge ({msg}). The data may not fit "
                          "the model (e.g. no repeat purchases).").format(
            names="/".join(names), msg=res.message))
    return theta, ll, standard_errors(loglik, theta)


def standard_errors(loglik: LogLik, theta: np.ndarray) -> np.ndarray:
    """sqrt(diag(inverse observed information)), by central differences of the gradient."""
    k = len(theta)
    h = np.zeros((k, k))
    for i in range(k):
        step = 1e-5 * max(abs(theta[i]), 1e-3)
        up, down = theta.copy(), theta.copy()
        up[i] += step
        down[i] -= step
        h[:, i] = (loglik(up)[1] - loglik(down)[1]) / (2 * step)
    h = (h + h.T) / 2
    try:
        cov = np.linalg.inv(-h)
    except np.linalg.LinAlgError:
        return np.full(k, np.nan)
    return np.sqrt(np.clip(np.diag(cov), 0, None))
