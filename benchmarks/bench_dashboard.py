"""The dashboard (issue 6) at 1 M customers / 10 M transaction lines: the cold call (every
section computed, per-section seconds) and warm calls (answered from the per-run cache).

Builds the synthetic warehouse of bench_cube and runs the analysis once, or reuses a
workspace that already has a run:

    python -m benchmarks.bench_dashboard --customers 1000000 --lines 10000000
    python -m benchmarks.bench_dashboard --workspace /tmp/kehu-dash-bench/ws
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from datetime import date, datetime
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    from kehu import Workspace
    from kehu.analytics.run import analysis_run
    from kehu.dashboard import clear_cache, dashboard

    ap = argparse.ArgumentParser()
    ap.add_argument("--workspace", help="an existing workspace with an analysis run")
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--lines", type=int, default=10_000_000)
    ap.add_argument("--cold", type=int, default=2, help="cold calls (cache cleared before each)")
    ap.add_argument("--warm", type=int, default=200, help="warm calls")
    args = ap.parse_args()
    res: dict = {"benchmark": "dashboard", "date": datetime.now().isoformat(timespec="seconds"),
                 "machine": f"{platform.machine()}, {os.cpu_count()} cores",
                 "load_before": [round(x, 2) for x in os.getloadavg()]}
    if args.workspace:
        ws = Workspace.open(args.workspace)
    else:
        from benchmarks.bench_cube import build

        t0 = time.perf_counter()
        ws = build(Path(tempfile.mkdtemp(prefix="kehu-dash-")) / "ws", args.customers,
                   args.lines)  # type: ignore[assignment]
        res["build_s"] = round(time.perf_counter() - t0, 1)
        t0 = time.perf_counter()
        analysis_run(ws, date(2025, 12, 31))
        res["analysis_run_s"] = round(time.perf_counter() - t0, 1)
    res["customers"] = ws.warehouse.count("customers")
    res["lines"] = ws.warehouse.count("transactions")
    cold = []
    for _i in range(args.cold):
        clear_cache(ws)
        ws.engine.refresh()
        t0 = time.perf_counter()
        d = dashboard(ws)
        cold.append(round(time.perf_counter() - t0, 3))
        res["sections_s"] = d.section_seconds
    warm = []
    for _i in range(args.warm):
        t0 = time.perf_counter()
        d = dashboard(ws)
        warm.append(time.perf_counter() - t0)
        assert d.cached
    t0 = time.perf_counter()
    payload = json.dumps(d.to_dict(), ensure_ascii=False)
    res.update(cold_s=cold, warm_ms={
        "median": round(1000 * statistics.median(warm), 3),
        "p95": round(1000 * statistics.quantiles(warm, n=20)[-1], 3),
        "max": round(1000 * max(warm), 3)},
        to_json_ms=round(1000 * (time.perf_counter() - t0), 2), json_bytes=len(payload.encode()),
        load_after=[round(x, 2) for x in os.getloadavg()])
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "dashboard.json").write_text(json.dumps(res, indent=2, ensure_ascii=False))
    print(json.dumps(res, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
