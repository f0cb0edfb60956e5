"""Churn on a workspace: build features and labels at cut-offs, fit with a time-based
hold-out, register the model, score every active customer with reasons.

Time layout for ``as_of`` = A and a churn window of w days::

    features at A − 2w, labels in (A − 2w, A − w]   -> training set of the evaluated model
    features at A − w,  labels in (A − w, A]        -> hold-out: the evaluation report
    both sets                                       -> the model that is registered
    features at A                                   -> scores: P(churn in (A, A + w])

No feature uses a fact dated after its cut-off, and labels come only from after it. With a
``label_column`` definition there is no time, so the hold-out is a random stratified quarter.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from kehu.analytics.features import customer_features, feature_label
from kehu.analytics.summary import last_transaction_day as last_day
from kehu.errors import KehuInputError
from kehu.i18n import _
from kehu.models import registry
from kehu.models.churn.definition import ChurnDefinition, labels, population
from kehu.models.churn.metrics import summary
from kehu.models.churn.reasons import top_reasons
from kehu.models.churn.tabular import ChurnClassifier

if TYPE_CHECKING:
    from kehu.warehouse import Engine
    from kehu.workspace import Workspace

KIND = "churn"
MIN_ROWS = 200
MIN_POSITIVES = 20


@dataclass
class ChurnFitReport:
    model_id: str
    definition: dict[str, Any]
    as_of: date
    cutoffs: dict[str, str]
    train_rows: int
    holdout_rows: int
    positive_rate: float
    chosen_model: str
    cv_scores: dict[str, float]
    holdout: dict[str, Any]
    importance: list[dict[str, Any]]
    seconds: float
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def labelled_frame(engine: Engine, cutoff: date, d: ChurnDefinition) -> pd.DataFrame:
    """Features at ``cutoff`` and the label observed after it, for the population then."""
    lab = labels(engine, cutoff, d)
    feats = customer_features(engine, cutoff, population=lab)
    return feats.join(lab, "customer_id").to_pandas()


def _xy(frame: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    return frame.drop(columns=["customer_id", "churned"]), frame["churned"].to_numpy(dtype=int)


def _sample(frame: pd.DataFrame, max_rows: int, seed: int) -> pd.DataFrame:
    """At most ``max_rows`` rows, stratified by the label (fitting on a sample on the driver
    is how a 100 M-customer base is modelled too)."""
    if len(frame) <= max_rows:
        return frame
    share = max_rows / len(frame)
    return frame.groupby("churned", group_keys=False).sample(frac=share, random_state=seed)


def _check(frame: pd.DataFrame, cutoff: date) -> None:
    pos = int(frame["churned"].sum()) if len(frame) else 0
    if len(frame) < MIN_ROWS or pos < MIN_POSITIVES or len(frame) - pos < MIN_POSITIVES:
        raise KehuInputError(_(
            "Too little history to train a churn model at {cutoff}: {n} customers in the "
            "population, {pos} churned in the window (need at least {min_n} customers and "
            "{min_pos} of each outcome). Use an earlier --as-of, a longer --window, or another "
            "churn definition.").format(cutoff=cutoff, n=len(frame), pos=pos, min_n=MIN_ROWS,
                                        min_pos=MIN_POSITIVES))


def fit(ws: Workspace, as_of: date | None = None, definition: ChurnDefinition | None = None,
        max_rows: int = 100_000, seed: int = 0) -> ChurnFitReport:
    """Train, evaluate on the time-based hold-out, and register a churn model."""
    t0 = time.perf_counter()
    eng = ws.engine
    d = (definition or ChurnDefinition()).resolve(eng)
    as_of = as_of or last_day(eng)
    w = timedelta(days=d.window_days)
    notes: list[str] = []
    with eng.cached():
        if d.kind == "label_column":
            full = labelled_frame(eng, as_of, d)
            _check(full, as_of)
            rng = np.random.default_rng(seed)
            test = rng.random(len(full)) < 0.25
            train, hold = full[~test], full[test]
            cutoffs = {"features": str(as_of), "holdout": "random 25 %"}
        else:
            train = labelled_frame(eng, as_of - 2 * w, d)
            hold = labelled_frame(eng, as_of - w, d)
            _check(train, as_of - 2 * w)
            _check(hold, as_of - w)
            full = pd.concat([train, hold], ignore_index=True)
            cutoffs = {"train_features": str(as_of - 2 * w),
                       "train_labels": f"{as_of - 2 * w} .. {as_of - w}",
                       "holdout_features": str(as_of - w),
                       "holdout_labels": f"{as_of - w} .. {as_of}"}
    xtr, ytr = _xy(_sample(train, max_rows, seed))
    evaluated = ChurnClassifier(seed=seed).fit(xtr, ytr)
    xh, yh = _xy(hold)
    holdout = summary(yh, evaluated.predict_proba(xh))
    holdout["model"] = evaluated.chosen_model_
    xf, yf = _xy(_sample(full, max_rows, seed))
    model = ChurnClassifier(seed=seed).fit(xf, yf)
    importance = [{"feature": f, "label": feature_label(f), "importance": round(float(v), 4)}
                  for f, v in model.feature_importance_.head(15).items()]
    fitted_scores = model.predict_proba(xf)
    details = {
        "definition": d.model_dump(), "cutoffs": cutoffs, "train_rows": len(xf),
        "population_rows": len(full), "positive_rate": float(yf.mean()),
        "features": list(model.features_), "dropped": model.dropped_,
        "params": {"chosen": model.chosen_model_, "n_trees": getattr(model, "n_trees_", None),
                   "C": getattr(model, "C_", None), "seed": seed, "max_rows": max_rows},
        "cv_scores": model.cv_scores_, "holdout": holdout, "importance": importance,
        "reference": {c: registry.reference_bins(xf[c]) for c in model.features_},
        "score_reference": {"score": registry.reference_bins(fitted_scores)},
    }
    rec = registry.register(ws, KIND, model, as_of, model.chosen_model_, details)
    return ChurnFitReport(rec.model_id, d.model_dump(), as_of, cutoffs, len(xtr),
                          len(hold), float(yf.mean()), model.chosen_model_,
                          {k: round(float(v), 4) for k, v in model.cv_scores_.items()},
                          holdout, importance, round(time.perf_counter() - t0, 2), notes)


def score(ws: Workspace, as_of: date | None = None, rec: registry.ModelRecord | None = None,
          k: int = 3) -> tuple[pd.DataFrame, dict[str, Any]]:
    """``customer_id``, ``churn_risk``, ``churn_reasons`` (JSON) and ``spend_trend_90d`` for
    the customers at risk at ``as_of``, with the latest (or given) churn model; and the drift
    of their features and scores against the model's training data."""
    eng = ws.engine
    rec = rec or registry.get(ws, kind=KIND)
    model: ChurnClassifier = registry.load(ws, rec)
    d = ChurnDefinition(**rec.details.get("definition", {}))
    as_of = as_of or last_day(eng)
    pop = population(eng, as_of, d)
    feats = customer_features(eng, as_of, population=pop).to_pandas()
    if feats.empty:
        return pd.DataFrame(columns=["customer_id", "churn_risk", "churn_reasons",
                                     "spend_trend_90d"]), {}
    x = feats.drop(columns=["customer_id"])
    risk = model.predict_proba(x)
    reasons = top_reasons(model.contributions(x), x, k=k)
    out = pd.DataFrame({
        "customer_id": feats["customer_id"], "churn_risk": risk,
        "churn_reasons": [json.dumps(r, ensure_ascii=False) for r in reasons],
        "spend_trend_90d": feats.get("spend_trend_90d")})
    return out, registry.drift(rec, x, risk)


def needs_refit(ws: Workspace, as_of: date) -> bool:
    """A run fits a new churn model when there is none, or the latest is older than one
    churn window (or was trained on data from after ``as_of``)."""
    models = registry.list_models(ws, KIND)
    if not models:
        return True
    rec = models[-1]
    window = int(rec.details.get("definition", {}).get("window_days", 90))
    return rec.as_of > as_of or (as_of - rec.as_of).days >= window
