"""Import throughput: N generated transaction rows from CSV and from Parquet.

Runs ``kehu import transactions`` as a real subprocess on a fresh workspace (customers loaded
first, so the reference check runs), and, side by side on the same file, DuckDB loading the
file into Parquet without any validation (the floor of what a loader on this machine can do).
Reports the median wall time of several runs, rows/s and the peak resident memory of the
process (``wait4`` rusage).

    python -m benchmarks.bench_import --rows 10000000 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from benchmarks.common import RESULTS, measure, meta, progress

DATA = Path(__file__).parent / ".data"
N_CUSTOMERS = 1_000_000


def make_data(rows: int) -> tuple[Path, Path, Path]:
    """Write (once) customers.csv, tx-<rows>.csv and tx-<rows>.parquet, streaming in chunks."""
    DATA.mkdir(exist_ok=True)
    cust = DATA / "customers-1m.csv"
    csv_path, pq_path = DATA / f"tx-{rows}.csv", DATA / f"tx-{rows}.parquet"
    if not cust.exists():
        ids = np.arange(N_CUSTOMERS)
        pcsv.write_csv(pa.table({"customer_id": np.char.add("C", ids.astype(str)),
                                 "name": np.char.add("客户", ids.astype(str))}), cust)
    if csv_path.exists() and pq_path.exists():
        return cust, csv_path, pq_path
    rng = np.random.default_rng(7)
    chunk = 1_000_000
    schema = pa.schema([("交易流水号", pa.string()), ("客户编号", pa.string()),
                        ("交易时间", pa.string()), ("产品编号", pa.string()),
                        ("数量", pa.int64()), ("金额", pa.float64()), ("渠道", pa.string())])
    with pcsv.CSVWriter(csv_path, schema) as cw, pq.ParquetWriter(pq_path, schema) as pw:
        for start in range(0, rows, chunk):
            n = min(chunk, rows - start)
            secs = rng.integers(0, 3 * 365 * 86400, n)
            times = (np.datetime64("2022-01-01T00:00:00") + secs.astype("timedelta64[s]"))
            t = pa.table({
                "交易流水号": np.char.add("T", np.arange(start, start + n).astype(str)),
                "客户编号": np.char.add("C", rng.integers(0, N_CUSTOMERS, n).astype(str)),
                "交易时间": np.datetime_as_string(times, unit="s"),
                "产品编号": np.char.add("P", rng.integers(0, 2000, n).astype(str)),
                "数量": rng.integers(1, 6, n),
                "金额": np.round(rng.gamma(2.0, 60.0, n), 2),
                "渠道": rng.choice(np.array(["门店", "网站", "app", "热线"]), n),
            }, schema=schema)
            cw.write_table(t)
            pw.write_table(t)
    return cust, csv_path, pq_path


def _popen_rusage(cmd: list[str]) -> tuple[float, int, str]:
    """Wall time, the process's own peak RSS (MiB) and its output (benchmarks.common)."""
    m = measure(cmd)
    return m.seconds, m.peak_rss_mib, m.stdout


def bench(rows: int, repeat: int) -> dict:
    cust, csv_path, pq_path = make_data(rows)
    py = sys.executable
    results: dict = {**meta(rows=rows, repeat=repeat, customers=N_CUSTOMERS),
                     "rows": rows, "repeat": repeat, "platform": platform.platform(),
                     "cpus": os.cpu_count(), "runs": {}}
    for label, src in (("csv", csv_path), ("parquet", pq_path)):
        kehu_walls, kehu_rss, duck_walls, duck_rss = [], [], [], []
        for _ in range(repeat):
            tmp = Path(tempfile.mkdtemp(prefix="kehu-bench-"))
            try:
                ws = tmp / "ws"
                subprocess.run([py, "-m", "kehu.cli.main", "init", str(ws)], check=True,
                               capture_output=True)
                subprocess.run([py, "-m", "kehu.cli.main", "import", "customers", str(cust),
                                "-w", str(ws), "--yes", "--json"], check=True,
                               capture_output=True)
                wall, rss, out = _popen_rusage([py, "-m", "kehu.cli.main", "import",
                                                "transactions", str(src), "-w", str(ws),
                                                "--yes", "--json"])
                rep = json.loads(out)
                assert rep["read"] == rows == rep["loaded"] + rep["rejected"], rep
                kehu_walls.append(wall)
                progress(f"import: {label} kehu {wall:.1f} s, {rss} MiB")
                kehu_rss.append(rss)
                reader = "read_csv" if label == "csv" else "read_parquet"
                code = (f"import duckdb; duckdb.sql(\"COPY (SELECT * FROM {reader}('{src}')) "
                        f"TO '{tmp / 'out.parquet'}' (FORMAT parquet)\")")
                wall, rss, _ = _popen_rusage([py, "-c", code])
                duck_walls.append(wall)
                duck_rss.append(rss)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        k, d = statistics.median(kehu_walls), statistics.median(duck_walls)
        results["runs"][label] = {
            "kehu_seconds": kehu_walls, "kehu_median_s": round(k, 2),
            "file_mib": round(src.stat().st_size / 2 ** 20),
            "kehu_rows_per_s": round(rows / k), "kehu_peak_rss_mib": max(kehu_rss),
            "duckdb_seconds": duck_walls, "duckdb_median_s": round(d, 2),
            "duckdb_rows_per_s": round(rows / d), "duckdb_peak_rss_mib": max(duck_rss),
            "ratio_kehu_over_duckdb": round(k / d, 2),
        }
    return results


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    res = bench(args.rows, args.repeat)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"import-{args.rows}.json"
    out.write_text(json.dumps(res, indent=2))
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
