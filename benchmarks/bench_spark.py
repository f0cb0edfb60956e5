"""The analysis run on Spark local mode against DuckDB on the same workspace: seconds per stage
and in total (median of runs), and whether the two agree.

A demo company (retail, ``--customers``) is generated and imported once; every run starts
from a fresh copy of that workspace, so each does the same work (fitting the churn model
included). Spark's session is started once and its start-up time reported on its own. The
agreement check compares the two engines' ``customer_scores`` customer by customer, and the
run's other tables. Row sizes of the main intermediate results are measured for the scaling
estimate in docs/spark.md.

    python -m benchmarks.bench_spark                      # 100 k customers, 3 runs each
    python -m benchmarks.bench_spark --customers 1000000 --repeat 1 --driver-memory 4g
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).parent / "results"


def build(root: Path, customers: int, seed: int = 7) -> tuple[Path, dict[str, Any]]:
    from kehu import Workspace
    from kehu.demo import generate
    from kehu.ingest.manifest import load_manifest

    t0 = time.perf_counter()
    s = generate("retail", customers, seed=seed, out=root / "src")
    ws = Workspace.init(root / "base")
    load_manifest(ws, s.manifest)
    rows = {t: ws.warehouse.count(t) for t in ws.warehouse.tables() if not t.startswith("_")}
    ws.close()
    return root / "base", {"build_seconds": round(time.perf_counter() - t0, 1), "rows": rows}


def one_run(base: Path, dest: Path, engine: str) -> dict[str, Any]:
    from kehu import Workspace
    from kehu.analytics.run import analysis_run

    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(base, dest)
    ws = Workspace.open(dest)
    ws.use_engine(engine)
    t0 = time.perf_counter()
    rep = analysis_run(ws)
    total = time.perf_counter() - t0
    ws.close()
    return {"seconds": total, "stages": rep.stages, "clv": rep.clv, "notes": rep.notes,
            "segments": rep.segments, "customers": rep.customers}


def agreement(a: Path, b: Path) -> dict[str, Any]:
    """How far apart two runs' scores are (DuckDB in ``a``, Spark in ``b``)."""
    from kehu.warehouse import Warehouse

    x = Warehouse(a / "warehouse").read("customer_scores").to_pandas()
    y = Warehouse(b / "warehouse").read("customer_scores").to_pandas()
    x, y = x.set_index("customer_id").sort_index(), y.set_index("customer_id").sort_index()
    out: dict[str, Any] = {"rows": [len(x), len(y)], "same_customers": bool(x.index.equals(
        y.index)), "same_columns": list(x.columns) == list(y.columns)}
    worst: dict[str, float] = {}
    differing: dict[str, int] = {}
    for c in x.columns:
        if c in ("run_id",):
            continue
        u, v = x[c], y[c]
        if u.dtype.kind == "f":
            uu, vv = u.to_numpy(float), v.to_numpy(float)
            both = ~(np.isnan(uu) | np.isnan(vv))
            rel = np.abs(uu[both] - vv[both]) / np.maximum(np.abs(uu[both]), 1.0)
            worst[c] = float(rel.max()) if rel.size else 0.0
            # the parity tests' tolerance for model outputs: 1e-6 (of the value, at least 1)
            differing[c] = int((np.isnan(uu) != np.isnan(vv)).sum() + (rel > 1e-6).sum())
        else:
            differing[c] = int((~((u == v) | (u.isna() & v.isna()))).sum())
    out["max_relative_difference"] = {k: v for k, v in worst.items() if v > 0}
    out["differing_values"] = {k: v for k, v in differing.items() if v}
    out["clv_total"] = [float(x.clv.sum()), float(y.clv.sum())]
    out["tiers"] = [x.tier.value_counts().to_dict(), y.tier.value_counts().to_dict()]
    out["agree"] = (out["same_customers"] and out["same_columns"]
                    and not out["differing_values"])
    return out


def row_sizes(base: Path, dest: Path) -> dict[str, Any]:
    """Bytes per row (Arrow, in memory) of the inputs and the run's main intermediate results,
    and Parquet bytes per row on disk — the numbers behind the scaling estimate."""
    from kehu import Workspace
    from kehu.analytics.features import customer_features
    from kehu.analytics.rfm import rfm, rfm_classes
    from kehu.analytics.summary import customer_summary, last_transaction_day

    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(base, dest)
    ws = Workspace.open(dest)
    eng = ws.engine
    as_of = last_transaction_day(eng)
    tx = eng.table("transactions")
    out: dict[str, Any] = {}

    def arrow(name: str, expr: Any) -> None:
        t = eng.execute_arrow(expr)
        out[name] = {"rows": t.num_rows, "arrow_bytes_per_row": round(t.nbytes / max(
            t.num_rows, 1), 1)}

    arrow("transactions (columns the run reads)", tx.select(
        "customer_id", "transaction_time", "amount", "cost", "kind", "product_id", "order_id",
        "transaction_id", "channel"))
    arrow("rfm_classes", rfm_classes(rfm(tx, as_of)))
    arrow("customer_summary", customer_summary(tx, as_of))
    arrow("churn features", customer_features(eng, as_of))
    arrow("(customer, day) purchase days", tx.select(
        "customer_id", day=tx.transaction_time.cast("date")).distinct())
    for t in ("transactions", "customers"):
        files = ws.warehouse.delta(t).file_uris()
        size = sum(os.path.getsize(f.removeprefix("file://")) for f in files)
        out[f"{t} parquet"] = {"rows": ws.warehouse.count(t),
                               "parquet_bytes_per_row": round(size / ws.warehouse.count(t), 1)}
    ws.close()
    return out


def main(argv: list[str] | None = None) -> None:
    from kehu.warehouse.spark import _start_session

    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--driver-memory", default="3g", help="Spark local mode: the whole JVM")
    ap.add_argument("--master", default="local[*]")
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="kehu-spark-"))
    base, built = build(tmp, args.customers)
    print(f"built {args.customers:,} customers in {built['build_seconds']} s", flush=True)
    res: dict[str, Any] = {
        "date": datetime.now().isoformat(timespec="seconds"), "cpus": os.cpu_count(),
        "machine": platform.platform(), "customers": args.customers, **built,
        "spark_master": args.master, "spark_driver_memory": args.driver_memory}
    import duckdb
    import pyspark

    res["versions"] = {"duckdb": duckdb.__version__, "pyspark": pyspark.__version__}
    runs: dict[str, list[dict[str, Any]]] = {"duckdb": [], "spark": []}
    for i in range(args.repeat):
        r = one_run(base, tmp / "duckdb", "duckdb")
        runs["duckdb"].append(r)
        print(f"duckdb run {i + 1}: {r['seconds']:.1f} s", flush=True)
    t0 = time.perf_counter()
    session, _ = _start_session(args.master, {"spark.driver.memory": args.driver_memory})
    res["spark_start_seconds"] = round(time.perf_counter() - t0, 1)
    for i in range(args.repeat):
        r = one_run(base, tmp / "spark", "spark")
        runs["spark"].append(r)
        print(f"spark run {i + 1}: {r['seconds']:.1f} s", flush=True)
    res["agreement"] = agreement(tmp / "duckdb", tmp / "spark")
    session.stop()
    res["row_sizes"] = row_sizes(base, tmp / "sizes")
    for name, rs in runs.items():
        stages = {s: round(statistics.median(r["stages"][s] for r in rs), 2)
                  for s in rs[0]["stages"]}
        res[name] = {"total_median_s": round(statistics.median(r["seconds"] for r in rs), 1),
                     "runs_s": [round(r["seconds"], 1) for r in rs],
                     "stages_median_s": stages, "clv": rs[-1]["clv"],
                     "segments": rs[-1]["segments"], "notes": rs[-1]["notes"]}
    RESULTS.mkdir(parents=True, exist_ok=True)
    suffix = "" if args.customers == 100_000 else f"-{args.customers}"
    (RESULTS / f"spark{suffix}.json").write_text(json.dumps(res, indent=2, ensure_ascii=False,
                                                            default=str))
    print(table(res))
    shutil.rmtree(tmp, ignore_errors=True)


def table(res: dict[str, Any]) -> str:
    """The results as a markdown table: seconds per stage on each engine and the ratio."""
    d, s = res["duckdb"]["stages_median_s"], res["spark"]["stages_median_s"]
    lines = [f"Analysis run, {res['customers']:,} customers, median of "
             f"{len(res['duckdb']['runs_s'])} runs ({res['cpus']} cores; Spark "
             f"{res['spark_master']}, driver {res['spark_driver_memory']}; Spark start-up "
             f"{res['spark_start_seconds']} s not included):", "",
             "| stage | DuckDB s | Spark s | Spark / DuckDB |", "|---|---:|---:|---:|"]
    for k in d:
        ratio = f"{s[k] / d[k]:.1f}×" if d[k] else "-"
        lines.append(f"| {k} | {d[k]:.2f} | {s[k]:.2f} | {ratio} |")
    dt, st = res["duckdb"]["total_median_s"], res["spark"]["total_median_s"]
    lines.append(f"| **total** | **{dt:.1f}** | **{st:.1f}** | **{st / dt:.1f}×** |")
    a = res["agreement"]
    lines += ["", f"Agreement: {'yes' if a['agree'] else 'NO'} — {a['rows'][0]:,} customers; "
              f"CLV total {a['clv_total'][0]:,.2f} (DuckDB) vs {a['clv_total'][1]:,.2f} "
              f"(Spark); values differing beyond 1e-6: {a['differing_values'] or 'none'}; "
              f"largest relative difference: "
              f"{max(a['max_relative_difference'].values(), default=0.0):.1e}."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
