"""The contract every kehu model follows (scikit-learn's): ``__init__`` stores parameters only,
``fit`` validates and learns, learned attributes end in ``_``, using an unfitted model raises
:class:`NotFittedError`."""

from __future__ import annotations

from typing import Any

from kehu.errors import KehuError
from kehu.i18n import _


class NotFittedError(KehuError):
    """The model is used before ``fit``."""


class Model:
    #: names of the learned parameters, in order
    param_names: tuple[str, ...] = ()

    params_: dict[str, float]
    standard_errors_: dict[str, float]
    log_likelihood_: float

    def _check_fitted(self) -> None:
        if not hasattr(self, "params_"):
            raise NotFittedError(_("This {model} is not fitted yet: call fit() first.").format(
                model=type(self).__name__))

    def summary(self) -> dict[str, Any]:
        """Parameters, standard errors and the log-likelihood, as plain data."""
        self._check_fitted()
        return {"params": dict(self.params_), "standard_errors": dict(self.standard_errors_),
                "log_likelihood": self.log_likelihood_}
