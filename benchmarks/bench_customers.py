"""The customer list service (issue 6) at 1 M customers: index build, warm load, and the
median / p95 of each kind of request the web app's Customers page makes.

Builds a synthetic warehouse straight through ``Warehouse.append``: customers with Chinese
names, phones (a tenth written "+86 138 …"), cities and account managers, one analysis run's
``customer_scores`` (the service reads only those columns, so the run itself is not needed
here; it is measured in bench_cube) and a few thousand app-store assignments overriding the
warehouse's managers.

    python -m benchmarks.bench_customers --customers 1000000 --repeat 12
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

RESULTS = Path(__file__).parent / "results"
TIERS = np.array(["regular", "silver", "gold", "diamond"], dtype=object)
STAGES = np.array(["prospect", "new", "active", "growing", "declining", "dormant", "churned",
                   "won_back"], dtype=object)
CLASSES = np.array(["important_value", "important_development", "important_retention",
                    "important_winback", "general_value", "general_development",
                    "general_retention", "general_winback"], dtype=object)
MANAGERS = 200


def build(root: Path, n: int, seed: int = 7) -> Any:
    from kehu import Workspace
    from kehu.demo.names import format_phone_variant, phones, sample_cities, sample_names
    from kehu.model import ENTITIES
    from kehu.store import services as sv
    from kehu.store.models import Assignment

    ws = Workspace.init(root)
    rng = np.random.default_rng(seed)
    ids = np.char.add("C", np.char.zfill(np.arange(n).astype(str), 8)).astype(object)
    city, region, _ = sample_cities(rng, n)
    ph = phones(rng, n)
    variant = np.flatnonzero(rng.random(n) < 0.1)
    ph[variant] = [format_phone_variant(p, 0) for p in ph[variant]]
    mgr = np.char.add("E", np.char.zfill(rng.integers(0, MANAGERS, n).astype(str), 4)) \
        .astype(object)
    mgr[rng.random(n) < 0.4] = None
    cust = {"customer_id": ids, "name": sample_names(rng, n)["name"], "phone": ph,
            "city": city, "region": region, "account_manager_id": mgr,
            "signup_date": (np.datetime64("2021-01-01") + rng.integers(0, 1400, n)
                            .astype("timedelta64[D]"))}
    schema = ENTITIES["customers"].arrow_schema()
    ws.warehouse.append("customers", pa.table(
        {f.name: pa.array(cust[f.name], f.type) if f.name in cust else pa.nulls(n, f.type)
         for f in schema}, schema=schema))
    value = np.round(rng.gamma(0.7, 3000.0, n), 2)
    clv = np.round(value * rng.uniform(0.05, 0.6, n), 2)
    risk = rng.beta(1.2, 6.0, n)
    risk[rng.random(n) < 0.2] = np.nan
    tier = TIERS[np.searchsorted(np.array([0.63, 0.9, 0.985]), rng.random(n))]
    rfm = CLASSES[rng.integers(0, 8, n)].astype(object)
    rfm[rng.random(n) < 0.15] = None
    ws.warehouse.append("customer_scores", pa.table({
        "run_id": pa.array(["20260101T000000-bench0"] * n), "as_of": pa.array(
            [date(2025, 12, 31)] * n, pa.date32()),
        "customer_id": pa.array(ids, pa.string()), "tier": pa.array(tier, pa.string()),
        "rfm_class": pa.array(rfm, pa.string()),
        "lifecycle_stage": pa.array(STAGES[rng.integers(0, 8, n)], pa.string()),
        "churn_risk": pa.array(risk, from_pandas=True), "clv": clv,
        "current_value": clv, "total_value": np.round(value + clv, 2)}))
    today = date.today()
    moved = rng.choice(n, 5_000, replace=False)
    rows = [{"customer_id": ids[i], "employee_id": f"E{int(rng.integers(0, MANAGERS)):04d}",
             "valid_from": today - timedelta(days=int(rng.integers(1, 400))),
             "valid_to": None if k % 5 else today - timedelta(days=1)}
            for k, i in enumerate(moved)]
    from sqlalchemy import insert

    with ws.store.session() as s:
        s.execute(insert(Assignment), rows)
    sv.save_definition(ws.store, sv.DefinitionIn(kind="segment", name="上海高价值", spec={
        "name": "上海高价值", "rule": {"all": [
            {"field": "city", "op": "=", "value": "上海"},
            {"field": "tier", "op": "in", "value": ["gold", "diamond"]}]}}), "bench")
    return ws, cust


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main() -> None:
    from kehu.customers import CustomerQuery, Scope, ensure_index, get_visible, invalidate
    from kehu.customers import search as search_fn
    from kehu.store import services as sv

    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=12, help="queries per kind")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="kehu-customers-")) / "ws"
    load = os.getloadavg()
    t_build, (ws, cust) = _timed(lambda: build(root, args.customers))
    t_index, info = _timed(lambda: ensure_index(ws))
    t_reuse, again = _timed(lambda: ensure_index(ws))
    assert info.built and not again.built
    allq = Scope()
    t_warm, _ = _timed(lambda: search_fn(ws, CustomerQuery(), allq))
    invalidate(ws)   # a new process: the index file exists, it is loaded and managers added
    t_restart, _ = _timed(lambda: search_fn(ws, CustomerQuery(), allq))

    rng = np.random.default_rng(11)
    n = args.customers
    names = cust["name"]
    phones = cust["phone"]

    def digits(p: str) -> str:
        d = "".join(c for c in p if c.isdigit())
        return d[2:] if len(d) == 13 else d

    kinds: dict[str, Callable[[], tuple[CustomerQuery, Scope]]] = {
        "id prefix": lambda: (CustomerQuery(q=f"c{int(rng.integers(0, n)):08d}"[:7]), allq),
        "phone tail (4 digits)": lambda: (CustomerQuery(
            q=digits(phones[int(rng.integers(0, n))])[-4:]), allq),
        "phone +86 138-xxxx-xxxx": lambda: (CustomerQuery(q=(lambda d: (
            f"+86 {d[:3]}-{d[3:7]}-{d[7:]}"))(digits(phones[int(rng.integers(0, n))]))), allq),
        "Chinese name substring": lambda: (CustomerQuery(
            q=(lambda s: s[1:3] if len(s) > 2 else s[1:])(names[int(rng.integers(0, n))])),
            allq),
        "tier + risk, by value": lambda: (CustomerQuery(
            tiers=list(rng.choice(TIERS, 2, replace=False)),
            min_risk=float(rng.uniform(0.1, 0.4)), sort="total_value"), allq),
        "manager scope, by risk": lambda: (CustomerQuery(sort="churn_risk"), Scope(
            employee_id=f"E{int(rng.integers(0, MANAGERS)):04d}")),
        "manager scope + name": lambda: (CustomerQuery(q=str(names[int(rng.integers(0, n))][0])),
                                         Scope(employee_id=f"E{int(rng.integers(0, 200)):04d}")),
        "deep page (offset 100k+), by clv": lambda: (CustomerQuery(
            sort="clv", page=int(rng.integers(2_000, 4_000)), page_size=50), allq),
        "lifecycle + rfm, by name": lambda: (CustomerQuery(
            lifecycle_stages=[str(rng.choice(STAGES))], rfm_classes=[str(rng.choice(CLASSES))],
            sort="name", desc=False), allq),
        "saved segment, by value": lambda: (CustomerQuery(segment="上海高价值"), allq),
        "no filter, default sort": lambda: (CustomerQuery(page=int(rng.integers(1, 5))), allq),
    }
    first_segment, _ = _timed(lambda: search_fn(ws, CustomerQuery(segment="上海高价值"), allq))
    res: dict[str, Any] = {
        "date": datetime.now().isoformat(timespec="seconds"), "cpus": os.cpu_count(),
        "loadavg_before": [round(x, 2) for x in load], "customers": n,
        "build_warehouse_seconds": round(t_build, 1),
        "index_build_seconds": round(t_index, 2), "index_reuse_seconds": round(t_reuse, 4),
        "index_file_mb": round(info.path.stat().st_size / 2**20, 1),
        "first_query_after_build_seconds": round(t_warm, 2),
        "first_query_new_process_seconds": round(t_restart, 2),
        "segment_first_use_seconds": round(first_segment, 2), "kinds": {}}
    every: list[float] = []
    for kind, make in kinds.items():
        times, totals = [], []
        for _ in range(args.repeat):
            q, scope = make()
            dt, page = _timed(lambda q=q, scope=scope: search_fn(ws, q, scope))
            times.append(dt)
            totals.append(page.total)
        every += times
        res["kinds"][kind] = _stats(times) | {"median_total": int(statistics.median(totals))}
    ids = cust["customer_id"]
    times = [_timed(lambda: get_visible(ws, str(ids[int(rng.integers(0, n))]), allq))[0]
             for _ in range(args.repeat)]
    every += times
    res["kinds"]["get_visible"] = _stats(times)
    res["all_queries"] = _stats(every) | {"queries": len(every)}
    cid = str(ids[0])
    sv.assign(ws.store, cid, "E0001", "bench")
    res["first_query_after_assignment_seconds"] = round(
        _timed(lambda: search_fn(ws, CustomerQuery(), Scope(employee_id="E0001")))[0], 3)
    res["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "customers.json").write_text(json.dumps(res, indent=2, ensure_ascii=False))
    print(json.dumps(res, indent=2, ensure_ascii=False))


def _stats(times: list[float]) -> dict[str, float]:
    ms = sorted(t * 1000 for t in times)
    p95 = ms[min(len(ms) - 1, int(np.ceil(0.95 * len(ms))) - 1)]
    return {"median_ms": round(statistics.median(ms), 1), "p95_ms": round(p95, 1),
            "max_ms": round(ms[-1], 1)}


if __name__ == "__main__":
    main()
