"""Demo generator speed and memory: customers/s, rows/s and peak RSS at two sizes.

    python -m benchmarks.bench_generate --sizes 50000 200000 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def run(n: int, industry: str) -> tuple[float, int, int]:
    out = Path(tempfile.mkdtemp(prefix="kehu-gen-"))
    try:
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "kehu.cli.main", "generate", "--out",
                                 str(out / "src"), "--industry", industry, "--customers", str(n),
                                 "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        data = proc.stdout.read() if proc.stdout else b""
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        if status:
            raise RuntimeError(proc.stderr.read().decode() if proc.stderr else "failed")
        rows = sum(json.loads(data)["files"].values())
        return wall, rows, usage.ru_maxrss // 1024
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[50_000, 200_000])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--industry", default="retail")
    args = ap.parse_args()
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
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "generate.json").write_text(json.dumps(res, indent=2))
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
