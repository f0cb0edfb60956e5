"""Churn at scale: feature build, training (time-based hold-out, registered model) and
scoring every customer with reasons, on the synthetic warehouse of bench_cube (non-contractual
churn: no purchase in the 90 days after the cut-off).

    python -m benchmarks.bench_churn --customers 1000000 --lines 10000000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from datetime import date, datetime
from pathlib import Path

from benchmarks.common import RESULTS


def _rss_mb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


def main(argv: list[str] | None = None) -> None:
    from benchmarks.bench_cube import build
    from kehu.analytics.features import customer_features
    from kehu.models.churn import service
    from kehu.models.churn.definition import ChurnDefinition

    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--lines", type=int, default=10_000_000)
    ap.add_argument("--workspace", type=Path, default=None,
                    help="Reuse a warehouse built by bench_cube (skips the build).")
    args = ap.parse_args(argv)
    from kehu import Workspace

    if args.workspace and (args.workspace / "kehu.toml").exists():
        ws = Workspace.open(args.workspace)
    else:
        ws = build(Path(tempfile.mkdtemp(prefix="kehu-churn-")) / "ws", args.customers,
                   args.lines)  # type: ignore[assignment]
    as_of = date(2025, 12, 31)
    res: dict = {"date": datetime.now().isoformat(timespec="seconds"), "cpus": os.cpu_count(),
                 "customers": args.customers, "lines": args.lines}
    with ws.engine.cached():
        t0 = time.perf_counter()
        ws.engine.table("transactions").count().execute()
        res["copy_tables_s"] = round(time.perf_counter() - t0, 1)
        t0 = time.perf_counter()
        feats = customer_features(ws.engine, as_of).to_pyarrow()
        res["features_s"] = round(time.perf_counter() - t0, 1)
        res["feature_rows"], res["feature_columns"] = feats.num_rows, feats.num_columns
        t0 = time.perf_counter()
        rep = service.fit(ws, as_of, ChurnDefinition(kind="non_contractual"))
        res["fit_s"] = round(time.perf_counter() - t0, 1)
        res["fit"] = {"train_rows": rep.train_rows, "holdout_rows": rep.holdout_rows,
                      "model": rep.chosen_model, "auc": round(rep.holdout["auc"], 4),
                      "lift_top_decile": round(rep.holdout["lift_top_decile"], 2)}
        t0 = time.perf_counter()
        scores, _drift = service.score(ws, as_of)
        res["score_s"] = round(time.perf_counter() - t0, 1)
        res["scored"] = len(scores)
    res["peak_rss_mb"] = _rss_mb()
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"churn-{args.customers}.json").write_text(json.dumps(res, indent=2))
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
