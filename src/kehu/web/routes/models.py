"""Models: a card per trained model — hold-out metrics, calibration curve (chart and table),
strongest drivers, drift since training — every version of the registry, and the API over
the same cards and one customer's scores (account managers: only their own customers)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response

from kehu.customers import get_visible
from kehu.i18n import N_, _
from kehu.models import cards
from kehu.models.cards import CustomerScores, ModelCard
from kehu.models.registry import PSI_WARN
from kehu.web.deps import Configurer, CurrentUser, WorkspaceDep, apply_locale, render
from kehu.web.routes.api import PREFIX, PROBLEM
from kehu.web.routes.customers import scope_of

router = APIRouter(include_in_schema=False)
api = APIRouter(prefix=PREFIX, tags=["models"],
                responses={401: PROBLEM, 403: PROBLEM, 422: PROBLEM})

ModelId = Annotated[str, Path(min_length=1, max_length=200, description="e.g. churn-v3")]
KIND_LABELS = {"churn": N_("Churn"), "response": N_("Campaign response"),
               "crosssell": N_("Cross-sell"), "clv": N_("Customer lifetime value")}
METRIC_LABELS = {"auc": N_("AUC (area under the ROC curve)"),
                 "pr_auc": N_("PR-AUC (area under the precision-recall curve)"),
                 "lift_top_decile": N_("Lift in the top 10%"),
                 "capture_top_decile": N_("Share of positives in the top 10%"),
                 "lift_top_20": N_("Lift in the top 20%"),
                 "capture_top_20": N_("Share of positives in the top 20%"),
                 "response_rate": N_("Response rate"),
                 "bgnbd_log_likelihood": N_("BG/NBD log-likelihood")}
#: metrics that are shares (shown as percentages)
SHARES = frozenset({"capture_top_decile", "capture_top_20", "response_rate", "hit_rate",
                    "precision", "recall", "coverage"})


def _calibration_chart(c: ModelCard) -> dict[str, Any]:
    top = max([b["predicted"] for b in c.calibration] + [b["observed"] for b in c.calibration]
              + [0.01])
    return {"tooltip": {"trigger": "item"}, "legend": {"top": 0},
            "grid": {"left": 60, "right": 20, "top": 40, "bottom": 40},
            "xAxis": {"type": "value", "name": _("predicted"), "min": 0, "max": round(top, 4)},
            "yAxis": {"type": "value", "name": _("observed"), "min": 0, "max": round(top, 4)},
            "series": [
                {"type": "line", "name": _("Model"), "symbolSize": 8,
                 "data": [[round(b["predicted"], 5), round(b["observed"], 5)]
                          for b in c.calibration]},
                {"type": "line", "name": _("Perfect calibration"), "symbol": "none",
                 "lineStyle": {"type": "dashed"}, "data": [[0, 0], [round(top, 4),
                                                                   round(top, 4)]]}]}


def _importance_chart(c: ModelCard) -> dict[str, Any]:
    items = list(reversed(c.importance[:15]))  # the strongest at the top
    return {"grid": {"left": 220, "right": 20, "top": 20, "bottom": 30},
            "xAxis": {"type": "value"},
            "yAxis": {"type": "category", "data": [i["label"] for i in items]},
            "series": [{"type": "bar", "name": _("importance"),
                        "data": [i.get("importance") for i in items]}]}


def _view(c: ModelCard) -> dict[str, Any]:
    return {"card": c, "kind_label": _(KIND_LABELS.get(c.kind, c.kind)),
            "calibration_chart": _calibration_chart(c) if c.calibration else None,
            "importance_chart": _importance_chart(c) if c.importance else None}


def metric_labels() -> dict[str, str]:
    return {k: _(v) for k, v in METRIC_LABELS.items()}


@router.get("/models")
def models_page(request: Request, user: Configurer, ws: WorkspaceDep) -> Response:
    """The newest model of each kind as a card, and every registered version."""
    apply_locale(request)
    return render(request, "models.html", {
        "views": [_view(c) for c in cards.model_cards(ws)],
        "versions": cards.model_versions(ws), "metric_labels": metric_labels(),
        "shares": SHARES, "psi_warn": PSI_WARN,
        "kind_labels": {k: _(v) for k, v in KIND_LABELS.items()}})


@router.get("/models/{model_id}")
def model_page(model_id: ModelId, request: Request, user: Configurer,
               ws: WorkspaceDep) -> Response:
    """One registered model's card (an older version: without drift)."""
    apply_locale(request)
    return render(request, "model.html", {
        "view": _view(cards.model_card(ws, model_id)), "metric_labels": metric_labels(),
        "shares": SHARES, "psi_warn": PSI_WARN})


# -- API ------------------------------------------------------------------------------------


@api.get("/models", response_model=list[ModelCard])
def api_models(user: Configurer, ws: WorkspaceDep) -> list[ModelCard]:
    """The newest model of each kind: hold-out metrics, calibration, drivers, drift; and the
    CLV models of the latest analysis run."""
    return cards.model_cards(ws)


@api.get("/models/{model_id}", response_model=ModelCard, responses={404: PROBLEM})
def api_model(model_id: ModelId, user: Configurer, ws: WorkspaceDep) -> ModelCard:
    """One registered model's card (drift only for the newest of its kind)."""
    return cards.model_card(ws, model_id)


@api.get("/scores/{customer_id}", response_model=CustomerScores, responses={404: PROBLEM})
def api_scores(customer_id: Annotated[str, Path(min_length=1, max_length=80)],
               user: CurrentUser, ws: WorkspaceDep) -> CustomerScores:
    """The customer's results in their latest analysis run (RFM, tier, lifecycle stage,
    churn risk and reasons, CLV, value …); another manager's customer is a 404 for an
    account manager."""
    get_visible(ws, customer_id, scope_of(user))
    return cards.customer_scores(ws, customer_id)
