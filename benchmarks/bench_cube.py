"""The analysis run and cube queries at 1 M customers / 10 M transaction lines.

Builds a synthetic warehouse straight through ``Warehouse.append`` (the import itself is
measured in bench_import), runs ``kehu run``'s analysis once, then times each cube query
(median of several runs, Delta scans included).

    python -m benchmarks.bench_cube --customers 1000000 --lines 10000000 --repeat 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa

from benchmarks.common import RESULTS

QUERIES = {
    "revenue, margin by year x region": {"measures": ["revenue", "margin"],
                                         "by": ["year", "region"]},
    "revenue by category, tier in (gold, diamond), 2025": {
        "measures": ["revenue"], "by": ["category"],
        "where": [{"dimension": "tier", "values": ["gold", "diamond"]}],
        "start": "2025-01-01", "end": "2025-12-31"},
    "customers, CLV, churn risk by tier": {"measures": ["customers", "clv", "churn_risk"],
                                           "by": ["tier"]},
    "buyers by month": {"measures": ["buyers"], "by": ["month"]},
}


def build(root: Path, n: int, lines: int, seed: int = 3) -> object:
    from kehu import Workspace
    from kehu.model import ENTITIES

    ws = Workspace.init(root)
    rng = np.random.default_rng(seed)
    regions = np.array(["广东", "上海", "北京", "浙江", "江苏", "四川"], dtype=object)
    ids = np.char.add("C", np.char.zfill(np.arange(n).astype(str), 8)).astype(object)
    cust = {"customer_id": ids, "region": regions[rng.integers(0, 6, n)],
            "signup_date": (np.datetime64("2021-01-01") + rng.integers(0, 1400, n)
                            .astype("timedelta64[D]"))}
    schema = ENTITIES["customers"].arrow_schema()
    ws.warehouse.append("customers", pa.table(
        {f.name: pa.array(cust[f.name], f.type) if f.name in cust else pa.nulls(n, f.type)
         for f in schema}, schema=schema))
    ps = ENTITIES["products"].arrow_schema()
    pids = np.array([f"P{i:03d}" for i in range(200)], dtype=object)
    cats = np.array(["食品", "日用", "母婴", "数码", "服饰"], dtype=object)
    ws.warehouse.append("products", pa.table(
        {f.name: pa.array({"product_id": pids, "category": cats[np.arange(200) % 5]}[f.name],
                          f.type) if f.name in ("product_id", "category")
         else pa.nulls(200, f.type) for f in ps}, schema=ps))
    ts = ENTITIES["transactions"].arrow_schema()
    rate = rng.gamma(0.8, 1.0, n)
    chunk = 2_000_000
    for start in range(0, lines, chunk):
        m = min(chunk, lines - start)
        who = rng.choice(n, m, p=rate / rate.sum())
        t = (np.datetime64("2023-01-01T00:00:00") + rng.integers(0, 3 * 365 * 86400, m)
             .astype("timedelta64[s]"))
        amount = np.round(rng.gamma(2.0, 60.0, m), 2)
        cols = {"transaction_id": np.char.add("T", np.arange(start, start + m).astype(str)),
                "customer_id": ids[who], "transaction_time": t.astype("datetime64[us]"),
                "product_id": pids[rng.integers(0, 200, m)], "amount": amount,
                "cost": np.round(amount * 0.6, 2), "kind": np.full(m, "purchase", dtype=object)}
        ws.warehouse.append("transactions", pa.table(
            {f.name: pa.array(cols[f.name], f.type) if f.name in cols else pa.nulls(m, f.type)
             for f in ts}, schema=ts))
    return ws


def main(argv: list[str] | None = None) -> None:
    from kehu.analytics.cube import CubeQuery, cube
    from kehu.analytics.run import analysis_run

    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--lines", type=int, default=10_000_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="kehu-cube-")) / "ws"
    t0 = time.perf_counter()
    ws = build(root, args.customers, args.lines)
    built = time.perf_counter() - t0
    t0 = time.perf_counter()
    rep = analysis_run(ws, date(2025, 12, 31))  # type: ignore[attr-defined]
    run_s = time.perf_counter() - t0
    res: dict = {"date": datetime.now().isoformat(timespec="seconds"), "cpus": os.cpu_count(),
                 "customers": args.customers, "lines": args.lines,
                 "build_seconds": round(built, 1), "analysis_run_seconds": round(run_s, 1),
                 "run_notes": rep.notes, "queries": {}}
    for name, q in QUERIES.items():
        query = CubeQuery(**q)
        times, rows = [], 0
        for _ in range(args.repeat):
            ws.engine.refresh()  # type: ignore[attr-defined]
            t0 = time.perf_counter()
            rows = cube(ws.engine, query).to_pyarrow().num_rows  # type: ignore[attr-defined]
            times.append(time.perf_counter() - t0)
        res["queries"][name] = {"median_s": round(statistics.median(times), 3),
                                "runs": [round(x, 3) for x in times], "rows": rows}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "cube.json").write_text(json.dumps(res, indent=2, ensure_ascii=False))
    print(json.dumps(res, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
