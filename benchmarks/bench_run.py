"""The full analysis run (``kehu run``) at several sizes: seconds per stage and in total,
median of several runs, peak RSS.

For each size a fresh synthetic warehouse (bench_cube's: N customers, 10 lines each over
2023–2025, 200 products) is written straight to Delta, then ``kehu run --as-of 2025-12-31
--no-warm --json`` runs as a subprocess. The first run also trains the churn model (none
exists yet) — ``--first-runs`` times, each on a fresh copy of the warehouse, their median
reported; the ``--repeat`` runs after it reuse the model, as a nightly run does until the
model is older than its churn window — their median is the headline. ``--no-warm``: the web
app's dashboard and customer-page lookup file are preparation for the app, not analysis.

    python -m benchmarks.bench_run --sizes 100000 1000000 --repeat 2 --first-runs 3
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.common import (
    BUILD,
    Measured,
    measure,
    med,
    meta,
    progress,
    python_worker,
    write_result,
)

AS_OF = "2025-12-31"
#: issue 7's aim on a 2-core machine: 1 M customers / 10 M lines in under 2 minutes
AIM_SECONDS = 120.0
AIM_CUSTOMERS = 1_000_000


def _run_once(ws: Path) -> tuple[Measured, dict[str, Any]]:
    m = measure(python_worker("kehu.cli.main", "run", "-w", str(ws), "--as-of", AS_OF,
                              "--no-warm", "--json"))
    return m, m.json()


def summarise(customers: int, lines: int, built: float, runs: list[dict[str, Any]],
              complete: bool) -> dict[str, Any]:
    """The result of one size from the runs so far: the first runs (marked ``first``, or
    the first of all) train the churn model, the others reuse it."""
    firsts = [i for i, r in enumerate(runs) if r.get("first")] or [0]
    first = [runs[i] for i in firsts]
    steady = [r for i, r in enumerate(runs) if i not in firsts] or runs
    stages = list(runs[0]["stages"])
    out: dict[str, Any] = {
        "customers": customers, "lines": lines, "build_s": round(built, 1),
        "complete": complete, "runs": runs,
        "first_run_s": med([r["process_s"] for r in first], 2),
        "first_runs": len(first),
        "first_run_peak_rss_mib": max(r["peak_rss_mib"] for r in first),
        "median_s": med([r["process_s"] for r in steady], 2),
        "median_run_s": med([r["run_s"] for r in steady], 2),
        "peak_rss_mib": max(r["peak_rss_mib"] for r in runs),
        "median_stages": {s: med([r["stages"].get(s, 0.0) for r in steady], 2)
                          for s in stages},
        "first_run_stages": {s: med([r["stages"].get(s, 0.0) for r in first], 2)
                             for s in stages}}
    if customers == AIM_CUSTOMERS:
        out["aim_s"] = AIM_SECONDS
        out["aim_met"] = out["median_s"] <= AIM_SECONDS
        out["aim_met_first_run"] = out["first_run_s"] <= AIM_SECONDS
    return out


def bench_size(customers: int, lines: int, repeat: int, workdir: Path,
               save: Callable[[dict[str, Any]], None], keep: bool = False,
               first_runs: int = 1) -> dict[str, Any]:
    """Build the warehouse, run ``first_runs`` times on fresh copies of it, then ``repeat``
    times more; ``save`` gets the result after every run (a benchmark stopped half-way
    leaves the runs it finished, marked incomplete)."""
    from benchmarks.bench_cube import build

    root = workdir / f"run-{customers}"
    shutil.rmtree(root, ignore_errors=True)
    progress(f"run: building a warehouse of {customers:,} customers / {lines:,} lines")
    t0 = time.perf_counter()
    build(root / "ws", customers, lines)
    built = time.perf_counter() - t0
    progress(f"run: built in {built:.1f} s")
    if first_runs > 1:
        shutil.copytree(root / "ws", root / "pristine")
    runs: list[dict[str, Any]] = []
    total = first_runs + repeat
    try:
        for i in range(total):
            if 0 < i < first_runs:
                shutil.rmtree(root / "ws")
                shutil.copytree(root / "pristine", root / "ws")
            m, rep = _run_once(root / "ws")
            runs.append({"first": i < first_runs,
                         "process_s": round(m.seconds, 2), "cpu_s": round(m.cpu_seconds, 1),
                         "run_s": rep["seconds"], "peak_rss_mib": m.peak_rss_mib,
                         "stages": rep["stages"],
                         "churn_fitted": bool(rep.get("churn", {}).get("fitted_in_run")),
                         "customers_scored": rep["customers"], "notes": rep["notes"],
                         # the machine is shared: the 1-minute load average after the run
                         "load_after": round(os.getloadavg()[0], 1)})
            progress(f"run: {customers:,} customers, run {i + 1}/{total} "
                     f"({'trains churn' if runs[-1]['churn_fitted'] else 'model reused'}): "
                     f"{m.seconds:.1f} s (CPU {m.cpu_seconds:.0f} s), {m.peak_rss_mib} MiB")
            save(summarise(customers, lines, built, runs, i == total - 1))
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
    return summarise(customers, lines, built, runs, True)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000],
                    help="customers; lines are --lines-per-customer times that")
    ap.add_argument("--lines-per-customer", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=2,
                    help="runs after the first (which also trains the churn model)")
    ap.add_argument("--first-runs", type=int, default=1,
                    help="first runs (training the churn model), each on a fresh copy of "
                         "the warehouse; their median is reported")
    ap.add_argument("--workdir", type=Path, default=BUILD)
    ap.add_argument("--keep", action="store_true", help="keep the warehouses")
    args = ap.parse_args(argv)
    for n in args.sizes:
        head = {**meta(customers=n, lines=n * args.lines_per_customer, repeat=args.repeat,
                       first_runs=args.first_runs),
                "command": f"kehu run --as-of {AS_OF} --no-warm --json"}

        def save(result: dict[str, Any], head: dict[str, Any] = head, n: int = n) -> None:
            write_result(f"run-{n}", {**head, **result})

        res = bench_size(n, n * args.lines_per_customer, args.repeat, args.workdir, save,
                         args.keep, args.first_runs)
        progress(f"run: written run-{n}.json")
        print(json.dumps({k: res[k] for k in ("customers", "median_s", "first_run_s",
                                              "peak_rss_mib", "median_stages")}, indent=2))

if __name__ == "__main__":
    main()
