"""The data behind the web app's dashboard (issue 6): one call, every section, JSON-safe and
shaped for Apache ECharts, cached per analysis run.

Every section carries ``chart`` (an ECharts option fragment: ``series`` and, where the chart
has categories, ``xAxis``; no colours or layout — that is the front end's business), a
``table`` (``columns`` + ``rows``) with the same numbers for screen readers and export, and
``summary`` (the section's scalar figures). Definitions:

- **headline** — :func:`kehu.analytics.headline.headline` (customers, buyers, active in the
  last 90 days, revenue, margin, repeat rate, as of the last transaction day) plus the margin
  of the last 12 months over the same window as ``revenue_12m`` (365 days up to that day).
- **tiers** — customers, trailing-12-month revenue (``spend``) and margin per value tier of
  the latest run (the basis the tiers are assigned on), best tier first, names localised.
- **rfm** — the eight RFM classes of the latest run (treemap: area = customers), with each
  class's share of customers and of revenue (``monetary_total``: spend up to the run's
  as-of); customers without purchases have no class and are counted in ``unclassified``.
- **lifecycle** — :func:`kehu.analytics.lifecycle.transitions` between ``flows_from``
  (default: a year before ``flows_to``) and ``flows_to`` (default: the run's as-of): sankey
  ``nodes`` (one per stage and date; names carry the date, so the graph has no cycles) and
  ``links``. Customers unknown at the start come from ``not_yet_customer``.
- **churn_risk** — 20 equal bins on [0, 1] of the latest run's ``churn_risk`` (bin ``i`` is
  ``[i/20, (i+1)/20)``, the last one includes 1), and ``above_half``: risk > 0.5. Customers
  the churn model did not score are counted in ``unscored``.
- **clv** — log bins on the "1-2-5" series (``[0, 1)``, ``[1, 2)``, ``[2, 5)``, ``[5, 10)``
  … up to the largest CLV): CLV is heavy-tailed, so equal-width bins would put almost
  everyone in the first; each bin has its customers and CLV total, the summary the quartiles,
  p90 and p99. Negative CLVs (none from BG/NBD + Gamma-Gamma) would fall in ``(-∞, 0)``.
- **pareto** — customers with purchases ranked by revenue (all time, refunds net; ties by
  id), at each of 100 points ``p`` the share of revenue of the top ``⌈n·p/100⌉`` customers;
  ``top20_share`` is the point at 20 % — the headline's ``top20_revenue_share``.
- **trends** — revenue, margin, buyers and orders of the 24 calendar months ending with the
  run's as-of month, from :func:`kehu.analytics.cube.cube` (so the run's monthly aggregate
  answers when it is current: ``from_aggregate``); months without sales are zeros.
- **kpis** — the headline of :func:`kehu.kpi.crm_kpis` over 12 months up to the run's
  as-of, with campaign results from :func:`kehu.campaigns.measure.campaign_results`; the chart
  is the monthly retention rate and NPS.

**Cache.** Results are kept in a module-level LRU cache (:data:`CACHE_SIZE` entries) keyed by
the workspace folder, the latest run id, the Delta versions of :data:`KEY_TABLES`, the versions
of the saved tier scheme and lifecycle rules, the locale and the flow dates. Any import, any
new analysis run (a ``_runs`` commit and a ``customer_scores`` commit) or any change to the
tables the sections read gives a new key, so a stale entry is never returned for them. What the
key does not see: the rest of the app store (tasks on time in the KPIs) and campaign
measurement inputs written outside these tables; those figures refresh with the next run or
data change, or at once with :func:`clear_cache`. The returned :class:`Dashboard` is shared
with the cache: treat it as read-only (``to_dict()`` returns a fresh copy). Two simultaneous
cold calls for the same key compute once: the second waits for the first.

**On disk.** Each computed dashboard is also written (JSON) to
``<workspace>/.cache/dashboard/<key digest>.json`` (the newest :data:`DISK_KEEP` kept), so a
new process — the web app after ``kehu run`` — answers from disk instead of computing:
``kehu run`` calls :func:`warm` for the company's language, and ``kehu serve`` warms every
language in the background at start. A dashboard read back from disk has its dates as ISO
strings in ``summary`` (as ``to_dict`` gives them).
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import math
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ibis

from kehu.analytics.lifecycle import STAGES, transitions
from kehu.analytics.rfm import RfmClassScheme
from kehu.analytics.run import RUNS_TABLE, SCORES_TABLE
from kehu.analytics.schemes import get_lifecycle_rules, get_tier_scheme
from kehu.errors import KehuError, KehuInputError, NotFoundError
from kehu.i18n import N_, _, normalise_locale, set_locale

if TYPE_CHECKING:
    from ibis.expr.types import Table

    from kehu.workspace import Workspace

#: warehouse tables whose Delta versions are part of the cache key
KEY_TABLES = ("transactions", "customers", "products", "churn_events", SCORES_TABLE,
              RUNS_TABLE, "surveys", "tickets", "campaigns", "campaign_contacts", "responses")
#: dashboards kept (one per workspace, run, locale and flow dates)
CACHE_SIZE = 16
CHURN_BINS = 20
PARETO_POINTS = 100
TREND_MONTHS = 24
KPI_MONTHS = 12

STAGE_LABELS = {"prospect": N_("prospect"), "new": N_("new"), "active": N_("active"),
                "growing": N_("growing"), "declining": N_("declining"),
                "dormant": N_("dormant"), "churned": N_("churned"), "won_back": N_("won back"),
                "not_yet_customer": N_("not yet a customer")}

TITLES = {"headline": N_("Headline"), "tiers": N_("Value tiers"), "rfm": N_("RFM classes"),
          "lifecycle": N_("Lifecycle flows"), "churn_risk": N_("Churn risk"),
          "clv": N_("Customer lifetime value"), "pareto": N_("Pareto curve"),
          "trends": N_("Monthly trends"), "kpis": N_("CRM effectiveness")}


# -- the result -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Section:
    """One dashboard block: chart data, the same numbers as a table, scalar figures."""

    key: str
    title: str
    chart: dict[str, Any]
    columns: list[dict[str, str]]
    rows: list[list[Any]]
    summary: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["table"] = {"columns": d.pop("columns"), "rows": d.pop("rows")}
        out: dict[str, Any] = json_safe(d)
        return out


@dataclass(frozen=True)
class Dashboard:
    """Every section of the dashboard for the latest analysis run (see the module docs)."""

    run_id: str
    as_of: date
    locale: str
    sections: dict[str, Section]
    computed_at: datetime
    compute_seconds: float
    #: seconds each section took to compute (on the call that computed them)
    section_seconds: dict[str, float] = field(default_factory=dict)
    #: sections that could not be computed (their notes say why); such a dashboard is not
    #: cached, so the next call tries again
    failed: list[str] = field(default_factory=list)
    #: True when this call was answered from the cache
    cached: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe (``json.dumps`` works): dates as ISO strings, NaN as ``None``."""
        return {"run_id": self.run_id, "as_of": self.as_of.isoformat(), "locale": self.locale,
                "computed_at": self.computed_at.isoformat(timespec="seconds"),
                "compute_seconds": self.compute_seconds,
                "section_seconds": dict(self.section_seconds),
                "failed": list(self.failed), "cached": self.cached,
                "sections": {k: s.to_dict() for k, s in self.sections.items()}}


def json_safe(v: Any) -> Any:
    """Plain JSON types: dates as ISO strings, numpy scalars as numbers, NaN/inf as None.

    >>> json_safe({"d": date(2025, 1, 2), "x": float("nan"), "t": (1, 2.5)})
    {'d': '2025-01-02', 'x': None, 't': [1, 2.5]}
    """
    if isinstance(v, dict):
        return {str(k): json_safe(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [json_safe(x) for x in v]
    if isinstance(v, datetime | date):
        return v.isoformat()
    if hasattr(v, "item") and not isinstance(v, str | bytes):  # numpy / pandas scalars
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if v is not None and not isinstance(v, str | int | float | bool):
        return str(v)
    return v


# -- cache ----------------------------------------------------------------------------------

_LOCK = threading.Lock()
_CACHE: OrderedDict[tuple[Any, ...], Dashboard] = OrderedDict()
#: one lock per key being computed, so simultaneous cold calls compute once
_COMPUTING: dict[tuple[Any, ...], threading.Lock] = {}
#: where computed dashboards are kept on disk, under the workspace folder
DISK_DIR = Path(".cache") / "dashboard"
#: bump when the stored form changes: older files are then ignored
DISK_FORMAT = 1
#: dashboards kept on disk per workspace (two languages of the last few runs)
DISK_KEEP = 8
_RUNS: dict[tuple[str, int], tuple[str, date]] = {}
_STATS = {"hits": 0, "misses": 0}


def clear_cache(ws: Workspace | None = None) -> None:
    """Forget every cached dashboard in memory (for data the cache key does not see), and
    with ``ws`` the ones that workspace keeps on disk."""
    with _LOCK:
        _CACHE.clear()
        _RUNS.clear()
        _STATS.update(hits=0, misses=0)
    if ws is not None:
        for path in (ws.root / DISK_DIR).glob("*.json"):
            path.unlink(missing_ok=True)


def cache_info() -> dict[str, int]:
    """Hits, misses and entries of the dashboard cache.

    >>> sorted(cache_info())
    ['entries', 'hits', 'misses']
    """
    with _LOCK:
        return {**_STATS, "entries": len(_CACHE)}


def _latest_run(ws: Workspace, runs_version: int | None) -> tuple[str, date]:
    """The latest complete run (id, as-of); memoised per ``_runs`` version (each run adds
    exactly one ``_runs`` commit)."""
    if runs_version is None or ws.warehouse.head_version(SCORES_TABLE) is None:
        raise NotFoundError(_("The dashboard needs an analysis run, and {path} has none yet. "
                              "Run 'kehu run' first.").format(path=ws.root))
    memo = (str(ws.root), runs_version)
    with _LOCK:
        got = _RUNS.get(memo)
    if got is None:
        rows = ws.warehouse.read(RUNS_TABLE, columns=["run_id", "as_of"],
                                 version=runs_version).to_pylist()
        last = max(rows, key=lambda r: r["run_id"])
        got = (str(last["run_id"]), last["as_of"])
        with _LOCK:
            _RUNS[memo] = got
    return got


def dashboard(ws: Workspace, locale: str = "zh_CN", flows_from: date | None = None,
              flows_to: date | None = None) -> Dashboard:
    """Every dashboard section for the latest analysis run, labels in ``locale``.

    Answered from the cache when nothing it depends on changed (see the module docs) in well
    under a millisecond; the first call for a run computes every section — about 1.5 minutes
    at 1 M customers / 10 M lines on 2 cores, most of it the CRM KPIs
    (``benchmarks/bench_dashboard.py``). Other flow dates than the default year compute the
    lifecycle section alone and take the rest from the run's cached dashboard. Raises
    :class:`~kehu.errors.NotFoundError` before the first analysis run and
    :class:`~kehu.errors.KehuInputError` for flow dates out of order; a section that fails
    with a :class:`~kehu.errors.KehuError` is returned empty with the message in its notes
    and listed in ``failed`` (and the result is not cached)."""
    loc = normalise_locale(locale)
    versions = tuple(ws.warehouse.head_version(t) for t in KEY_TABLES)
    runs_version = versions[KEY_TABLES.index(RUNS_TABLE)]
    run_id, as_of = _latest_run(ws, runs_version)
    end = flows_to or as_of
    start = flows_from or _year_before(end)
    if start >= end:
        raise KehuInputError(_("The 'flows_from' date must be before 'flows_to'. Got {a} and "
                               "{b} instead.").format(a=start, b=end))
    default = (_year_before(as_of), as_of)
    # the saved tier scheme (names) and lifecycle rules (flows) live in the app store
    specs = (get_tier_scheme(ws)[1], get_lifecycle_rules(ws)[1])
    base_key = (str(ws.root), run_id, versions, specs, loc, *default)

    def whole() -> Dashboard:
        disk = _disk_path(ws, base_key)
        d = _read_disk(disk)
        if d is None:
            # labels from gettext (and crm_kpis's notes) in the requested locale, this call
            ctx = contextvars.copy_context()
            d = ctx.run(_compute, ws, loc, run_id, as_of, *default)
            if not d.failed:
                _write_disk(disk, d)
        return d

    base = _once(base_key, whole)
    if (start, end) == default:
        return base

    def with_flows() -> Dashboard:
        # other flow dates change one section: the rest is the run's dashboard as cached
        # (recomputing every section for them took ~1.5 minutes at 1 M customers)
        ctx = contextvars.copy_context()
        flows, seconds, failed = ctx.run(_flows_only, ws, loc, start, end)
        return replace(base, sections={**base.sections, "lifecycle": flows},
                       computed_at=datetime.now(), compute_seconds=seconds,
                       section_seconds={"lifecycle": seconds},
                       failed=[*base.failed, *failed], cached=False)

    return _once((*base_key[:-2], start, end), with_flows)


def _once(key: tuple[Any, ...], compute: Callable[[], Dashboard]) -> Dashboard:
    """The cached dashboard of ``key``, else ``compute()`` kept in the cache unless a section
    failed; simultaneous cold calls for one key compute once (the others wait for it)."""
    hit = _cached(key)
    if hit is not None:
        return hit
    with _LOCK:
        computing = _COMPUTING.setdefault(key, threading.Lock())
    with computing:  # a second cold call for the key waits here, then finds it cached
        hit = _cached(key)
        if hit is not None:
            return hit
        with _LOCK:
            _STATS["misses"] += 1
        d = compute()
        with _LOCK:
            _COMPUTING.pop(key, None)
            if d.failed:
                return d
            _CACHE[key] = d
            _CACHE.move_to_end(key)
            while len(_CACHE) > CACHE_SIZE:
                _CACHE.popitem(last=False)
    return d


def warm(ws: Workspace, locales: tuple[str, ...] = ("zh_CN", "en")) -> dict[str, float]:
    """Compute (or load from disk) the dashboard of the latest run in each of ``locales``,
    so the web app answers at once; seconds per locale. Nothing to do before the first run.

    >>> import tempfile
    >>> from kehu.workspace import Workspace
    >>> warm(Workspace.init(tempfile.mkdtemp()))
    {}
    """
    took: dict[str, float] = {}
    for loc in locales:
        t0 = time.perf_counter()
        try:
            dashboard(ws, loc)
        except NotFoundError:
            return took
        took[loc] = round(time.perf_counter() - t0, 3)
    return took


def _cached(key: tuple[Any, ...]) -> Dashboard | None:
    with _LOCK:
        hit = _CACHE.get(key)
        if hit is None:
            return None
        _CACHE.move_to_end(key)
        _STATS["hits"] += 1
        return replace(hit, cached=True)


def _disk_path(ws: Workspace, key: tuple[Any, ...]) -> Path:
    digest = hashlib.sha256(repr((DISK_FORMAT, key[1:])).encode()).hexdigest()[:32]
    return ws.root / DISK_DIR / f"{digest}.json"


def _read_disk(path: Path) -> Dashboard | None:
    """A dashboard written by :func:`_write_disk`, or None (missing, unreadable, old)."""
    try:
        raw = json.loads(path.read_text("utf-8"))
        if raw.get("format") != DISK_FORMAT:
            return None
        d = raw["dashboard"]
        sections = {k: Section(key=k, title=v["title"], chart=v["chart"],
                               columns=v["table"]["columns"], rows=v["table"]["rows"],
                               summary=v["summary"], notes=v["notes"])
                    for k, v in d["sections"].items()}
        return Dashboard(run_id=d["run_id"], as_of=date.fromisoformat(d["as_of"]),
                         locale=d["locale"], sections=sections,
                         computed_at=datetime.fromisoformat(d["computed_at"]),
                         compute_seconds=d["compute_seconds"],
                         section_seconds=d["section_seconds"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_disk(path: Path, d: Dashboard) -> None:
    """Keep ``d`` on disk (written to a temporary file, then renamed: readers never see half
    a file); the oldest files beyond :data:`DISK_KEEP` go. A read-only folder is no error."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps({"format": DISK_FORMAT, "dashboard": d.to_dict()},
                                  ensure_ascii=False), "utf-8")
        tmp.replace(path)
        old = sorted(path.parent.glob("*.json"), key=lambda p: p.stat().st_mtime)
        for stale in old[:-DISK_KEEP]:
            stale.unlink(missing_ok=True)
    except OSError:
        return


def _year_before(d: date) -> date:
    try:
        return d.replace(year=d.year - 1)
    except ValueError:  # 29 February
        return d.replace(year=d.year - 1, day=28)


# -- computing ------------------------------------------------------------------------------


def _compute(ws: Workspace, loc: str, run_id: str, as_of: date, start: date,
             end: date) -> Dashboard:
    set_locale(loc)
    t0 = time.perf_counter()
    eng = ws.engine
    laps: dict[str, float] = {}
    failed: list[str] = []

    def timed(key: str, f: Callable[..., Section], *args: Any) -> Section:
        """One section; a KehuError (missing data, a model that cannot score …) becomes an
        empty section carrying the message, so the rest of the page still shows."""
        t = time.perf_counter()
        try:
            sec = f(*args)
        except KehuError as exc:
            failed.append(key)
            sec = Section(key, _title(key), {"series": []}, [], [], notes=[str(exc)])
        laps[key] = round(time.perf_counter() - t, 3)
        return sec

    with eng.cached():  # one copy of each table for all sections (crm_kpis reads many times)
        scores = eng.table(SCORES_TABLE)
        scores = scores.filter(scores.run_id == run_id)
        # a run without a churn model (too little history) or without CLV has no such
        # column: the sections then say so instead of failing
        missing = {c: ibis.null("float64") for c in ("churn_risk", "clv")
                   if c not in scores.columns}
        if missing:
            scores = scores.mutate(**missing)
        buyers: list[int] = []
        sections = [timed("headline", _headline, ws, buyers),
                    timed("tiers", _tiers, scores, loc, ws),
                    timed("rfm", _rfm, scores, loc), timed("lifecycle", _lifecycle, ws, start, end),
                    timed("churn_risk", _churn, scores), timed("clv", _clv, scores),
                    timed("pareto", _pareto, ws, buyers), timed("trends", _trends, ws, as_of),
                    timed("kpis", _kpis, ws, as_of)]
    return Dashboard(run_id=run_id, as_of=as_of, locale=loc,
                     sections={s.key: s for s in sections}, computed_at=datetime.now(),
                     compute_seconds=round(time.perf_counter() - t0, 3), section_seconds=laps,
                     failed=failed)


def _flows_only(ws: Workspace, loc: str, start: date, end: date
                ) -> tuple[Section, float, list[str]]:
    """The lifecycle section alone for other flow dates: (section, seconds, failed keys)."""
    set_locale(loc)
    t0 = time.perf_counter()
    try:
        sec = _lifecycle(ws, start, end)
        failed: list[str] = []
    except KehuError as exc:
        sec = Section("lifecycle", _title("lifecycle"), {"series": []}, [], [],
                      notes=[str(exc)])
        failed = ["lifecycle"]
    return sec, round(time.perf_counter() - t0, 3), failed


def _title(key: str) -> str:
    return _(TITLES[key])


def _cols(*pairs: tuple[str, str]) -> list[dict[str, str]]:
    return [{"key": k, "label": _(label)} for k, label in pairs]


def _share(a: float | None, b: float | None) -> float | None:
    return float(a) / float(b) if a is not None and b else None


def _headline(ws: Workspace, buyers: list[int]) -> Section:
    from kehu.analytics.headline import headline

    h = headline(ws.engine)
    margin_12m: float | None = None
    if h.as_of is not None:
        tx = ws.engine.table("transactions")
        recent = tx.filter(tx.transaction_time >= ibis.literal(h.as_of - timedelta(days=365)))
        row = recent.aggregate(m=(recent.amount - recent.cost.fill_null(0)).sum()
                               ).to_pyarrow().to_pylist()[0]
        margin_12m = float(row["m"] or 0.0) if h.margin is not None else None
    figures = {"as_of": h.as_of, "customers": h.customers, "buying_customers": h.buying_customers,
               "active_90d": h.active_90d, "revenue": h.revenue, "margin": h.margin,
               "revenue_12m": h.revenue_12m, "margin_12m": margin_12m,
               "repeat_rate": h.repeat_rate, "transactions": h.transactions,
               "avg_order_value": h.avg_order_value}
    labels = {"customers": N_("Customers"), "buying_customers": N_("Customers with purchases"),
              "active_90d": N_("Active in the last 90 days"), "revenue": N_("Revenue"),
              "margin": N_("Margin"), "revenue_12m": N_("Revenue, last 12 months"),
              "margin_12m": N_("Margin, last 12 months"), "repeat_rate": N_("Repeat rate"),
              "transactions": N_("Transactions"), "avg_order_value": N_("Average order value")}
    periods = [_("Total"), _("Last 12 months")]
    chart = {"xAxis": {"type": "category", "data": periods},
             "series": [{"name": _("Revenue"), "type": "bar", "data": [h.revenue, h.revenue_12m]},
                        {"name": _("Margin"), "type": "bar", "data": [h.margin, margin_12m]}]}
    rows = [[k, _(label), figures[k]] for k, label in labels.items()]
    buyers.append(h.buying_customers)
    return Section("headline", _title("headline"), chart,
                   _cols(("measure", N_("Measure")), ("label", N_("Name")),
                         ("value", N_("Value"))), rows, summary=figures)


def _tiers(scores: Table, loc: str, ws: Workspace) -> Section:
    from kehu.accounts.service_levels import tier_scheme

    scheme = tier_scheme(ws)
    zh = loc == "zh_CN"
    g = scores.group_by("tier").aggregate(customers=scores.count(), revenue=scores.spend.sum(),
                                          margin=scores.margin.sum()).to_pyarrow().to_pylist()
    by = {r["tier"]: r for r in g}
    names = {t.code: t.name_zh if zh else t.name_en for t in scheme.tiers}
    codes = [t.code for t in scheme.tiers] + sorted(
        str(c) for c in by if c not in names and c is not None)
    n = sum(int(r["customers"]) for r in g)
    rev = sum(float(r["revenue"] or 0.0) for r in g)
    rows = []
    for c in codes:
        r = by.get(c, {})
        k, v = int(r.get("customers") or 0), float(r.get("revenue") or 0.0)
        rows.append([c, names.get(c, c), k, _share(k, n), v, _share(v, rev),
                     float(r.get("margin") or 0.0)])
    chart = {"xAxis": {"type": "category", "data": [r[1] for r in rows]},
             "yAxis": [{"type": "value", "name": _("Customers")},
                       {"type": "value", "name": _("Revenue, last 12 months")}],
             "series": [{"name": _("Customers"), "type": "bar", "data": [r[2] for r in rows]},
                        {"name": _("Revenue, last 12 months"), "type": "bar", "yAxisIndex": 1,
                         "data": [r[4] for r in rows]}]}
    return Section("tiers", _title("tiers"), chart,
                   _cols(("tier", N_("Tier")), ("name", N_("Name")),
                         ("customers", N_("Customers")), ("customer_share", N_("Share")),
                         ("revenue", N_("Revenue, last 12 months")),
                         ("revenue_share", N_("Revenue share")), ("margin", N_("Margin"))),
                   rows, summary={"customers": n, "revenue": rev})


def _rfm(scores: Table, loc: str) -> Section:
    scheme = RfmClassScheme()
    g = scores.group_by("rfm_class").aggregate(
        customers=scores.count(), revenue=scores.monetary_total.sum()).to_pyarrow().to_pylist()
    by = {r["rfm_class"]: r for r in g if r["rfm_class"] is not None}
    unclassified = sum(int(r["customers"]) for r in g if r["rfm_class"] is None)
    n = sum(int(r["customers"]) for r in by.values())
    rev = sum(float(r["revenue"] or 0.0) for r in by.values())
    rows = []
    for c in [k.code for k in scheme.classes] + sorted(set(by) - {k.code for k in
                                                               scheme.classes}):
        r = by.get(c, {})
        k, v = int(r.get("customers") or 0), float(r.get("revenue") or 0.0)
        rows.append([c, scheme.name(c, loc), k, _share(k, n), v, _share(v, rev)])
    chart = {"series": [{"type": "treemap", "name": _("RFM classes"), "data": [
        {"name": r[1], "value": r[2], "code": r[0], "customer_share": r[3], "revenue": r[4],
         "revenue_share": r[5]} for r in rows]}]}
    return Section("rfm", _title("rfm"), chart,
                   _cols(("rfm_class", N_("Class")), ("name", N_("Name")),
                         ("customers", N_("Customers")), ("customer_share", N_("Share")),
                         ("revenue", N_("Revenue")), ("revenue_share", N_("Revenue share"))),
                   rows, summary={"customers": n, "revenue": rev,
                                  "unclassified": unclassified})


def _stage_order(code: str) -> int:
    order = ("not_yet_customer", *STAGES)
    return order.index(code) if code in order else len(order)


def _lifecycle(ws: Workspace, start: date, end: date) -> Section:
    eng = ws.engine
    from kehu.analytics.schemes import lifecycle_rules

    t = transitions(eng.table("transactions"), eng.table("customers"),
                    eng.table("churn_events"), start, end,
                    lifecycle_rules(ws)).to_pyarrow().to_pylist()
    t.sort(key=lambda r: (_stage_order(r["stage_from"]), _stage_order(r["stage_to"])))

    def label(code: str) -> str:
        return _(STAGE_LABELS[code]) if code in STAGE_LABELS else code

    def node(code: str, d: date) -> str:
        return f"{label(code)} ({d.isoformat()})"

    outflow: dict[str, int] = {}
    inflow: dict[str, int] = {}
    for r in t:
        outflow[r["stage_from"]] = outflow.get(r["stage_from"], 0) + int(r["customers"])
        inflow[r["stage_to"]] = inflow.get(r["stage_to"], 0) + int(r["customers"])
    nodes = [{"name": node(c, start), "stage": c, "label": label(c), "side": "from",
              "date": start, "value": v} for c, v in sorted(outflow.items(),
                                                            key=lambda x: _stage_order(x[0]))]
    nodes += [{"name": node(c, end), "stage": c, "label": label(c), "side": "to",
               "date": end, "value": v} for c, v in sorted(inflow.items(),
                                                          key=lambda x: _stage_order(x[0]))]
    links = [{"source": node(r["stage_from"], start), "target": node(r["stage_to"], end),
              "value": int(r["customers"])} for r in t]
    rows = [[r["stage_from"], label(r["stage_from"]), r["stage_to"], label(r["stage_to"]),
             int(r["customers"])] for r in t]
    chart = {"series": [{"type": "sankey", "name": _("Lifecycle flows"), "data": nodes,
                         "links": links}]}
    return Section("lifecycle", _title("lifecycle"), chart,
                   _cols(("stage_from", N_("From")), ("label_from", N_("From (name)")),
                         ("stage_to", N_("To")), ("label_to", N_("To (name)")),
                         ("customers", N_("Customers"))),
                   rows, summary={"start": start, "end": end, "from": outflow, "to": inflow,
                                  "customers": sum(outflow.values())})


def _churn(scores: Table) -> Section:
    r = scores.churn_risk
    b = ibis.least(ibis.greatest((r * CHURN_BINS).floor(), 0), CHURN_BINS - 1).cast("int64")
    scored = scores.filter(r.notnull())
    g = scored.group_by(bin=b).aggregate(customers=scored.count()).to_pyarrow().to_pylist()
    tot = scores.aggregate(unscored=r.isnull().sum(), above=(r > 0.5).sum(),
                           n=r.count(), mean=r.mean()).to_pyarrow().to_pylist()[0]
    counts = [0] * CHURN_BINS
    for x in g:
        counts[int(x["bin"])] = int(x["customers"])
    edges = [i / CHURN_BINS for i in range(CHURN_BINS + 1)]
    labels = [f"{edges[i]:.2f}–{edges[i + 1]:.2f}" for i in range(CHURN_BINS)]
    rows = [[edges[i], edges[i + 1], labels[i], counts[i]] for i in range(CHURN_BINS)]
    chart = {"xAxis": {"type": "category", "data": labels},
             "series": [{"name": _("Customers"), "type": "bar", "data": counts}]}
    notes = [] if tot["n"] else [_("No churn risk in this run: the churn model was not "
                                   "trained (see the run's notes).")]
    return Section("churn_risk", _title("churn_risk"), chart,
                   _cols(("low", N_("From")), ("high", N_("To")), ("bin", N_("Bin")),
                         ("customers", N_("Customers"))),
                   rows, summary={"scored": int(tot["n"] or 0),
                                  "unscored": int(tot["unscored"] or 0),
                                  "above_half": int(tot["above"] or 0), "mean": tot["mean"]},
                   notes=notes)


def log_bin_edges(top: float) -> list[float]:
    """Bin edges 0, 1, 2, 5, 10, 20, 50 … up to the first edge above ``top`` (the "1-2-5"
    series: log bins that read as round numbers).

    >>> log_bin_edges(120.0)
    [0.0, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0]
    >>> log_bin_edges(0.0)
    [0.0, 1.0]
    """
    edges, k = [0.0, 1.0], 0
    while edges[-1] <= top:
        for m in (2.0, 5.0, 10.0):
            edges.append(m * 10.0 ** k)
            if edges[-1] > top:
                break
        k += 1
    return edges


def _clv(scores: Table) -> Section:
    v = scores.clv
    qs = {"p25": 0.25, "p50": 0.5, "p75": 0.75, "p90": 0.9, "p99": 0.99}
    tot = scores.aggregate(n=v.count(), missing=v.isnull().sum(), top=v.max(), low=v.min(),
                           total=v.sum(), mean=v.mean(),
                           **{k: v.quantile(q) for k, q in qs.items()}
                           ).to_pyarrow().to_pylist()[0]
    edges = log_bin_edges(float(tot["top"] or 0.0))
    have = scores.filter(v.notnull())
    hv = have.clv
    branches = [(hv < 0, -1)] + [(hv < edges[i + 1], i) for i in range(len(edges) - 1)]
    g = have.group_by(bin=ibis.cases(*branches, else_=len(edges) - 2)).aggregate(
        customers=have.count(), clv=hv.sum()).to_pyarrow().to_pylist()
    by = {int(r["bin"]): r for r in g}
    idx = ([-1] if -1 in by else []) + list(range(len(edges) - 1))
    rows = []
    for i in idx:
        lo, hi = (None, 0.0) if i < 0 else (edges[i], edges[i + 1])
        name = f"< {hi:g}" if lo is None else f"{lo:g}–{hi:g}"
        r = by.get(i, {})
        rows.append([lo, hi, name, int(r.get("customers") or 0), float(r.get("clv") or 0.0)])
    chart = {"xAxis": {"type": "category", "data": [r[2] for r in rows]},
             "yAxis": [{"type": "value", "name": _("Customers")},
                       {"type": "value", "name": _("CLV")}],
             "series": [{"name": _("Customers"), "type": "bar", "data": [r[3] for r in rows]},
                        {"name": _("CLV"), "type": "line", "yAxisIndex": 1,
                         "data": [r[4] for r in rows]}]}
    notes = [] if tot["n"] else [_("No CLV in this run (see the run's notes).")]
    return Section("clv", _title("clv"), chart,
                   _cols(("low", N_("From")), ("high", N_("To")), ("bin", N_("Bin")),
                         ("customers", N_("Customers")), ("clv", N_("CLV"))),
                   rows, summary={"customers": int(tot["n"] or 0),
                                  "missing": int(tot["missing"] or 0), "total": tot["total"],
                                  "mean": tot["mean"], "min": tot["low"], "max": tot["top"],
                                  "bins": "log-1-2-5", **{k: tot[k] for k in qs}},
                   notes=notes)


def pareto_counts(n: int, points: int = PARETO_POINTS) -> list[int]:
    """How many top customers make each point: ``⌈n·p/points⌉`` for p = 1 … points.

    >>> pareto_counts(7, 4)
    [2, 4, 6, 7]
    """
    return [-(-n * p // points) for p in range(1, points + 1)]


def _pareto(ws: Workspace, buyers_box: list[int]) -> Section:
    tx = ws.engine.table("transactions")
    buyers = (buyers_box[0] if buyers_box
              else int(tx.customer_id.nunique().to_pyarrow().as_py()))
    per = tx.group_by("customer_id").aggregate(spend=tx.amount.sum())
    order = [ibis.desc(per.spend), per.customer_id]
    ranked = per.mutate(k=ibis.row_number().over(order_by=order) + 1,
                        cum=per.spend.sum().over(order_by=order, rows=(None, 0)),
                        total=per.spend.sum().over())
    counts = pareto_counts(buyers)
    got = ranked.filter(ranked.k.isin(sorted(set(counts)))).select(
        "k", "cum", "total").to_pyarrow().to_pylist()
    cum = {int(r["k"]): float(r["cum"]) for r in got}
    total = float(got[0]["total"]) if got else 0.0
    rows = [[p / PARETO_POINTS, c, _share(cum.get(c), total)]
            for p, c in enumerate(counts, start=1)]
    top20 = rows[int(PARETO_POINTS * 0.2) - 1][2] if rows else None
    chart = {"xAxis": {"type": "value", "min": 0, "max": 1},
             "series": [{"name": _("Cumulative revenue share"), "type": "line",
                         "data": [[0.0, 0.0]] + [[r[0], r[2]] for r in rows]},
                        {"name": _("Equal shares"), "type": "line", "data": [[0.0, 0.0],
                                                                             [1.0, 1.0]]}]}
    return Section("pareto", _title("pareto"), chart,
                   _cols(("customer_share", N_("Share of customers")),
                         ("customers", N_("Customers")),
                         ("revenue_share", N_("Cumulative revenue share"))),
                   rows, summary={"customers": buyers, "revenue": total, "top20_share": top20})


def _trends(ws: Workspace, as_of: date) -> Section:
    from kehu.analytics import cube_aggregate
    from kehu.analytics.cube import CubeQuery, cube

    y, m = as_of.year, as_of.month - (TREND_MONTHS - 1)
    while m < 1:
        y, m = y - 1, m + 12
    start = date(y, m, 1)
    nxt = date(as_of.year + (as_of.month == 12), as_of.month % 12 + 1, 1)
    end = nxt - timedelta(days=1)
    q = CubeQuery(measures=["revenue", "margin", "buyers", "orders"], by=["month"],
                  start=start, end=end)
    from_agg = cube_aggregate.can_answer(q) and cube_aggregate.is_current(
        ws.engine, cube_aggregate.table_for(q))
    got = {r["month"]: r for r in cube(ws.engine, q).to_pyarrow().to_pylist()}
    months = []
    y, m = start.year, start.month
    for _i in range(TREND_MONTHS):
        months.append(f"{y:04d}-{m:02d}")
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    rows = []
    for mo in months:
        r = got.get(mo, {})
        rows.append([mo, float(r.get("revenue") or 0.0), float(r.get("margin") or 0.0),
                     int(r.get("buyers") or 0), int(r.get("orders") or 0)])
    measures = [("revenue", N_("Revenue")), ("margin", N_("Margin")), ("buyers", N_("Buyers")),
                ("orders", N_("Orders"))]
    chart = {"xAxis": {"type": "category", "data": months},
             "yAxis": [{"type": "value", "name": _("Revenue")},
                       {"type": "value", "name": _("Buyers")}],
             "series": [{"name": _(label), "type": "line", "yAxisIndex": int(i >= 2),
                         "data": [r[i + 1] for r in rows]}
                        for i, (_k, label) in enumerate(measures)]}
    notes = []
    if as_of < end:
        notes.append(_("{month} is counted up to the end of the month; the run's as-of date "
                       "is {d}.").format(month=months[-1], d=as_of))
    return Section("trends", _title("trends"), chart,
                   _cols(("month", N_("Month")), *measures), rows,
                   summary={"start": start, "end": end, "from_aggregate": from_agg},
                   notes=notes)


def _kpis(ws: Workspace, as_of: date) -> Section:
    from kehu.campaigns.measure import campaign_results
    from kehu.kpi import crm_kpis

    rep = crm_kpis(ws, KPI_MONTHS, as_of=as_of, campaign_results=campaign_results)
    h = rep.headline
    allv = h["value_growth"].get("all", {})
    figures: list[tuple[str, str, Any]] = [
        ("retention_rate", N_("Retention rate"), h["retention"]["rate"]),
        ("retention_rate_last_month", N_("Retention rate, last month"),
         h["retention_rate_last_month"]),
        ("customers_retained", N_("Customers retained"), h["retention"]["retained"]),
        ("customers_churned", N_("Customers churned"), h["retention"]["churned"]),
        ("revenue", N_("Revenue"), allv.get("revenue")),
        ("revenue_yoy", N_("Revenue growth on a year earlier"), allv.get("revenue_yoy")),
        ("margin_yoy", N_("Margin growth on a year earlier"), allv.get("margin_yoy")),
        ("campaigns", N_("Campaigns"), h["campaigns"]["campaigns"]),
        ("campaign_roi", N_("Campaign ROI"), h["campaigns"]["roi"]),
        ("nps", N_("NPS"), h["satisfaction"]["nps"]),
        ("csat", N_("CSAT"), h["satisfaction"]["csat"]),
        ("complaint_hours_median", N_("Complaint resolution, median hours"),
         h["complaints"]["resolution_hours_median"]),
        ("tasks_on_time_share", N_("Tasks done on time"), h["tasks"]["share"]),
    ]
    rows = [[k, _(label), v] for k, label, v in figures]
    months = [r["month"] for r in rep.months]
    chart = {"xAxis": {"type": "category", "data": months},
             "yAxis": [{"type": "value", "name": _("Retention rate")},
                       {"type": "value", "name": _("NPS")}],
             "series": [{"name": _("Retention rate"), "type": "line",
                         "data": [r.get("retention_rate") for r in rep.months]},
                        {"name": _("NPS"), "type": "line", "yAxisIndex": 1,
                         "data": [r.get("nps") for r in rep.months]}]}
    return Section("kpis", _title("kpis"), chart,
                   _cols(("kpi", N_("Measure")), ("label", N_("Name")),
                         ("value", N_("Value"))),
                   rows, summary=rep.to_dict()["headline"], notes=list(rep.notes))

