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
import pandas as pd
import pyarrow as pa
from ibis.expr.types import Table

from kehu.analytics.clv_scores import FittedClv
from kehu.analytics.lifecycle import lifecycle
from kehu.analytics.profitability import profitability, value_decomposition
from kehu.analytics.rfm import RfmClassScheme, rfm, rfm_classes
from kehu.analytics.satisfaction import loyalty_index
from kehu.analytics.schemes import get_lifecycle_rules, get_tier_scheme
from kehu.analytics.summary import customer_summary, last_transaction_day
from kehu.analytics.tiers import tiers_as_of, trailing_value
from kehu.errors import EngineError, KehuError, KehuInputError
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

    Every step is an Ibis expression kept in the engine (:meth:`Engine.materialize`), model
    scoring runs batch by batch where the data lives (:meth:`Engine.map_batches`), and the
    scores are written by the engine (:meth:`Engine.write`): on Spark no per-customer table
    passes through the driver. The run reads the same tables many times, so they are kept in
    the engine for its duration (:meth:`Engine.cached`)."""
    with ws.engine.cached():
        return _analysis_run(ws, as_of, horizon_days, annual_discount_rate)


#: columns of ``customer_scores`` after run_id, as_of, customer_id — in order, with their
#: types (counts and scores are doubles: the history was first written that way); the
#: churn and CLV columns are present when those models ran
SCORE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("spend", "float64"), ("margin", "float64"), ("tier", "string"),
    ("recency_days", "float64"), ("frequency", "float64"), ("repeat_purchases", "float64"),
    ("monetary_total", "float64"), ("monetary_avg", "float64"), ("tenure_days", "float64"),
    ("r_score", "float64"), ("f_score", "float64"), ("m_score", "float64"),
    ("rfm_score", "float64"), ("trend_ratio", "float64"), ("trend", "string"),
    ("rfm_class", "string"), ("lifecycle_stage", "string"), ("loyalty_index", "float64"),
    ("cluster", "float64"), ("cluster_description", "string"),
    ("churn_risk", "float64"), ("churn_reasons", "string"), ("spend_trend_90d", "float64"),
    ("p_alive", "float64"), ("expected_purchases_12m", "float64"),
    ("expected_spend", "float64"), ("clv", "float64"),
    ("revenue", "float64"), ("product_cost", "float64"), ("discounts", "float64"),
    ("service_cost", "float64"), ("marketing_cost", "float64"), ("profit", "float64"),
    ("unprofitable", "boolean"), ("main_cost", "string"), ("historical_value", "float64"),
    ("current_value", "float64"), ("potential_value", "float64"),
    ("potential_basis", "string"), ("total_value", "float64"),
)


def _analysis_run(ws: Workspace, as_of: date | None, horizon_days: int,
                  annual_discount_rate: float) -> RunReport:
    t0 = time.perf_counter()
    started = datetime.now()
    laps = _Laps()
    eng = ws.engine
    tx = eng.table("transactions")
    customers = eng.table("customers")
    if as_of is None:
        as_of = last_transaction_day(eng)
    run_id = started.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
    purchases = tx.filter(tx.kind.isnull() | (tx.kind != "refund"))
    laps("load")
    scores = eng.materialize(rfm_classes(rfm(tx, as_of), RfmClassScheme()))
    laps("rfm")
    loyalty = eng.materialize(loyalty_index(eng, scores))
    laps("loyalty")
    scheme, scheme_version = get_tier_scheme(ws)   # the workspace's (Settings)
    rules, rules_version = get_lifecycle_rules(ws)
    tiers = eng.materialize(tiers_as_of(tx, customers, as_of, scheme))
    laps("tiers")
    stages = eng.materialize(lifecycle(tx, customers, eng.table("churn_events"), as_of,
                                       rules))
    laps("lifecycle")
    summary = eng.materialize(customer_summary(purchases, as_of, "D"))
    n_customers = int(eng.execute_arrow(tiers.count()).as_py() or 0)
    report = RunReport(run_id, as_of, n_customers, 0.0, stages=laps.stages)
    clv_t, fitted = _clv(eng, summary, purchases, report, horizon_days, annual_discount_rate)
    laps("clv")
    clusters = _clusters(eng, as_of, report)
    laps("clusters")
    churn = _churn(ws, as_of, report)
    laps("churn")
    prof = profitability(tx, eng.table("tickets"), eng.table("campaign_contacts"),
                         eng.table("campaigns"), customers, as_of)
    clv_in = clv_t.select("customer_id", "clv") if clv_t is not None else \
        customers.select("customer_id", clv=ibis.literal(0.0)).limit(0)
    trailing = trailing_value(tx, customers, as_of)
    value = value_decomposition(prof, clv_in, customers, trailing, as_of,
                                cross_sell=_cross_sell_potential(eng, as_of, report))
    extra = eng.materialize(prof.select(
        "customer_id", "revenue", "product_cost", "discounts", "service_cost",
        "marketing_cost", "profit", "unprofitable", "main_cost").join(
        value.select("customer_id", "historical_value", "current_value", "potential_value",
                     "potential_basis", "total_value"), "customer_id"))
    laps("profitability_value")
    # one row per customer (all customers; RFM and CLV empty without purchases)
    parts = [scores, stages.rename(lifecycle_stage="stage"), loyalty, clusters, churn, clv_t,
             extra]
    table = _assemble(tiers, [p for p in parts if p is not None], run_id, as_of)
    if ws.warehouse.exists(SCORES_TABLE):
        table = _in_history_schema(table, ws.warehouse.schema(SCORES_TABLE))
    eng.write(SCORES_TABLE, table, metadata={"kehu.run_id": run_id}, merge_schema=True)
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
                               "stages": report.stages, "engine": eng.name,
                               # what the tiers and stages were computed by (None: built in)
                               "tier_scheme": {"version": scheme_version,
                                               **scheme.model_dump(mode="json")},
                               "lifecycle_rules": {"version": rules_version,
                                                   **rules.model_dump(mode="json")}},
                              default=str, ensure_ascii=False)}], schema=RUNS_SCHEMA))
    return report


def _assemble(base: Table, parts: list[Table], run_id: str, as_of: date) -> Table:
    """``base`` (every customer) left-joined with each part on ``customer_id``, in the column
    order and types of :data:`SCORE_COLUMNS` (columns no part has are left out)."""
    j = base
    owner: dict[str, Table] = {c: base for c in base.columns}
    for p in parts:
        j = j.left_join(p, base.customer_id == p.customer_id)
        for c in p.columns:
            owner.setdefault(c, p)
    cols: dict[str, Any] = {"run_id": ibis.literal(run_id, "string"),
                            "as_of": ibis.literal(as_of, "date"),
                            "customer_id": base.customer_id}
    for name, typ in SCORE_COLUMNS:
        if name in owner:
            cols[name] = owner[name][name].cast(typ)
    return j.select(**cols)


def _in_history_schema(table: Table, schema: pa.Schema) -> Table:
    """The history's columns keep their types (nulls where this run has none); columns a
    newer kehu adds are appended."""
    import ibis.expr.datatypes as dt

    cols: dict[str, Any] = {}
    for f in schema:
        typ = dt.DataType.from_pyarrow(f.type)
        cols[f.name] = table[f.name].cast(typ) if f.name in table.columns else \
            ibis.null(typ)
    for c in table.columns:
        if c not in cols:
            cols[c] = table[c]
    return table.select(**cols)


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
#: the latest run's offers (run_id, as_of and :data:`kehu.models.crosssell.OFFER_COLUMNS`),
#: replaced by every run (Delta's history keeps the older runs'), read by the customer 360
OFFERS_TABLE = "customer_offers"


def _cross_sell_potential(eng: Any, as_of: date, report: RunReport) -> Table | None:
    """Per customer: the expected margin over the next 12 months of their top offers (the
    cross-sell propensity model); None when there is no product data to propose anything,
    and the value decomposition falls back to the peer gap. The offers themselves, computed
    once, replace the content of :data:`OFFERS_TABLE` (empty when none could be made)."""
    from kehu.models.crosssell import offers_expr

    try:
        o = eng.materialize(offers_expr(eng, as_of, POTENTIAL_OFFERS, horizon_days=365,
                                        prior_candidates=POTENTIAL_PRIOR_CANDIDATES))
        v = eng.materialize(o.group_by("customer_id").aggregate(
            potential_value=o.expected_margin.sum()))
        row = eng.execute_arrow(v.aggregate(n=v.count(), total=v.potential_value.sum())) \
            .to_pylist()[0]
    except EngineError:
        raise
    except KehuError as exc:
        _write_offers(eng, None, report.run_id, as_of)
        report.notes.append(_("Potential value from the peer gap: {err}").format(err=exc))
        return None
    _write_offers(eng, o, report.run_id, as_of)
    if not row["n"] or not row["total"]:
        report.notes.append(_("Potential value from the peer gap: no product data to base "
                              "cross-sell offers on."))
        return None
    return v


#: the columns of :data:`OFFERS_TABLE` and their types
OFFERS_SCHEMA: tuple[tuple[str, str], ...] = (
    ("run_id", "string"), ("as_of", "date"), ("customer_id", "string"), ("rank", "int64"),
    ("product_id", "string"), ("propensity", "float64"), ("expected_margin", "float64"),
    ("reason", "string"), ("reason_confidence", "float64"), ("reason_lift", "float64"),
    ("segment", "string"), ("prior", "float64"), ("margin", "float64"))


def _write_offers(eng: Any, offers: Table | None, run_id: str, as_of: date) -> None:
    """Replace :data:`OFFERS_TABLE` with this run's ``offers`` (none: an empty table, so no
    earlier run's offers are shown as current)."""
    if offers is None:
        offers = ibis.memtable(pa.table({c: pa.array([], type=pa.string())
                                         for c, _t in OFFERS_SCHEMA}))
    cols = {"run_id": ibis.literal(run_id, "string"), "as_of": ibis.literal(as_of, "date")}
    out = offers.select(**cols, **{c: offers[c].cast(t) for c, t in OFFERS_SCHEMA
                                   if c not in cols})
    eng.write(OFFERS_TABLE, out, mode="overwrite", metadata={"kehu.run_id": run_id})


def _churn(ws: Workspace, as_of: date, report: RunReport) -> Table | None:
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
    scores, drift = service.score_expr(ws, as_of)
    rec_id = drift.get("model_id")
    report.churn = {"model_id": rec_id, "fitted_in_run": fitted,
                    "scored": int(ws.engine.execute_arrow(scores.count()).as_py() or 0),
                    "drift": drift}
    if fitted:
        report.churn["holdout"] = {k: v for k, v in rep.holdout.items() if k != "calibration"}
    if drift.get("drifted"):
        report.notes.append(_("Churn model {model}: the distribution of {cols} has shifted "
                              "since training (PSI > 0.25); consider retraining.").format(
            model=rec_id, cols=", ".join(drift["drifted"][:5])))
    return scores


def _satisfaction_summary(eng: Any) -> dict[str, Any]:
    """NPS / CSAT overall and by tier, and tickets by category, kept with the run."""
    from kehu.analytics.satisfaction import complaints, nps_csat

    return {"overall": nps_csat(eng).to_pyarrow().to_pylist()[0],
            "by_tier": nps_csat(eng, "tier").to_pyarrow().to_pylist(),
            "tickets": complaints(eng).to_pyarrow().to_pylist()}


def _clusters(eng: Any, as_of: date, report: RunReport) -> Table | None:
    """Behavioural cluster label and description per buyer: k-means fitted on the driver
    (every buyer, or a sample of ``fit_sample`` of them), every buyer labelled where the data
    lives, the clusters described from the engine's means. None when too few buyers."""
    from kehu.models.clusters import FEATURES, BehaviourClusters, behaviour_features_expr
    from kehu.warehouse.engine import arrow_to_pandas

    feats = eng.materialize(behaviour_features_expr(eng, as_of))
    m = BehaviourClusters()
    sample = arrow_to_pandas(eng.collect_sample(feats, m.fit_sample, "customer_id",
                                                m.random_state), feats.schema())
    try:
        m.fit(sample.set_index("customer_id")[list(FEATURES)])
    except KehuInputError as exc:
        report.notes.append(_("Clusters skipped: {err}").format(err=exc))
        return None

    def label(df: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({"customer_id": df["customer_id"],
                             "cluster": m.predict(df).astype("int64")})

    labels = eng.map_batches(feats, label, pa.schema([("customer_id", pa.string()),
                                                      ("cluster", pa.int64())]))
    j = feats.join(labels, "customer_id")
    by = eng.execute_arrow(j.group_by("cluster").aggregate(
        size=j.count(), **{f: j[f].mean() for f in FEATURES})).to_pandas()
    everyone = eng.execute_arrow(feats.aggregate(
        **{f"m_{f}": feats[f].mean() for f in FEATURES},
        **{f"s_{f}": feats[f].std(how="pop") for f in FEATURES})).to_pylist()[0]
    by = by.set_index("cluster").sort_index()
    m.describe_clusters(by[list(FEATURES)], by["size"],
                        pd.Series({f: everyone[f"m_{f}"] for f in FEATURES}),
                        pd.Series({f: everyone[f"s_{f}"] for f in FEATURES}))
    report.clusters = {str(c.label): c.description for c in m.clusters_}
    desc = ibis.cases(*[(labels.cluster == c.label, c.description) for c in m.clusters_],
                      else_=ibis.null("string"))
    return labels.select("customer_id", cluster=labels.cluster.cast("float64"),
                         cluster_description=desc)


def _clv(eng: Any, summary: Table, purchases: Table, report: RunReport, horizon_days: int,
         rate: float) -> tuple[Table | None, FittedClv | None]:
    """Fit BG/NBD + Gamma-Gamma on the summary's sufficient statistics and score every buyer;
    None when the data cannot support the models (the reason goes to the report)."""
    from kehu.analytics import clv_scores

    try:
        fitted = clv_scores.fit(eng, summary)
    except clv_scores.TooLittleData:
        report.notes.append(_("CLV skipped: fewer than 10 customers with repeat purchases."))
        return None, None
    except EngineError:
        raise
    except KehuError as exc:
        report.notes.append(_("CLV skipped: {err}").format(err=exc))
        return None, None
    margin = clv_scores.margin_rate(eng, purchases)
    months = max(1, round(horizon_days / 30))
    table = clv_scores.scores(eng, fitted, months, margin, rate)
    bg, gg = fitted.bgnbd, fitted.gamma_gamma
    report.clv = {"bgnbd": bg.params_, "bgnbd_ll": bg.log_likelihood_,
                  "gamma_gamma": gg.params_, "margin_rate": margin, "horizon_months": months,
                  "annual_discount_rate": rate, "fit": fitted.basis}
    return table, fitted
