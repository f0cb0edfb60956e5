"""Demo generator speed and memory: customers/s, rows/s and peak RSS at two sizes.

    python -m benchmarks.bench_generate --sizes 50000 200000 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
from datetime import datetime
from pathlib import Path

from benchmarks.common import RESULTS, measure


def run(n: int, industry: str) -> tuple[float, int, int]:
    out = Path(tempfile.mkdtemp(prefix="kehu-gen-"))
    try:
        m = measure([sys.executable, "-m", "kehu.cli.main", "generate", "--out",
                     str(out / "src"), "--industry", industry, "--customers", str(n), "--json"])
        rows = sum(json.loads(m.stdout)["files"].values())
        return m.seconds, rows, m.peak_rss_mib
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[50_000, 200_000])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--industry", default="retail")
    args = ap.parse_args(argv)
    res = {"date": datetime.now().isoformat(timespec="seconds"), "industry": args.industry,
           "cpus": os.cpu_count(), "sizes": {}}
    for n in args.sizes:
        walls, rss, rows = [], [], 0
        for _ in range(args.repeat):
            w, rows, r = run(n, args.industry)
            walls.append(w)
            rss.append(r)
        med = statistics.median(walls)
        res["sizes"][n] = {"seconds": walls, "median_s": round(med, 2), "rows": rows,
                           "rows_per_s": round(rows / med), "customers_per_s": round(n / med),
                           "peak_rss_mib": max(rss)}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "generate.json").write_text(json.dumps(res, indent=2))
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
