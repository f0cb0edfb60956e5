"""Fit the campaign response model with a time-based hold-out and register it.

Time layout for ``as_of`` = A and a response window of w days::

    treatment contacts made on or before A − w       -> the rows (their windows have closed)
    features at the day before each contact          -> no fact from the contact day or later
    earlier campaigns                                -> training set of the evaluated model
    the latest campaigns (>= 25 % of the rows)       -> hold-out: the evaluation report
    all rows                                         -> the model that is registered

The classifier is :class:`~kehu.models.churn.tabular.ChurnClassifier` (a general calibrated
binary classifier: LightGBM or regularised logistic regression, chosen by inner CV).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from kehu.analytics.features import feature_label
from kehu.analytics.summary import last_transaction_day as last_day
from kehu.errors import KehuInputError
from kehu.i18n import _
from kehu.models import registry
from kehu.models.churn.metrics import summary
from kehu.models.churn.tabular import ChurnClassifier
from kehu.models.response.frame import contact_frame, model_inputs, time_split

if TYPE_CHECKING:
    from kehu.workspace import Workspace

KIND = "response"
MIN_ROWS = 100
MIN_POSITIVES = 10
#: a tier needs this many past responses with revenue for its own revenue per response
MIN_TIER_RESPONSES = 10
Z95 = 1.959964
#: the tier of customers without one
NO_TIER = "(none)"


@dataclass
class ResponseFitReport:
    model_id: str
    as_of: date
    window_days: int
    cutoffs: dict[str, str]
    train_rows: int
    holdout_rows: int
    rows: int
    response_rate: float
    chosen_model: str
    cv_scores: dict[str, float]
    holdout: dict[str, Any]
    importance: list[dict[str, Any]]
    revenue_per_response: dict[str, Any]
    seconds: float
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def count_interval(p: Any, z: float = Z95) -> tuple[float, float, float]:
    """Expected number of successes of independent Bernoulli(p_i) trials (a Poisson-binomial
    count) and a normal interval: Σp ± z·√Σp(1−p), clipped to [0, n].

    >>> count_interval([0.5] * 100)
    (50.0, 40.2, 59.8)
    """
    pa_ = np.asarray(p, dtype=float)
    mean = float(pa_.sum())
    sd = math.sqrt(float((pa_ * (1 - pa_)).sum()))
    lo, hi = max(mean - z * sd, 0.0), min(mean + z * sd, float(len(pa_)))
    return round(mean, 4), round(lo, 1), round(hi, 1)


def revenue_per_response(frame: pd.DataFrame, min_n: int = MIN_TIER_RESPONSES
                         ) -> dict[str, Any]:
    """Mean revenue of a response, overall and per value tier at the contact's cut-off (a
    tier with fewer than ``min_n`` responses carrying revenue falls back to the overall mean).

    >>> f = pd.DataFrame({"responded": [1, 1, 1, 0], "tier": ["A", "A", "B", "B"],
    ...                   "response_revenue": [100.0, 200.0, 30.0, None]})
    >>> revenue_per_response(f, min_n=2)
    {'overall': 110.0, 'by_tier': {'A': 150.0}, 'responses': 3}
    """
    pos = frame[(frame.responded == 1) & frame.response_revenue.notna()]
    overall = float(pos.response_revenue.mean()) if len(pos) else 0.0
    by: dict[str, float] = {}
    if "tier" in pos.columns and len(pos):
        tier = pos.tier.astype("string").fillna(NO_TIER)
        g = pos.groupby(tier).response_revenue.agg(["mean", "size"])
        by = {str(t): round(float(r["mean"]), 4) for t, r in g.iterrows() if r["size"] >= min_n}
    return {"overall": round(overall, 4), "by_tier": by, "responses": len(pos)}


def _check(frame: pd.DataFrame, what: str) -> None:
    pos = int(frame.responded.sum()) if len(frame) else 0
    if len(frame) < MIN_ROWS or pos < MIN_POSITIVES or len(frame) - pos < MIN_POSITIVES:
        raise KehuInputError(_(
            "Too few treatment contacts to train a response model ({what}): {n} contacts, "
            "{pos} responded (need at least {min_n} contacts and {min_pos} of each outcome). "
            "Import more campaigns with their contacts and responses, or use a later "
            "--as-of or a longer --window.").format(what=what, n=len(frame), pos=pos,
                                                     min_n=MIN_ROWS, min_pos=MIN_POSITIVES))


def _sample(frame: pd.DataFrame, max_rows: int, seed: int) -> pd.DataFrame:
    if len(frame) <= max_rows:
        return frame
    share = max_rows / len(frame)
    return frame.groupby("responded", group_keys=False).sample(frac=share, random_state=seed)


def _span(frame: pd.DataFrame) -> str:
    t = pd.to_datetime(frame.contact_time)
    return f"{t.min().date()} .. {t.max().date()}"


def fit_response(ws: Workspace, as_of: date | None = None, window_days: int = 30,
                 max_rows: int = 200_000, holdout_share: float = 0.25, seed: int = 0
                 ) -> ResponseFitReport:
    """Train on earlier campaigns, evaluate on the latest, register the model fitted on all
    treatment contacts as kind ``response``."""
    t0 = time.perf_counter()
    if window_days < 1:
        raise KehuInputError(_("The '{name}' parameter must be an int >= {min}. Got {v} "
                               "instead.").format(name="window_days", min=1, v=window_days))
    eng = ws.engine
    as_of = as_of or last_day(eng)
    with eng.cached():
        full = contact_frame(eng, window_days, as_of)
    _check(full, _("all contacts"))
    test = time_split(full, holdout_share)
    train, hold = full[~test], full[test]
    _check(train, _("training campaigns"))
    _check(hold, _("hold-out campaigns"))
    tr = _sample(train, max_rows, seed)
    evaluated = ChurnClassifier(seed=seed).fit(model_inputs(tr), tr.responded.to_numpy())
    p = evaluated.predict_proba(model_inputs(hold))
    y = hold.responded.to_numpy(dtype=int)
    holdout = summary(y, p)
    pred, lo, hi = count_interval(p)
    holdout.update({"model": evaluated.chosen_model_, "rows": len(hold),
                    "response_rate": float(y.mean()), "predicted_responses": pred,
                    "predicted_interval": [lo, hi], "actual_responses": int(y.sum()),
                    "campaigns": sorted(hold.campaign_id.astype(str).unique().tolist())})
    sample = _sample(full, max_rows, seed)
    x = model_inputs(sample)
    model = ChurnClassifier(seed=seed).fit(x, sample.responded.to_numpy())
    importance = [{"feature": f, "label": feature_label(f), "importance": round(float(v), 4)}
                  for f, v in model.feature_importance_.head(15).items()]
    cutoffs = {"contacts": f"<= {as_of - pd.Timedelta(days=window_days)}",
               "features": _("the day before each contact"),
               "train_contacts": _span(train), "holdout_contacts": _span(hold)}
    rpr = revenue_per_response(full)
    notes: list[str] = []
    if rpr["responses"] == 0:
        notes.append(_("No past response carries revenue: expected revenue will be 0."))
    details = {
        "window_days": window_days, "label": "responses", "cutoffs": cutoffs,
        "train_rows": len(sample), "rows": len(full), "positive_rate": float(full.responded
                                                                             .mean()),
        "features": list(model.features_), "dropped": model.dropped_,
        "params": {"chosen": model.chosen_model_, "n_trees": getattr(model, "n_trees_", None),
                   "C": getattr(model, "C_", None), "seed": seed, "max_rows": max_rows},
        "cv_scores": model.cv_scores_, "holdout": holdout, "importance": importance,
        "revenue_per_response": rpr,
        "reference": {c: registry.reference_bins(x[c]) for c in model.features_},
        "score_reference": {"score": registry.reference_bins(model.predict_proba(x))},
    }
    rec = registry.register(ws, KIND, model, as_of, model.chosen_model_, details)
    return ResponseFitReport(
        rec.model_id, as_of, window_days, cutoffs, len(tr), len(hold), len(full),
        float(full.responded.mean()), model.chosen_model_,
        {k: round(float(v), 4) for k, v in model.cv_scores_.items()}, holdout, importance, rpr,
        round(time.perf_counter() - t0, 2), notes)
