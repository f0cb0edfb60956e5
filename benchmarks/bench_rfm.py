"""The per-customer RFM summary (frequency, recency, T, monetary value at an as-of date, day
resolution) three ways on the same transactions, side by side in the same run:

- kehu: ``kehu.analytics.customer_summary`` — an Ibis expression run by DuckDB;
- ``lifetimes.utils.summary_data_from_transaction_data`` (pandas inside);
- a plain pandas group-by written for this benchmark.

All three read the same Parquet file (customer id, time, amount; some lines fall after the
as-of date and must be left out). Each tool runs in its own process (wall time of the read and
the summary measured inside; peak RSS of the process from ``wait4``); the outputs are then
compared customer by customer: frequency equal, recency / T / monetary value equal to 1e-9
relative.

    python -m benchmarks.bench_rfm --customers 1000000 --lines 10000000 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.common import BUILD, measure, med, meta, progress, python_worker, write_result

AS_OF = date(2025, 12, 31)
TOOLS = ("kehu", "pandas", "lifetimes")
COLUMNS = ("frequency", "recency", "T", "monetary_value")


def make_transactions(path: Path, customers: int, lines: int, seed: int = 5) -> Path:
    """Write (once) ``lines`` purchases of ``customers`` customers with gamma-distributed
    purchase rates, 2023-01-01 to 2026-03-31 (a quarter after the as-of date), in chunks."""
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    ids = np.char.add("C", np.char.zfill(np.arange(customers).astype(str), 8)).astype(object)
    rate = rng.gamma(0.8, 1.0, customers)
    p = rate / rate.sum()
    span = int((np.datetime64("2026-04-01") - np.datetime64("2023-01-01"))
               / np.timedelta64(1, "s"))
    schema = pa.schema([("customer_id", pa.string()), ("transaction_time", pa.timestamp("us")),
                        ("amount", pa.float64())])
    tmp = path.with_suffix(".tmp")
    with pq.ParquetWriter(tmp, schema) as w:
        for start in range(0, lines, 2_000_000):
            m = min(2_000_000, lines - start)
            t = (np.datetime64("2023-01-01T00:00:00")
                 + rng.integers(0, span, m).astype("timedelta64[s]"))
            w.write_table(pa.table({
                "customer_id": ids[rng.choice(customers, m, p=p)],
                "transaction_time": t.astype("datetime64[us]"),
                "amount": np.round(rng.gamma(2.0, 60.0, m), 2)}, schema=schema))
    tmp.rename(path)
    return path


# --- the three implementations (each reads the file itself) -------------------------------


def kehu_summary(path: Path, as_of: date = AS_OF) -> tuple[pd.DataFrame, float]:
    """kehu's summary on DuckDB; returns (summary indexed by customer, seconds to read)."""
    import ibis

    from kehu.analytics import customer_summary

    con = ibis.duckdb.connect()
    t0 = time.perf_counter()
    tx = con.read_parquet(str(path))
    read_s = time.perf_counter() - t0
    out = customer_summary(tx, as_of, "D").to_pyarrow().to_pandas()
    return out.set_index("customer_id"), read_s


def lifetimes_summary(path: Path, as_of: date = AS_OF) -> tuple[pd.DataFrame, float]:
    from lifetimes.utils import summary_data_from_transaction_data

    t0 = time.perf_counter()
    df = pd.read_parquet(path)
    read_s = time.perf_counter() - t0
    out = summary_data_from_transaction_data(
        df, "customer_id", "transaction_time", monetary_value_col="amount",
        observation_period_end=pd.Timestamp(as_of), freq="D")
    return out, read_s


def pandas_summary(path: Path, as_of: date = AS_OF) -> tuple[pd.DataFrame, float]:
    """The same definitions in plain pandas: purchase days, the first and last day, the mean
    spend of the days after the first."""
    t0 = time.perf_counter()
    df = pd.read_parquet(path)
    read_s = time.perf_counter() - t0
    df = df[df.transaction_time < pd.Timestamp(as_of + timedelta(days=1))]
    df = df.assign(day=df.transaction_time.dt.floor("D"))
    days = df.groupby(["customer_id", "day"], sort=False).amount.sum().reset_index()
    g = days.groupby("customer_id", sort=False).day
    first = g.transform("min")
    per = days.assign(repeat=days.amount.where(days.day > first)).groupby(
        "customer_id", sort=False).agg(first=("day", "min"), last=("day", "max"),
                                       n=("day", "size"), monetary_value=("repeat", "mean"))
    end = pd.Timestamp(as_of)
    return pd.DataFrame({
        "frequency": (per.n - 1).astype("float64"),
        "recency": (per["last"] - per["first"]).dt.days.astype("float64"),
        "T": (end - per["first"]).dt.days.astype("float64"),
        "monetary_value": per.monetary_value.fillna(0.0)}, index=per.index), read_s


IMPLEMENTATIONS = {"kehu": kehu_summary, "pandas": pandas_summary,
                   "lifetimes": lifetimes_summary}


def compare(a: pd.DataFrame, b: pd.DataFrame, rtol: float = 1e-9) -> dict[str, Any]:
    """Customer by customer: the same customers; frequency equal; recency, T and monetary
    value equal to ``rtol`` relative (absolute below 1e-9). Returns the counts of
    mismatches per column and ``agree``."""
    a = a.sort_index()
    b = b.sort_index()
    same_customers = bool(a.index.equals(b.index))
    out: dict[str, Any] = {"customers": [len(a), len(b)], "same_customers": same_customers}
    if not same_customers:
        out["agree"] = False
        out["only_in_first"] = len(a.index.difference(b.index))
        out["only_in_second"] = len(b.index.difference(a.index))
        return out
    bad = {}
    for c in COLUMNS:
        x = a[c].to_numpy(dtype="float64")
        y = b[c].to_numpy(dtype="float64")
        if c == "frequency":
            bad[c] = int((x != y).sum())
        else:
            bad[c] = int((~np.isclose(x, y, rtol=rtol, atol=1e-9)).sum())
    out["mismatches"] = bad
    out["max_abs_diff_monetary"] = float(np.max(np.abs(
        a.monetary_value.to_numpy(dtype="float64") - b.monetary_value.to_numpy(dtype="float64")),
        initial=0.0))
    out["agree"] = not any(bad.values())
    return out


def _preload(tool: str) -> None:
    """Import what ``tool`` needs before the clock starts (the timing is of the work)."""
    if tool == "kehu":
        import ibis

        import kehu.analytics  # noqa: F401

        ibis.duckdb.connect().disconnect()   # loads the backend
    elif tool == "lifetimes":
        import lifetimes.utils  # noqa: F401


def worker(tool: str, path: Path, out: Path) -> None:
    """One timed summary in this process; prints its timings as JSON."""
    _preload(tool)
    t0 = time.perf_counter()
    res, read_s = IMPLEMENTATIONS[tool](path)
    total = time.perf_counter() - t0
    res.reset_index()[["customer_id", *COLUMNS]].to_parquet(out)
    sys.stdout.write(json.dumps({"total_s": total, "read_s": read_s,
                                 "summary_s": total - read_s, "customers": len(res)}) + "\n")


def bench(customers: int, lines: int, repeat: int, workdir: Path,
          tools: tuple[str, ...] = TOOLS) -> dict[str, Any]:
    progress(f"rfm: data {customers:,} customers / {lines:,} lines")
    data = make_transactions(workdir / f"rfm-tx-{customers}-{lines}.parquet", customers, lines)
    res: dict[str, Any] = {**meta(customers=customers, lines=lines, repeat=repeat),
                           "as_of": AS_OF.isoformat(), "tools": {}}
    outputs: dict[str, Path] = {}
    for tool in tools:
        runs: list[dict[str, Any]] = []
        for i in range(repeat):
            out = workdir / f"rfm-out-{tool}.parquet"
            m = measure(python_worker("benchmarks.bench_rfm", "--worker", tool, "--data",
                                      str(data), "--out", str(out)))
            inner = m.json()
            runs.append({"process_s": round(m.seconds, 3), "total_s": round(inner["total_s"], 3),
                         "read_s": round(inner["read_s"], 3),
                         "summary_s": round(inner["summary_s"], 3),
                         "peak_rss_mib": m.peak_rss_mib})
            progress(f"rfm: {tool} run {i + 1}/{repeat}: {inner['total_s']:.2f} s, "
                     f"{m.peak_rss_mib} MiB")
            outputs[tool] = out
        res["tools"][tool] = {
            "runs": runs, "median_s": med([r["total_s"] for r in runs]),
            "median_summary_s": med([r["summary_s"] for r in runs]),
            "median_process_s": med([r["process_s"] for r in runs]),
            "peak_rss_mib": max(r["peak_rss_mib"] for r in runs)}
    k = res["tools"].get("kehu")
    if k:
        res["ratio"] = {t: round(v["median_s"] / k["median_s"], 2)
                        for t, v in res["tools"].items() if t != "kehu"}
    frames = {t: pd.read_parquet(p).set_index("customer_id") for t, p in outputs.items()}
    ref = "lifetimes" if "lifetimes" in frames else next(iter(frames))
    res["agreement"] = {f"{t} vs {ref}": compare(frames[t], frames[ref])
                        for t in frames if t != ref}
    res["summary_customers"] = len(frames[ref])
    for p in outputs.values():
        p.unlink(missing_ok=True)
    return res


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--lines", type=int, default=None, help="default: 10 per customer")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--tools", nargs="+", default=list(TOOLS), choices=TOOLS)
    ap.add_argument("--workdir", type=Path, default=BUILD)
    ap.add_argument("--worker", choices=TOOLS, help=argparse.SUPPRESS)
    ap.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker(args.worker, args.data, args.out)
        return
    lines = args.lines or 10 * args.customers
    res = bench(args.customers, lines, args.repeat, args.workdir, tuple(args.tools))
    path = write_result(f"rfm-{args.customers}", res)
    progress(f"rfm: written {path}")
    print(json.dumps({k: res[k] for k in ("ratio", "agreement") if k in res}, indent=2))


if __name__ == "__main__":
    main()
