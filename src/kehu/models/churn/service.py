"""Churn on a workspace: build features and labels at cut-offs, fit with a time-based
hold-out, register the model, score every active customer with reasons.

Time layout for ``as_of`` = A and a churn window of w days::

    features at A − 2w, labels in (A − 2w, A − w]   -> training set of the evaluated model
    features at A − w,  labels in (A − w, A]        -> hold-out: the evaluation report
    both sets                                       -> the model that is registered
                                                       (the evaluated one's kind, trees, C)
    features at A                                   -> scores: P(churn in (A, A + w])

No feature uses a fact dated after its cut-off, and labels come only from after it. With a
``label_column`` definition there is no time, so the hold-out is a random stratified quarter.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa

from kehu.analytics.features import customer_features, feature_label
from kehu.analytics.summary import last_transaction_day as last_day
from kehu.errors import KehuInputError
from kehu.i18n import _
from kehu.models import registry
from kehu.models.churn.definition import ChurnDefinition, labels, population
from kehu.models.churn.metrics import summary
from kehu.models.churn.reasons import reasons_json
from kehu.models.churn.tabular import ChurnClassifier
from kehu.warehouse.engine import arrow_to_pandas

if TYPE_CHECKING:
    from ibis.expr.types import Table

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


#: customers the hold-out evaluation and the drift check look at, at most (a random sample
#: above it); the training rows are capped by ``max_rows``
MAX_EVAL_ROWS = 200_000


def labelled_expr(engine: Engine, cutoff: date, d: ChurnDefinition,
                  labelled: Table | None = None) -> Table:
    """Features at ``cutoff`` and the label observed after it, for the population then (or
    for the customers of ``labelled``, a table of their labels)."""
    lab = labelled if labelled is not None else labels(engine, cutoff, d)
    feats = customer_features(engine, cutoff, population=lab)
    return feats.join(lab, "customer_id")


def labelled_frame(engine: Engine, cutoff: date, d: ChurnDefinition,
                   max_rows: int | None = None, seed: int = 0,
                   labelled: Table | None = None) -> pd.DataFrame:
    """:func:`labelled_expr` (or ``labelled``, its materialized table) on the driver,
    ordered by customer: every row, or a random sample of about ``max_rows`` when there are
    more (a model fits on a sample on the driver however large the customer base)."""
    expr = labelled if labelled is not None else labelled_expr(engine, cutoff, d)
    cap = max_rows if max_rows is not None else 2**62
    return arrow_to_pandas(engine.collect_sample(expr, cap, "customer_id", seed),
                           expr.schema())


def _labelled_sample(engine: Engine, cutoff: date, d: ChurnDefinition, max_rows: int,
                     seed: int) -> tuple[pd.DataFrame, tuple[int, int]]:
    """Features and labels at ``cutoff`` on the driver, ordered by customer — of every
    customer of the population, or of a random sample of about ``max_rows`` of them drawn
    before any feature is built (the features of a million customers are not needed to fit
    on 100 k) — and the population's size and churners."""
    lab = engine.materialize(labels(engine, cutoff, d))
    counts = _counts(engine, lab)
    _check(counts, cutoff)
    if counts[0] > max_rows:
        # each customer with probability max_rows / n (Bernoulli), as collect_sample draws
        lab = engine.materialize(lab.sample(max_rows / counts[0], seed=seed))
    expr = labelled_expr(engine, cutoff, d, lab)
    frame = arrow_to_pandas(engine.execute_arrow(expr.order_by("customer_id")),
                            expr.schema())
    return frame, counts


def _counts(engine: Engine, labelled: Table) -> tuple[int, int]:
    """Customers in a labelled population and how many of them churned."""
    row = engine.execute_arrow(labelled.aggregate(n=labelled.count(),
                                                  pos=labelled.churned.sum())).to_pylist()[0]
    return int(row["n"] or 0), int(row["pos"] or 0)


def _xy(frame: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    return frame.drop(columns=["customer_id", "churned"]), frame["churned"].to_numpy(dtype=int)


def _sample(frame: pd.DataFrame, max_rows: int, seed: int) -> pd.DataFrame:
    """At most ``max_rows`` rows, stratified by the label (fitting on a sample on the driver
    is how a 100 M-customer base is modelled too)."""
    if len(frame) <= max_rows:
        return frame
    share = max_rows / len(frame)
    return frame.groupby("churned", group_keys=False).sample(frac=share, random_state=seed)


def _check(counts: tuple[int, int], cutoff: date) -> None:
    n, pos = counts
    if n < MIN_ROWS or pos < MIN_POSITIVES or n - pos < MIN_POSITIVES:
        raise KehuInputError(_(
            "Too little history to train a churn model at {cutoff}: {n} customers in the "
            "population, {pos} churned in the window (need at least {min_n} customers and "
            "{min_pos} of each outcome). Use an earlier --as-of, a longer --window, or another "
            "churn definition.").format(cutoff=cutoff, n=n, pos=pos, min_n=MIN_ROWS,
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
            full, counts = _labelled_sample(eng, as_of, d,
                                            max(max_rows, MAX_EVAL_ROWS) * 4 // 3, seed)
            rng = np.random.default_rng(seed)
            test = rng.random(len(full)) < 0.25
            train, hold = full[~test], full[test]
            population = counts[0]
            cutoffs = {"features": str(as_of), "holdout": "random 25 %"}
        else:
            train, counts = _labelled_sample(eng, as_of - 2 * w, d, max_rows, seed)
            hold, counts_hold = _labelled_sample(eng, as_of - w, d,
                                                 max(max_rows, MAX_EVAL_ROWS), seed)
            full = pd.concat([train, hold], ignore_index=True)
            population = counts[0] + counts_hold[0]
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
    # the model the hold-out evaluated — its kind, trees and C — refitted on both sets (its
    # folds now only calibrate): what is registered is what was evaluated, for about a
    # third of the work of a second search
    model = ChurnClassifier(seed=seed, model=evaluated.chosen_model_,
                            n_trees=evaluated.n_trees_ or None,
                            C=None if np.isnan(evaluated.C_) else evaluated.C_).fit(xf, yf)
    importance = [{"feature": f, "label": feature_label(f), "importance": round(float(v), 4)}
                  for f, v in model.feature_importance_.head(15).items()]
    fitted_scores = model.predict_proba(xf)
    details = {
        "definition": d.model_dump(), "cutoffs": cutoffs, "train_rows": len(xf),
        "population_rows": population, "positive_rate": float(yf.mean()),
        "features": list(model.features_), "dropped": model.dropped_,
        "params": {"chosen": model.chosen_model_, "n_trees": getattr(model, "n_trees_", None),
                   "C": getattr(model, "C_", None), "seed": seed, "max_rows": max_rows},
        "cv_scores": evaluated.cv_scores_, "holdout": holdout, "importance": importance,
        "reference": {c: registry.reference_bins(xf[c]) for c in model.features_},
        "score_reference": {"score": registry.reference_bins(fitted_scores)},
    }
    rec = registry.register(ws, KIND, model, as_of, model.chosen_model_, details)
    return ChurnFitReport(rec.model_id, d.model_dump(), as_of, cutoffs, len(xtr),
                          len(hold), float(yf.mean()), model.chosen_model_,
                          {k: round(float(v), 4) for k, v in evaluated.cv_scores_.items()},
                          holdout, importance, round(time.perf_counter() - t0, 2), notes)


SCORE_SCHEMA = pa.schema([("customer_id", pa.string()), ("churn_risk", pa.float64()),
                          ("churn_reasons", pa.string()), ("spend_trend_90d", pa.float64())])


def score_expr(ws: Workspace, as_of: date | None = None,
               rec: registry.ModelRecord | None = None, k: int = 3
               ) -> tuple[Table, dict[str, Any]]:
    """``customer_id``, ``churn_risk``, ``churn_reasons`` (JSON) and ``spend_trend_90d`` for
    the customers at risk at ``as_of``, with the latest (or given) churn model — scored batch
    by batch where the data lives (the executors on Spark) and kept in the engine; and the
    drift of their features and scores against the model's training data (on a sample of at
    most :data:`MAX_EVAL_ROWS` customers)."""
    eng = ws.engine
    rec = rec or registry.get(ws, kind=KIND)
    model: ChurnClassifier = registry.load(ws, rec)
    d = ChurnDefinition(**rec.details.get("definition", {}))
    as_of = as_of or last_day(eng)
    # kept: the features read it once per fact table
    pop = eng.materialize(population(eng, as_of, d))
    feats = eng.materialize(customer_features(eng, as_of, population=pop))

    def score_batch(frame: pd.DataFrame) -> pd.DataFrame:
        x = frame.drop(columns=["customer_id"])
        risk, contrib = model.predict_proba_and_contributions(x)
        return pd.DataFrame({
            "customer_id": frame["customer_id"], "churn_risk": risk,
            "churn_reasons": reasons_json(contrib, x, k=k),
            "spend_trend_90d": frame.get("spend_trend_90d")})

    scored = eng.map_batches(feats, score_batch, SCORE_SCHEMA)
    sample = arrow_to_pandas(eng.collect_sample(feats, MAX_EVAL_ROWS, "customer_id"),
                             feats.schema())
    if sample.empty:
        return scored, {}
    x = sample.drop(columns=["customer_id"])
    return scored, registry.drift(rec, x, model.predict_proba(x))


def score(ws: Workspace, as_of: date | None = None, rec: registry.ModelRecord | None = None,
          k: int = 3) -> tuple[pd.DataFrame, dict[str, Any]]:
    """:func:`score_expr` collected into a DataFrame (ordered by customer)."""
    scored, drift = score_expr(ws, as_of, rec, k)
    out = ws.engine.execute_arrow(scored.order_by("customer_id")).to_pandas()
    return out, drift


def needs_refit(ws: Workspace, as_of: date) -> bool:
    """A run fits a new churn model when there is none, or the latest is older than one
    churn window (or was trained on data from after ``as_of``)."""
    models = registry.list_models(ws, KIND)
    if not models:
        return True
    rec = models[-1]
    window = int(rec.details.get("definition", {}).get("window_days", 90))
    return rec.as_of > as_of or (as_of - rec.as_of).days >= window
