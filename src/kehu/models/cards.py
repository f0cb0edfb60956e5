"""Model cards: what a person needs to trust a trained model — its hold-out metrics, the
calibration curve, the strongest drivers and whether the data has drifted since training —
for every model of the registry (:mod:`kehu.models.registry`), plus the CLV models the
latest analysis run fitted (BG/NBD and Gamma-Gamma are refitted by every run, not
registered); and one customer's latest scores.

**Drift.** The analysis run scores customers with the latest churn model and records the
population stability index (PSI) of every feature and of the score against the training
data in its ``_runs`` row; a card shows that when the latest run used its model. The score's
PSI is also computed here (:func:`score_drift`) from the scores the run stored in
``customer_scores`` — the same number, checked independently, and available for a run that
did not record it. PSI = Σ (actual − expected) · ln(actual / expected) over the training
deciles (shares clipped at 0.0001); < 0.1 stable, 0.1–0.25 some shift, > 0.25 a large shift.

>>> expected_calibration_error([{"predicted": 0.1, "observed": 0.2, "n": 10},
...                             {"predicted": 0.5, "observed": 0.5, "n": 30}])
0.025
"""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import ibis
import pandas as pd
from pydantic import BaseModel, Field

from kehu.errors import NotFoundError
from kehu.i18n import _
from kehu.models import registry

if TYPE_CHECKING:
    from kehu.workspace import Workspace

#: the registry kinds whose score the analysis run stores, and the column it lands in
SCORE_COLUMNS = {"churn": "churn_risk"}


class Drift(BaseModel):
    """Population stability of a model's inputs and score between training and scoring."""

    source: str = Field(description="'run': recorded by the analysis run; 'computed': the "
                        "score's PSI computed from the stored scores")
    run_id: str | None = None
    as_of: date | None = None
    psi: dict[str, float] = Field(default_factory=dict, description="feature -> PSI; "
                                  "'(score)' is the model's score")
    score_psi: float | None = Field(None, description="PSI of the score, computed from "
                                    "customer_scores")
    scored: int | None = Field(None, description="customers scored")
    drifted: list[str] = Field(default_factory=list)
    max_psi: float = 0.0


class ModelCard(BaseModel):
    model_id: str
    kind: str
    version: int | None
    algorithm: str
    as_of: date
    created_at: datetime | None
    latest: bool = Field(description="the newest model of its kind")
    metrics: dict[str, float] = Field(default_factory=dict,
                                      description="hold-out metrics (AUC, lift, capture …)")
    calibration: list[dict[str, float]] = Field(default_factory=list, description="per score "
                                                "decile: mean predicted, observed rate, n")
    calibration_error: float | None = Field(None, description="expected calibration error: "
                                            "the n-weighted mean |predicted - observed| of "
                                            "the deciles")
    cv_scores: dict[str, float] = Field(default_factory=dict)
    importance: list[dict[str, Any]] = Field(default_factory=list, description="feature, "
                                             "label, importance (mean |contribution|)")
    params: dict[str, Any] = Field(default_factory=dict)
    cutoffs: dict[str, Any] = Field(default_factory=dict)
    train_rows: int | None = None
    positive_rate: float | None = None
    drift: Drift | None = None


def expected_calibration_error(bins: list[dict[str, Any]]) -> float | None:
    """The n-weighted mean absolute gap between predicted and observed rate of the bins."""
    n = sum(float(b.get("n") or 0) for b in bins)
    if not bins or n <= 0:
        return None
    gap = sum(float(b.get("n") or 0) * abs(float(b["predicted"]) - float(b["observed"]))
              for b in bins)
    return round(gap / n, 6)


def _numbers(d: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in d.items()
            if isinstance(v, int | float) and not isinstance(v, bool)}


def latest_run(ws: Workspace) -> dict[str, Any] | None:
    """The newest completed analysis run (``run_id``, ``as_of``, ``details`` parsed)."""
    from kehu.analytics.run import RUNS_TABLE

    if not ws.warehouse.exists(RUNS_TABLE):
        return None
    runs = ws.warehouse.read(RUNS_TABLE).to_pylist()
    if not runs:
        return None
    run = max(runs, key=lambda r: (r["as_of"], r["finished_at"], r["run_id"]))
    return {**run, "details": json.loads(run.get("details") or "{}")}


def score_drift(ws: Workspace, rec: registry.ModelRecord,
                run: dict[str, Any] | None = None) -> tuple[float, int] | None:
    """PSI of the scores ``run`` (default: the latest) stored for ``rec``'s kind against the
    score distribution at training, and how many scores; None when the model has no score
    reference, its scores are not stored or the run used another model."""
    column = SCORE_COLUMNS.get(rec.kind)
    ref = rec.details.get("score_reference", {}).get("score")
    run = run or latest_run(ws)
    if column is None or ref is None or run is None:
        return None
    used = run["details"].get(rec.kind, {}).get("model_id")
    if used is not None and used != rec.model_id:
        return None
    from kehu.analytics.run import SCORES_TABLE

    sc = ws.engine.table(SCORES_TABLE)
    if column not in sc.columns:
        return None
    got = sc.filter((sc.run_id == ibis.literal(run["run_id"])) & sc[column].notnull())
    values = got.select(column).to_pyarrow().column(0).to_numpy()
    if len(values) == 0:
        return None
    return round(registry.psi(ref, values), 4), len(values)


def _drift(ws: Workspace, rec: registry.ModelRecord, run: dict[str, Any] | None
           ) -> Drift | None:
    computed = score_drift(ws, rec, run) if run is not None else None
    recorded = (run or {}).get("details", {}).get(rec.kind, {}) if run else {}
    d = recorded.get("drift") if recorded.get("model_id") == rec.model_id else None
    if not d and computed is None:
        return None
    assert run is not None
    psi = {k: float(v) for k, v in (d or {}).get("psi", {}).items()}
    if computed is not None and "(score)" not in psi:
        psi["(score)"] = computed[0]
    drifted = sorted((c for c, v in psi.items() if v > registry.PSI_WARN), key=lambda c: -psi[c])
    return Drift(source="run" if d else "computed", run_id=run["run_id"], as_of=run["as_of"],
                 psi=psi, score_psi=computed[0] if computed else None,
                 scored=recorded.get("scored") or (computed[1] if computed else None),
                 drifted=drifted, max_psi=max(psi.values(), default=0.0))


def card(ws: Workspace, rec: registry.ModelRecord, latest: bool = True,
         run: dict[str, Any] | None = None) -> ModelCard:
    """The card of one registered model (``run``: the analysis run to take drift from)."""
    from kehu.analytics.features import feature_label

    d = rec.details
    holdout = d.get("holdout", {}) if isinstance(d.get("holdout"), dict) else {}
    calibration = [b for b in holdout.get("calibration", []) if isinstance(b, dict)]
    importance = [{**i, "label": feature_label(str(i.get("feature", "")))}
                  for i in d.get("importance", []) if isinstance(i, dict)]
    return ModelCard(
        model_id=rec.model_id, kind=rec.kind, version=rec.version, algorithm=rec.algorithm,
        as_of=rec.as_of, created_at=rec.created_at, latest=latest,
        metrics=_numbers(holdout), calibration=calibration,
        calibration_error=expected_calibration_error(calibration),
        cv_scores=_numbers(d.get("cv_scores") or {}), importance=importance,
        params=d.get("params") or {}, cutoffs=d.get("cutoffs") or {},
        train_rows=d.get("train_rows"), positive_rate=d.get("positive_rate"),
        drift=_drift(ws, rec, run) if latest else None)


def clv_card(run: dict[str, Any]) -> ModelCard | None:
    """The CLV models (BG/NBD purchases, Gamma-Gamma spend) the run fitted, or None."""
    clv = run["details"].get("clv") or {}
    if not clv.get("bgnbd"):
        return None
    params = {f"bgnbd.{k}": v for k, v in clv["bgnbd"].items()}
    params |= {f"gamma_gamma.{k}": v for k, v in (clv.get("gamma_gamma") or {}).items()}
    params |= {k: clv[k] for k in ("margin_rate", "horizon_months", "annual_discount_rate")
               if k in clv}
    metrics = {"bgnbd_log_likelihood": float(clv["bgnbd_ll"])} if "bgnbd_ll" in clv else {}
    return ModelCard(model_id=f"clv@{run['run_id']}", kind="clv", version=None,
                     algorithm="BG/NBD + Gamma-Gamma", as_of=run["as_of"],
                     created_at=run.get("finished_at"), latest=True, metrics=metrics,
                     params=params)


def model_cards(ws: Workspace) -> list[ModelCard]:
    """The card of the newest model of each kind (drift from the latest analysis run), then
    the CLV models of that run."""
    run = latest_run(ws)
    newest: dict[str, registry.ModelRecord] = {}
    for rec in registry.list_models(ws):  # oldest first: the last one of a kind wins
        newest[rec.kind] = rec
    cards = [card(ws, rec, True, run) for rec in newest.values()]
    c = clv_card(run) if run is not None else None
    return cards + ([c] if c is not None else [])


def model_card(ws: Workspace, model_id: str) -> ModelCard:
    """The card of one registered model (drift only for the newest of its kind)."""
    rec = registry.get(ws, model_id)
    latest = registry.get(ws, kind=rec.kind).model_id == rec.model_id
    return card(ws, rec, latest, latest_run(ws) if latest else None)


def model_versions(ws: Workspace) -> list[dict[str, Any]]:
    """Every registered model, newest first: id, kind, version, as-of, algorithm, AUC."""
    out = [{"model_id": r.model_id, "kind": r.kind, "version": r.version, "as_of": r.as_of,
            "created_at": r.created_at, "algorithm": r.algorithm,
            "auc": (r.details.get("holdout") or {}).get("auc")}
           for r in registry.list_models(ws)]
    return sorted(out, key=lambda r: (r["created_at"], r["version"]), reverse=True)


# -- one customer's scores ------------------------------------------------------------------


class CustomerScores(BaseModel):
    customer_id: str
    run_id: str
    as_of: date
    scores: dict[str, Any] = Field(description="every result of the run for the customer")
    churn_reasons: list[dict[str, Any]] = Field(default_factory=list, description="the "
                                                "churn model's strongest reasons")
    churn_model: str | None = Field(None, description="the churn model the run used")


def customer_scores(ws: Workspace, customer_id: str) -> CustomerScores:
    """The customer's results in their latest analysis run; :class:`NotFoundError` before
    the first run or for a customer no run scored."""
    from kehu.analytics.run import RUNS_TABLE, SCORES_TABLE

    if not ws.warehouse.exists(SCORES_TABLE):
        raise NotFoundError(_("No analysis run yet: run 'kehu run' to score customers."))
    sc = ws.engine.table(SCORES_TABLE)
    rows = sc.filter(sc.customer_id == ibis.literal(customer_id)) \
        .order_by([ibis.desc("as_of"), ibis.desc("run_id")]).limit(1).to_pyarrow().to_pylist()
    if not rows:
        raise NotFoundError(_("No scores for customer '{id}': no analysis run has scored "
                              "them.").format(id=customer_id))
    row = {k: (None if isinstance(v, float) and pd.isna(v) else v)
           for k, v in rows[0].items()}
    reasons: list[dict[str, Any]] = []
    raw = row.get("churn_reasons")
    if raw:
        try:
            parsed = json.loads(raw) if isinstance(raw, str) else raw
            reasons = [r for r in parsed if isinstance(r, dict)] if isinstance(parsed,
                                                                                list) else []
        except ValueError:
            reasons = []
    churn_model = None
    if ws.warehouse.exists(RUNS_TABLE):
        r = ws.engine.table(RUNS_TABLE)
        found = r.filter(r.run_id == ibis.literal(row["run_id"])).select("details") \
            .to_pyarrow().to_pylist()
        if found:
            churn_model = json.loads(found[0]["details"] or "{}").get("churn", {}) \
                .get("model_id")
    scores = {k: v for k, v in row.items()
              if k not in ("customer_id", "run_id", "as_of", "churn_reasons")}
    return CustomerScores(customer_id=customer_id, run_id=row["run_id"], as_of=row["as_of"],
                          scores=scores, churn_reasons=reasons, churn_model=churn_model)
