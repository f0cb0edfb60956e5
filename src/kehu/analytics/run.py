"""The analysis run (``kehu run``): compute every per-customer result — RFM, the eight
classes, value tier, lifecycle stage, CLV, profitability, historical / current / potential
value — as of a date and append it to the warehouse with a run id, so every score keeps its
history.

Results land in ``customer_scores`` (one row per customer and run) and the run itself in
``_runs`` (as-of date, times, model parameters). Both are appended in one commit each; a run
is complete when its ``_runs`` row exists.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import ibis
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute

from kehu.analytics.forecast import FittedClv
from kehu.analytics.lifecycle import LifecycleRules, lifecycle
from kehu.analytics.profitability import profitability, value_decomposition
from kehu.analytics.rfm import RfmClassScheme, rfm, rfm_classes
from kehu.analytics.satisfaction import loyalty_index
from kehu.analytics.summary import customer_summary, last_transaction_day
from kehu.analytics.tiers import TierScheme, tiers_as_of, trailing_value
from kehu.errors import KehuError, KehuInputError
from kehu.i18n import _

if TYPE_CHECKING:
    from kehu.workspace import Workspace

SCORES_TABLE = "customer_scores"
RUNS_TABLE = "_runs"
RUNS_SCHEMA = pa.schema([("run_id", pa.string()), ("as_of", pa.date32()),
                         ("started_at", pa.timestamp("us")), ("finished_at", pa.timestamp("us")),
                         ("customers", pa.int64()), ("details", pa.string())])


@dataclass
class RunReport:
    run_id: str
    as_of: date
    customers: int
    seconds: float
    clv: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    segments: dict[str, int] = field(default_factory=dict)
    clusters: dict[str, str] = field(default_factory=dict)
    satisfaction: dict[str, Any] = field(default_factory=dict)
    #: the churn model used (id, whether fitted in this run, hold-out metrics, drift)
    churn: dict[str, Any] = field(default_factory=dict)
    #: seconds per stage, in order
    stages: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def analysis_run(ws: Workspace, as_of: date | None = None, horizon_days: int = 365,
                 annual_discount_rate: float = 0.10) -> RunReport:
    """Compute RFM, the eight classes, value tiers and CLV for every customer as of ``as_of``
    (default: the last transaction day) and append them to ``customer_scores``.

    The run reads the same tables many times, so they are copied into the engine once for
    its duration (:meth:`Engine.cached`)."""
    with ws.engine.cached():
        return _analysis_run(ws, as_of, horizon_days, annual_discount_rate)


def _analysis_run(ws: Workspace, as_of: date | None, horizon_days: int,
                  annual_discount_rate: float) -> RunReport:
    t0 = time.perf_counter()
    started = datetime.now()
    laps = _Laps()
    eng = ws.engine
    tx = eng.table("transactions")
    if as_of is None:
        as_of = last_transaction_day(eng)
    run_id = started.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
    purchases = tx.filter(tx.kind.isnull() | (tx.kind != "refund"))
    laps("load")
    rfm_t = rfm(tx, as_of)
    scores = rfm_classes(rfm_t, RfmClassScheme()).to_pyarrow()
    laps("rfm")
    loyalty = loyalty_index(eng, rfm_t).to_pandas().set_index("customer_id")
    laps("loyalty")
    tiers = tiers_as_of(tx, eng.table("customers"), as_of, TierScheme()).to_pyarrow()
    laps("tiers")
    stages = lifecycle(tx, eng.table("customers"), eng.table("churn_events"), as_of,
                       LifecycleRules()).to_pandas().set_index("customer_id")
    laps("lifecycle")
    summary = customer_summary(purchases, as_of, "D").to_pyarrow()
    report = RunReport(run_id, as_of, tiers.num_rows, 0.0, stages=laps.stages)
    clv_cols, fitted = _clv(summary, purchases, report, horizon_days, annual_discount_rate)
    laps("clv")
    # assemble one row per customer (all customers; RFM and CLV empty without purchases)
    base = tiers.to_pandas().set_index("customer_id")
    base = base.join(scores.to_pandas().set_index("customer_id"), how="left")
    base = base.join(stages.rename(columns={"stage": "lifecycle_stage"}), how="left")
    base = base.join(loyalty, how="left")
    base = base.join(_clusters(eng, as_of, report), how="left")
    laps("clusters")
    churn = _churn(ws, as_of, report)
    if churn is not None:
        base = base.join(churn, how="left")
    laps("churn")
    if clv_cols is not None:
        base = base.join(clv_cols, how="left")
    prof = profitability(tx, eng.table("tickets"), eng.table("campaign_contacts"),
                         eng.table("campaigns"), eng.table("customers"), as_of)
    clv_t = ibis.memtable(clv_cols["clv"].reset_index()) if clv_cols is not None else \
        ibis.memtable({"customer_id": ["-"], "clv": [0.0]})
    trailing = trailing_value(tx, eng.table("customers"), as_of)
    value = value_decomposition(prof, clv_t, eng.table("customers"), trailing, as_of,
                                cross_sell=_cross_sell_potential(eng, as_of, report))
    extra = prof.select("customer_id", "revenue", "product_cost", "discounts", "service_cost",
                        "marketing_cost", "profit", "unprofitable", "main_cost").join(
        value.select("customer_id", "historical_value", "current_value", "potential_value",
                     "potential_basis", "total_value"), "customer_id")
    base = base.join(extra.to_pandas().set_index("customer_id"), how="left")
    laps("profitability_value")
    base = base.reset_index()
    base.insert(0, "run_id", run_id)
    base.insert(1, "as_of", as_of)
    table = pa.Table.from_pandas(base, preserve_index=False)
    if ws.warehouse.exists(SCORES_TABLE):
        # the history's columns keep their types; columns a newer kehu adds are appended
        schema = ws.warehouse.schema(SCORES_TABLE)
        old = [table.column(f.name).cast(f.type) if f.name in table.column_names
               else pa.nulls(table.num_rows, f.type) for f in schema]
        new = [f for f in table.schema if f.name not in schema.names]
        table = pa.Table.from_arrays(old + [table.column(f.name) for f in new],
                                     schema=pa.schema(list(schema) + new))
    ws.warehouse.append(SCORES_TABLE, table, metadata={"kehu.run_id": run_id},
                        merge_schema=True)
    laps("write_scores")
    report.satisfaction = _satisfaction_summary(eng)
    laps("satisfaction")
    from kehu.analytics import cube_aggregate

    cube_aggregate.write(eng, run_id)
    laps("cube_aggregate")
    _snapshot_saved_segments(ws, run_id, report)
    laps("segments")
    _forecast(ws, run_id, as_of, report, fitted)
    laps("forecast")
    report.seconds = round(time.perf_counter() - t0, 3)
    # the run is complete when its _runs row exists
    ws.warehouse.append(RUNS_TABLE, pa.Table.from_pylist([{
        "run_id": run_id, "as_of": as_of, "started_at": started, "finished_at": datetime.now(),
        "customers": report.customers,
        "details": json.dumps({"clv": report.clv, "notes": report.notes,
                               "satisfaction": report.satisfaction,
                               "clusters": report.clusters, "churn": report.churn,
                               "stages": report.stages},
                              default=str, ensure_ascii=False)}], schema=RUNS_SCHEMA))
    return report


class _Laps:
    """Seconds spent per stage of the run."""

    def __init__(self) -> None:
        self.stages: dict[str, float] = {}
        self._t = time.perf_counter()

    def __call__(self, stage: str) -> None:
        now = time.perf_counter()
        self.stages[stage] = round(now - self._t, 3)
        self._t = now


FORECASTS_TABLE = "forecasts"


def _forecast(ws: Workspace, run_id: str, as_of: date, report: RunReport,
              fitted: FittedClv | None) -> None:
    """The 12-month forecast, overall and by tier, appended to ``forecasts`` for this run."""
    from kehu.analytics.forecast import forecast

    if not report.clv or fitted is None:
        return
    frames = [forecast(ws.engine, as_of, 12, fitted=fitted).assign(group_by="all", group="all")]
    by_tier = forecast(ws.engine, as_of, 12, "tier", fitted=fitted)
    frames.append(by_tier.rename(columns={"tier": "group"}).assign(group_by="tier"))
    df = pd.concat(frames, ignore_index=True).assign(run_id=run_id, as_of=as_of)
    ws.warehouse.append(FORECASTS_TABLE, pa.Table.from_pandas(df, preserve_index=False),
                        merge_schema=True)


def _snapshot_saved_segments(ws: Workspace, run_id: str, report: RunReport) -> None:
    """Record the membership of every segment saved in the app store, for this run."""
    from sqlalchemy import select

    from kehu.segments import SegmentSpec, evaluate
    from kehu.store.models import Definition

    with ws.store.session() as s:
        defs = list(s.scalars(select(Definition).where(Definition.kind == "segment")))
    for d in defs:
        try:
            spec = SegmentSpec.parse(d.spec, f"segment {d.name}")
            res = evaluate(ws, spec.model_copy(update={"as_of": None}), snapshot=True,
                           run_id=run_id)
            report.segments[d.name] = res.size
        except KehuError as exc:
            report.notes.append(_("Segment {name} skipped: {err}").format(name=d.name,
                                                                           err=exc))


#: next best offers behind the potential value: how many per customer, and how many of the
#: segment's most adopted products join the rule-based candidates (fewer than the
#: ``kehu crosssell offers`` default of 50, to keep the run's work at 1 M customers bounded)
POTENTIAL_OFFERS = 3
POTENTIAL_PRIOR_CANDIDATES = 10


def _cross_sell_potential(eng: Any, as_of: date, report: RunReport) -> Any:
    """Per customer: the expected margin over the next 12 months of their top offers (the
    cross-sell propensity model); None when there is no product data to propose anything,
    and the value decomposition falls back to the peer gap."""
    from kehu.models.crosssell import offers_expr

    try:
        o = offers_expr(eng, as_of, POTENTIAL_OFFERS, horizon_days=365,
                        prior_candidates=POTENTIAL_PRIOR_CANDIDATES)
        v = o.group_by("customer_id").aggregate(potential_value=o.expected_margin.sum())
        table = v.to_pyarrow()
    except KehuError as exc:
        report.notes.append(_("Potential value from the peer gap: {err}").format(err=exc))
        return None
    if table.num_rows == 0 or not pa.compute.sum(table.column("potential_value")).as_py():
        report.notes.append(_("Potential value from the peer gap: no product data to base "
                              "cross-sell offers on."))
        return None
    return ibis.memtable(table)


def _churn(ws: Workspace, as_of: date, report: RunReport) -> pd.DataFrame | None:
    """Churn risk and reasons per customer at risk: a new model when the last one is older
    than its churn window (or there is none), else the latest; None when none can be fitted
    (the reason goes to the notes)."""
    from kehu.models.churn import service

    fitted = False
    if service.needs_refit(ws, as_of):
        try:
            rep = service.fit(ws, as_of)
            fitted = True
        except KehuInputError as exc:
            report.notes.append(_("Churn model not trained: {err}").format(err=exc))
            from kehu.models import registry

            if not registry.list_models(ws, service.KIND):
                return None
    scores, drift = service.score(ws, as_of)
    rec_id = drift.get("model_id")
    report.churn = {"model_id": rec_id, "fitted_in_run": fitted,
                    "scored": len(scores), "drift": drift}
    if fitted:
        report.churn["holdout"] = {k: v for k, v in rep.holdout.items() if k != "calibration"}
    if drift.get("drifted"):
        report.notes.append(_("Churn model {model}: the distribution of {cols} has shifted "
                              "since training (PSI > 0.25); consider retraining.").format(
            model=rec_id, cols=", ".join(drift["drifted"][:5])))
    return scores.set_index("customer_id")


def _satisfaction_summary(eng: Any) -> dict[str, Any]:
    """NPS / CSAT overall and by tier, and tickets by category, kept with the run."""
    from kehu.analytics.satisfaction import complaints, nps_csat

    return {"overall": nps_csat(eng).to_pyarrow().to_pylist()[0],
            "by_tier": nps_csat(eng, "tier").to_pyarrow().to_pylist(),
            "tickets": complaints(eng).to_pyarrow().to_pylist()}


def _clusters(eng: Any, as_of: date, report: RunReport) -> pd.DataFrame:
    """Behavioural cluster label and description per buyer (empty when too few buyers)."""
    from kehu.models.clusters import BehaviourClusters, behaviour_features

    feats = behaviour_features(eng, as_of)
    try:
        m = BehaviourClusters().fit(feats)
    except KehuInputError as exc:
        report.notes.append(_("Clusters skipped: {err}").format(err=exc))
        return pd.DataFrame(columns=["cluster", "cluster_description"], dtype="object")
    desc = {c.label: c.description for c in m.clusters_}
    report.clusters = {str(c.label): c.description for c in m.clusters_}
    return pd.DataFrame({"cluster": m.labels_.astype("int64"),
                         "cluster_description": m.labels_.map(desc)})


def _clv(summary: pa.Table, purchases: Any, report: RunReport, horizon_days: int,
         rate: float) -> tuple[pd.DataFrame | None, FittedClv | None]:
    """Fit BG/NBD + Gamma-Gamma on the summary and score every buyer; None when the data
    cannot support the models (the reason goes to the report)."""
    from kehu.models.clv import BetaGeo, GammaGamma, customer_lifetime_value

    df = summary.to_pandas().set_index("customer_id")
    x, tx, t, mv = (df[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T",
                                                           "monetary_value"))
    if len(df) < 20 or (x > 0).sum() < 10:
        report.notes.append(_("CLV skipped: fewer than 10 customers with repeat purchases."))
        return None, None
    try:
        bg = BetaGeo().fit(x, tx, t)
        keep = (x > 0) & (mv > 0)
        gg = GammaGamma().fit(x[keep], mv[keep])
    except KehuError as exc:
        report.notes.append(_("CLV skipped: {err}").format(err=exc))
        return None, None
    margin_row = purchases.aggregate(rev=purchases.amount.sum(),
                                     cost=purchases.cost.sum()).to_pyarrow().to_pylist()[0]
    margin = 1.0
    if margin_row["cost"] and margin_row["rev"]:
        margin = max(0.0, 1 - margin_row["cost"] / margin_row["rev"])
    months = max(1, round(horizon_days / 30))
    clv = customer_lifetime_value(bg, gg, x, tx, t, mv, months=months, margin=margin,
                                  annual_discount_rate=rate, periods_per_month=30.0)
    report.clv = {"bgnbd": bg.params_, "bgnbd_ll": bg.log_likelihood_,
                  "gamma_gamma": gg.params_, "margin_rate": margin, "horizon_months": months,
                  "annual_discount_rate": rate}
    return pd.DataFrame({
        "p_alive": bg.probability_alive(x, tx, t),
        "expected_purchases_12m": bg.expected_purchases(365.0, x, tx, t),
        "expected_spend": gg.expected_spend(x, mv),
        "clv": np.asarray(clv),
    }, index=df.index), FittedClv(df, bg, gg)
