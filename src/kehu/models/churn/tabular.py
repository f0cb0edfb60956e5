"""Churn on a per-customer feature table: LightGBM or a regularised logistic regression (or
their blend), chosen by inner cross-validated ROC AUC, with calibrated probabilities and
per-customer contributions in log-odds.

The same class serves a plain customer table (``kehu churn evaluate``) and features built
from the warehouse: it only needs a DataFrame with one row per customer and a 0/1 label.

How it fits (all on the training rows only):

1. :class:`~kehu.models.churn.columns.ColumnTyper` types the columns (numbers as text, yes/no,
   categories; drops IDs and constants).
2. Inner stratified K-fold: on each fold LightGBM trains with early stopping on the held-out
   part and its held-out log-odds are recorded every few trees; the logistic model is fitted
   over a grid of ``C``. The number of trees and ``C`` with the best pooled out-of-fold AUC are
   kept, and the out-of-fold AUCs of LightGBM, logistic and their log-odds average decide the
   model (the blend must beat both by ``blend_margin``).
3. The chosen model is refitted on all rows; a Platt (or isotonic) map fitted on the
   out-of-fold log-odds turns its log-odds into probabilities.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from kehu.errors import KehuInputError
from kehu.i18n import _
from kehu.models.base import NotFittedError
from kehu.models.churn.columns import ColumnTyper
from kehu.models.churn.design import logistic_design, source_index
from kehu.models.churn.metrics import roc_auc

MODELS = ("auto", "lightgbm", "logistic", "blend")
C_GRID = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0)
_STEP = 10  # trees between recorded out-of-fold scores
BASE = "(base)"


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _log_loss(y: np.ndarray, raw: np.ndarray) -> float:
    return float(np.mean(np.logaddexp(0.0, raw) - y * raw))


class ChurnClassifier:
    """P(churn) from a per-customer feature table.

    Parameters: ``model`` — ``"auto"`` (choose by inner CV), or force ``"lightgbm"``,
    ``"logistic"`` or ``"blend"``; ``cv`` — inner folds; ``calibration`` — ``"platt"``,
    ``"isotonic"`` or ``"none"``; ``blend_margin`` — AUC the blend must gain over the best
    single model to be chosen; ``splines`` — spline terms for numerics in the logistic model;
    ``seed``; ``n_jobs`` — inner-fold fits run at once, ``-1`` for one per core (the logistic
    folds next to the LightGBM ones; each fit is single-threaded, LightGBM and BLAS alike, so
    the model is the same whatever the number);
    ``learning_rate``, ``num_leaves``, ``min_child_samples``, ``max_trees`` — LightGBM's
    conservative defaults; ``C``, ``n_trees`` — the logistic model's C and LightGBM's number
    of trees (refitted on all rows) fixed, e.g. as another fit chose them, instead of chosen
    by the inner folds (which then only give the out-of-fold scores calibration is fitted on).

    Learned: ``chosen_model_``, ``cv_scores_`` (inner out-of-fold AUC per candidate),
    ``features_`` (source columns used), ``dropped_`` (column -> reason), ``n_trees_``, ``C_``,
    ``feature_importance_`` (mean |contribution| per column, a Series, largest first),
    ``lightgbm_`` / ``logistic_`` (the fitted models, ``None`` when not used), ``typer_``.
    """

    def __init__(self, model: str = "auto", cv: int = 4, calibration: str = "platt",
                 blend_margin: float = 0.002, splines: bool = True, seed: int = 0,
                 n_jobs: int = -1, learning_rate: float = 0.04, num_leaves: int = 15,
                 min_child_samples: int = 30, max_trees: int = 2000, C: float | None = None,
                 n_trees: int | None = None) -> None:
        self.model = model
        self.cv = cv
        self.calibration = calibration
        self.blend_margin = blend_margin
        self.splines = splines
        self.seed = seed
        self.n_jobs = n_jobs
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.max_trees = max_trees
        self.C = C
        self.n_trees = n_trees

    # -- fitting --------------------------------------------------------------------------
    def _validate(self, X: Any, y: Any) -> tuple[pd.DataFrame, np.ndarray]:
        if self.model not in MODELS:
            raise KehuInputError(_("The 'model' parameter must be one of {allowed}. Got {v!r} "
                                   "instead.").format(allowed=", ".join(MODELS), v=self.model))
        if self.calibration not in ("platt", "isotonic", "none"):
            raise KehuInputError(_("The 'calibration' parameter must be one of {allowed}. Got "
                                   "{v!r} instead.").format(allowed="platt, isotonic, none",
                                                            v=self.calibration))
        if not isinstance(self.cv, int) or self.cv < 2:
            raise KehuInputError(_("The '{name}' parameter must be an int >= {min}. Got {v} "
                                   "instead.").format(name="cv", min=2, v=self.cv))
        self._workers()
        if self.C is not None and not (isinstance(self.C, (int, float)) and self.C > 0):
            raise KehuInputError(_("The 'C' parameter must be a number > 0 or None. Got {v!r} "
                                   "instead.").format(v=self.C))
        if self.n_trees is not None and (not isinstance(self.n_trees, int)
                                         or self.n_trees < 1):
            raise KehuInputError(_("The '{name}' parameter must be an int >= {min}. Got {v} "
                                   "instead.").format(name="n_trees", min=1, v=self.n_trees))
        if not isinstance(X, pd.DataFrame):
            raise KehuInputError(_("The features must be a pandas DataFrame with one row per "
                                   "customer. Got {kind} instead.").format(kind=type(X).__name__))
        ya = np.asarray(y, dtype=float).ravel()
        if len(ya) != len(X):
            raise KehuInputError(_("The label has {n} values but the features have {m} rows."
                                   ).format(n=len(ya), m=len(X)))
        if np.isnan(ya).any() or not np.isin(ya, (0.0, 1.0)).all():
            raise KehuInputError(_("The label must be 0 (stayed) or 1 (churned) on every row. "
                                   "Drop rows without a label first."))
        counts = [int((ya == 0).sum()), int((ya == 1).sum())]
        if min(counts) < self.cv:
            raise KehuInputError(_("Both classes need at least {k} rows (one per fold); got "
                                   "{neg} stayed and {pos} churned.").format(
                k=self.cv, neg=counts[0], pos=counts[1]))
        return X.reset_index(drop=True), ya.astype(int)

    def fit(self, X: pd.DataFrame, y: Any) -> ChurnClassifier:
        """Type the columns, choose and fit the model, calibrate; returns ``self``."""
        from threadpoolctl import threadpool_limits

        # one thread per fit, the folds in parallel: BLAS threads spinning next to
        # LightGBM's OpenMP threads slow both down many times, and a fit on one thread gives
        # the same model on any machine
        with threadpool_limits(limits=1, user_api="blas"):
            return self._fit(X, y)

    def _workers(self) -> int:
        n = self.n_jobs
        if not isinstance(n, int) or isinstance(n, bool) or n == 0 or n < -1:
            raise KehuInputError(_("The '{name}' parameter must be an int >= 1 or -1. Got "
                                   "{v} instead.").format(name="n_jobs", v=self.n_jobs))
        return (os.cpu_count() or 1) if self.n_jobs == -1 else self.n_jobs

    def _parallel(self, jobs: list[Callable[[], Any]]) -> list[Any]:
        """The results of ``jobs`` in order, run on up to :meth:`_workers` threads (the work
        happens in LightGBM, BLAS and NumPy, which release the GIL)."""
        workers = min(self._workers(), len(jobs))
        if workers <= 1:
            return [job() for job in jobs]
        with ThreadPoolExecutor(workers) as pool:
            return list(pool.map(lambda job: job(), jobs))

    def _fit(self, X: pd.DataFrame, y: Any) -> ChurnClassifier:
        X, ya = self._validate(X, y)
        self.typer_ = ColumnTyper().fit(X)
        self.features_ = [c.name for c in self.typer_.columns_]
        self.dropped_ = dict(self.typer_.dropped_)
        if not self.features_:
            raise KehuInputError(_("No usable feature column: {dropped}. The table needs "
                                   "columns other than IDs, constants and the label.").format(
                dropped=", ".join(f"{k} ({v})" for k, v in self.dropped_.items()) or "-"))
        F = self.typer_.transform(X)
        use_lgb = self.model in ("auto", "lightgbm", "blend")
        use_lr = self.model in ("auto", "logistic", "blend")
        oof_lgb, oof_lr = self._inner_cv(F, ya, use_lgb, use_lr)
        scores: dict[str, float] = {}
        if oof_lgb is not None:
            scores["lightgbm"] = roc_auc(ya, oof_lgb)
        if oof_lr is not None:
            scores["logistic"] = roc_auc(ya, oof_lr)
        if oof_lgb is not None and oof_lr is not None:
            scores["blend"] = roc_auc(ya, (oof_lgb + oof_lr) / 2)
        self.cv_scores_ = scores
        self.chosen_model_ = self._choose(scores)
        oof = {"lightgbm": oof_lgb, "logistic": oof_lr}.get(self.chosen_model_)
        if oof is None:  # the blend
            assert oof_lgb is not None and oof_lr is not None
            oof = (oof_lgb + oof_lr) / 2
        self._fit_calibration(oof, ya)
        self.lightgbm_: Any = None
        self.logistic_: Any = None
        if self.chosen_model_ in ("lightgbm", "blend"):
            self.lightgbm_ = self._lgbm(self.n_trees_).fit(F, ya)
        if self.chosen_model_ in ("logistic", "blend"):
            self.logistic_ = self._logistic(F, ya, self.C_)
        sample = F.sample(n=min(len(F), 2000), random_state=self.seed)
        contrib = self._contributions(sample).drop(columns=[BASE])
        self.feature_importance_ = contrib.abs().mean().sort_values(ascending=False)
        return self

    def _choose(self, scores: dict[str, float]) -> str:
        if self.model != "auto":
            return self.model
        best = max(("logistic", "lightgbm"), key=lambda k: scores[k])
        if scores["blend"] > scores[best] + self.blend_margin:
            return "blend"
        return best

    def _folds(self, ya: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        skf = StratifiedKFold(n_splits=self.cv, shuffle=True, random_state=self.seed)
        return list(skf.split(np.zeros(len(ya)), ya))

    def _inner_cv(self, F: pd.DataFrame, ya: np.ndarray, use_lgb: bool, use_lr: bool
                  ) -> tuple[np.ndarray | None, np.ndarray | None]:
        folds = self._folds(ya)
        oof_lgb: np.ndarray | None = None
        oof_lr: np.ndarray | None = None
        # LightGBM's folds one after the other (two boosters trained at once in one process
        # crashed it, rarely), the logistic model's folds next to them
        # with n_trees fixed, each fold trains as many trees as its share of the rows calls for
        fold_trees = None if self.n_trees is None else \
            max(1, round(self.n_trees / (1 + 0.5 / self.cv)))

        def lgb_paths() -> list[np.ndarray]:
            return [self._lgb_path(F.iloc[tr], ya[tr], F.iloc[te], ya[te], fold_trees)
                    for tr, te in folds] if use_lgb else []

        grid = C_GRID if self.C is None else (float(self.C),)
        jobs: list[Callable[[], Any]] = [lgb_paths]
        if use_lr:
            jobs += [partial(self._lr_path, F.iloc[tr], ya[tr], F.iloc[te], grid)
                     for tr, te in folds]
        paths, *done = self._parallel(jobs)
        if use_lgb and fold_trees is not None:
            assert self.n_trees is not None
            self.n_trees_ = self.n_trees
            oof_lgb = np.zeros(len(ya))
            for (_tr, te), p in zip(folds, paths, strict=True):
                oof_lgb[te] = p
        elif use_lgb:
            steps = min(p.shape[1] for p in paths)
            pooled = np.zeros((len(ya), steps))
            for (_tr, te), p in zip(folds, paths, strict=True):
                pooled[te] = p[:, :steps]
            # the number of trees with the lowest pooled held-out log loss
            loss = np.array([_log_loss(ya, pooled[:, j]) for j in range(steps)])
            best = int(np.argmin(loss))
            # refitted on all rows (1/cv more data): a few more trees than the fold optimum
            self.n_trees_ = round((best + 1) * _STEP * (1 + 0.5 / self.cv))
            oof_lgb = pooled[:, best]
        else:
            self.n_trees_ = 0
        if use_lr:
            pooled = np.zeros((len(ya), len(grid)))
            for (_tr, te), p in zip(folds, done, strict=True):
                pooled[te] = p
            aucs = np.array([roc_auc(ya, pooled[:, j]) for j in range(len(grid))])
            j = int(np.argmax(aucs))
            self.C_ = float(grid[j])
            oof_lr = pooled[:, j]
        else:
            self.C_ = float("nan")
        return oof_lgb, oof_lr

    # -- the two models -------------------------------------------------------------------
    def _lgb_params(self) -> dict[str, Any]:
        return {"learning_rate": self.learning_rate, "num_leaves": self.num_leaves,
                "min_child_samples": self.min_child_samples, "subsample": 0.8,
                "subsample_freq": 1, "colsample_bytree": 0.8, "reg_lambda": 5.0,
                "min_data_per_group": 100, "cat_smooth": 50.0, "cat_l2": 10.0,
                "max_cat_to_onehot": 8, "random_state": self.seed, "n_jobs": 1,
                "verbose": -1, "deterministic": True, "force_col_wise": True}

    def _lgbm(self, n_trees: int) -> Any:
        import lightgbm as lgb

        return lgb.LGBMClassifier(n_estimators=max(n_trees, 1), **self._lgb_params())

    def _lgb_path(self, Ftr: pd.DataFrame, ytr: np.ndarray, Fte: pd.DataFrame,
                  yte: np.ndarray, trees: int | None = None) -> np.ndarray:
        """Held-out log-odds after every ``_STEP`` trees; training stops 100 trees after the
        held-out log loss stops improving (the trees after the best are kept). With
        ``trees``: that many trees and their held-out log-odds only (a 1-D array)."""
        import lightgbm as lgb

        if trees is not None:
            fixed = self._lgbm(trees).fit(Ftr, ytr)
            return np.asarray(fixed.booster_.predict(Fte, raw_score=True), dtype=float)
        train = lgb.Dataset(Ftr, ytr, free_raw_data=False)
        valid = lgb.Dataset(Fte, yte, reference=train, free_raw_data=False)
        booster = lgb.train({**self._lgb_params(), "objective": "binary",
                             "metric": "binary_logloss"}, train, num_boost_round=self.max_trees,
                            valid_sets=[valid], keep_training_booster=True,
                            callbacks=[lgb.early_stopping(100, verbose=False)])
        total = booster.current_iteration()
        raw = np.zeros(len(Fte))
        cols = []
        for start in range(0, max(total - total % _STEP, _STEP), _STEP):
            raw = raw + booster.predict(Fte, start_iteration=start, num_iteration=_STEP,
                                        raw_score=True)
            cols.append(raw)
        return np.column_stack(cols)

    def _lr_path(self, Ftr: pd.DataFrame, ytr: np.ndarray, Fte: pd.DataFrame,
                 grid: tuple[float, ...] = C_GRID) -> np.ndarray:
        """Held-out log-odds of the logistic model for every C of the grid."""
        design = logistic_design(self.typer_.columns_, self.splines)
        Ztr = design.fit_transform(Ftr)
        Zte = design.transform(Fte)
        clf = LogisticRegression(C=grid[0], max_iter=500, solver="newton-cholesky")
        out = []
        for c in grid:
            clf.set_params(C=c)
            clf.fit(Ztr, ytr)
            out.append(clf.decision_function(Zte))
        return np.column_stack(out)

    def _logistic(self, F: pd.DataFrame, ya: np.ndarray, c: float) -> Any:
        from sklearn.pipeline import Pipeline

        design = logistic_design(self.typer_.columns_, self.splines)
        clf = LogisticRegression(C=c, max_iter=500, solver="newton-cholesky")
        steps = [*design.steps, ("logistic", clf)]
        pipe = Pipeline(steps).fit(F, ya)
        self._lr_source = source_index(pipe, [k.key for k in self.typer_.columns_])
        return pipe

    # -- calibration ----------------------------------------------------------------------
    def _fit_calibration(self, raw: np.ndarray, ya: np.ndarray) -> None:
        self.calibrator_: Any = None
        if self.calibration == "platt":
            self.calibrator_ = LogisticRegression(C=1e6).fit(raw.reshape(-1, 1), ya)
        elif self.calibration == "isotonic":
            self.calibrator_ = IsotonicRegression(out_of_bounds="clip", y_min=0.0,
                                                  y_max=1.0).fit(raw, ya)

    # -- using the model ------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "chosen_model_"):
            raise NotFittedError(_("This {model} is not fitted yet: call fit() first.").format(
                model=type(self).__name__))

    def prepare(self, X: pd.DataFrame) -> pd.DataFrame:
        """The model frame LightGBM sees (internal names ``f0``…; see ``typer_.names``)."""
        self._check_fitted()
        return self.typer_.transform(X)

    def _design(self, F: pd.DataFrame) -> np.ndarray | None:
        """The logistic model's design matrix of ``F`` (None without a logistic model)."""
        return None if self.logistic_ is None else self.logistic_[:-1].transform(F)

    def _raw(self, F: pd.DataFrame, Z: np.ndarray | None = None) -> np.ndarray:
        parts = []
        if self.lightgbm_ is not None:
            parts.append(self.lightgbm_.booster_.predict(F, raw_score=True))
        if self.logistic_ is not None:
            Z = self._design(F) if Z is None else Z
            parts.append(self.logistic_[-1].decision_function(Z))
        return np.asarray(np.mean(parts, axis=0), dtype=float)

    def _calibrated(self, raw: np.ndarray) -> np.ndarray:
        if self.calibrator_ is None:
            return _sigmoid(raw)
        if isinstance(self.calibrator_, IsotonicRegression):
            return np.asarray(self.calibrator_.predict(raw), dtype=float)
        return np.asarray(self.calibrator_.predict_proba(raw.reshape(-1, 1))[:, 1], dtype=float)

    def decision_function(self, X: pd.DataFrame) -> np.ndarray:
        """Uncalibrated log-odds of churn (the sum of :meth:`contributions` and the base)."""
        return self._raw(self.prepare(X))

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Calibrated P(churn) per row, a 1-D array."""
        return self._calibrated(self.decision_function(X))

    def predict_proba_and_contributions(self, X: pd.DataFrame
                                        ) -> tuple[np.ndarray, pd.DataFrame]:
        """:meth:`predict_proba` and :meth:`contributions` of the same rows (the same values),
        the rows prepared once — what scoring with reasons needs."""
        F = self.prepare(X)
        Z = self._design(F)
        proba = self._calibrated(self._raw(F, Z))
        return proba, self._contributions(F, Z).drop(columns=[BASE])

    def contributions(self, X: pd.DataFrame, base: bool = False) -> pd.DataFrame:
        """Per-row, per-source-column contributions to the uncalibrated log-odds of churn.

        LightGBM: SHAP values (``pred_contrib``); logistic: coefficient x standardised value,
        summed over the columns a source column expands to; blend: their average. With
        ``base=True`` a ``(base)`` column holds the log-odds of the average customer, and each
        row sums to :meth:`decision_function`.
        """
        out = self._contributions(self.prepare(X))
        return out if base else out.drop(columns=[BASE])

    def _contributions(self, F: pd.DataFrame, Z: np.ndarray | None = None) -> pd.DataFrame:
        names = [c.name for c in self.typer_.columns_]
        parts = []
        if self.lightgbm_ is not None:
            parts.append(np.asarray(self.lightgbm_.booster_.predict(F, pred_contrib=True)))
        if self.logistic_ is not None:
            Z = self._design(F) if Z is None else Z
            assert Z is not None
            lr = self.logistic_[-1]
            coef = lr.coef_[0]
            per_col = np.zeros((len(names) + 1, len(F)))
            # each design column's term added to its source column's, in order
            for j, src in enumerate(self._lr_source):
                per_col[src] += Z[:, j] * coef[j]
            per_col[-1] = lr.intercept_[0]
            parts.append(per_col.T)
        values = np.mean(parts, axis=0)
        return pd.DataFrame(values, columns=[*names, BASE], index=F.index)


__all__ = ["ChurnClassifier"]
