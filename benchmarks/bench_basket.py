"""Association rules and next best offers on a synthetic warehouse of baskets.

Builds orders of 1–6 lines (Zipf product popularity, planted product pairs) straight through
``Warehouse.append``, then times ``association_rules`` over all lines (median of ``--repeat``
runs, Delta scans included) and ``next_best_offers`` for every customer, with the peak RSS
after each; finally kehu and mlxtend (apriori + association_rules on a one-hot matrix) on the
same sample of baskets, for a side-by-side ratio.

    python -m benchmarks.bench_basket --customers 200000 --lines 10000000 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import tempfile
import time
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa

from benchmarks.common import RESULTS

PRODUCTS = 2000


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build(root: Path, n: int, lines: int, seed: int = 5) -> object:
    from kehu import Workspace
    from kehu.model import ENTITIES

    ws = Workspace.init(root)
    rng = np.random.default_rng(seed)
    ids = np.char.add("C", np.char.zfill(np.arange(n).astype(str), 8)).astype(object)
    schema = ENTITIES["customers"].arrow_schema()
    ws.warehouse.append("customers", pa.table(
        {f.name: pa.array(ids, f.type) if f.name == "customer_id" else pa.nulls(n, f.type)
         for f in schema}, schema=schema))
    ps = ENTITIES["products"].arrow_schema()
    pids = np.array([f"P{i:04d}" for i in range(PRODUCTS)], dtype=object)
    price = np.round(rng.gamma(2.0, 40.0, PRODUCTS) + 1, 2)
    pcols = {"product_id": pids, "category": np.array([f"K{i % 40:02d}" for i in
                                                       range(PRODUCTS)], dtype=object),
             "unit_price": price, "unit_cost": np.round(price * rng.uniform(0.4, 0.8,
                                                                             PRODUCTS), 2)}
    ws.warehouse.append("products", pa.table(
        {f.name: pa.array(pcols[f.name], f.type) if f.name in pcols
         else pa.nulls(PRODUCTS, f.type) for f in ps}, schema=ps))
    popularity = 1 / np.arange(1, PRODUCTS + 1) ** 0.9
    popularity /= popularity.sum()
    partner = rng.permutation(PRODUCTS)   # planted pairs: i and partner[i]
    ts = ENTITIES["transactions"].arrow_schema()
    rate = rng.gamma(0.8, 1.0, n)
    chunk, order0, written = 1_000_000, 0, 0
    while written < lines:
        k = max(1, min(chunk, lines - written) // 3)   # orders in this chunk, ~3 lines each
        size = rng.integers(1, 6, k)
        who = rng.choice(n, k, p=rate / rate.sum())
        t = (np.datetime64("2023-01-01T00:00:00") + rng.integers(0, 3 * 365 * 86400, k)
             .astype("timedelta64[s]"))
        oid = np.repeat(np.arange(order0, order0 + k), size)
        prod = rng.choice(PRODUCTS, len(oid), p=popularity)
        add = rng.random(len(oid)) < 0.2
        oid = np.concatenate([oid, oid[add]])
        prod = np.concatenate([prod, partner[prod[add]]])
        m = len(oid)
        rel = oid - order0
        amount = price[prod]
        cols = {"transaction_id": np.char.add("T", np.arange(written, written + m).astype(str)),
                "order_id": np.char.add("O", oid.astype(str)), "customer_id": ids[who][rel],
                "transaction_time": t[rel].astype("datetime64[us]"), "product_id": pids[prod],
                "amount": amount, "cost": np.round(amount * 0.6, 2),
                "kind": np.full(m, "purchase", dtype=object)}
        ws.warehouse.append("transactions", pa.table(
            {f.name: pa.array(cols[f.name], f.type) if f.name in cols else pa.nulls(m, f.type)
             for f in ts}, schema=ts))
        order0 += k
        written += m
    return ws


def _mlxtend_ratio(ws: object, baskets: int, min_support: float) -> dict:
    import pandas as pd
    from mlxtend.frequent_patterns import apriori
    from mlxtend.frequent_patterns import association_rules as mlx_rules

    from kehu.analytics.basket import association_rules

    eng = ws.engine  # type: ignore[attr-defined]
    tx = eng.table("transactions")
    keep = tx.select("order_id").distinct().order_by("order_id").limit(baskets)
    sample = tx.semi_join(keep, "order_id")
    lines = sample.select("order_id", "product_id").to_pandas()
    t0 = time.perf_counter()
    ours = association_rules(sample, min_support=min_support).to_pyarrow().num_rows
    kehu_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    onehot = pd.crosstab(lines.order_id, lines.product_id).gt(0)
    freq = apriori(onehot, min_support=min_support, use_colnames=True, max_len=2)
    theirs = len(mlx_rules(freq, num_itemsets=len(onehot), metric="confidence",
                           min_threshold=0.0))
    mlx_s = time.perf_counter() - t0
    return {"baskets": baskets, "lines": len(lines), "min_support": min_support,
            "kehu_s": round(kehu_s, 3), "mlxtend_s": round(mlx_s, 3),
            "mlxtend_over_kehu": round(mlx_s / kehu_s, 1), "rules": [ours, theirs]}


def main(argv: list[str] | None = None) -> None:
    from kehu.analytics.basket import association_rules
    from kehu.models.crosssell import next_best_offers

    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=200_000)
    ap.add_argument("--lines", type=int, default=10_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--min-support", type=float, default=0.0005)
    ap.add_argument("--sample-baskets", type=int, default=50_000)
    args = ap.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="kehu-basket-")) / "ws"
    t0 = time.perf_counter()
    ws = build(root, args.customers, args.lines)
    res: dict = {"date": datetime.now().isoformat(timespec="seconds"), "cpus": os.cpu_count(),
                 "customers": args.customers, "lines": ws.warehouse.count("transactions"),  # type: ignore[attr-defined]
                 "products": PRODUCTS, "build_seconds": round(time.perf_counter() - t0, 1),
                 "rss_after_build_mb": round(_rss_mb())}
    eng = ws.engine  # type: ignore[attr-defined]
    times, rules = [], 0
    for _ in range(args.repeat):
        eng.refresh()
        t0 = time.perf_counter()
        rules = association_rules(eng.table("transactions"),
                                  min_support=args.min_support).to_pyarrow().num_rows
        times.append(time.perf_counter() - t0)
    res["rules"] = {"median_s": round(statistics.median(times), 2),
                    "runs": [round(x, 2) for x in times], "rules": rules,
                    "min_support": args.min_support, "peak_rss_mb": round(_rss_mb())}
    t0 = time.perf_counter()
    offers = next_best_offers(eng, date(2025, 12, 31), k=5, min_support=args.min_support)
    res["offers"] = {"seconds": round(time.perf_counter() - t0, 1), "rows": offers.num_rows,
                     "customers": len(set(offers.column("customer_id").to_pylist())),
                     "peak_rss_mb": round(_rss_mb())}
    del offers
    res["vs_mlxtend"] = _mlxtend_ratio(ws, args.sample_baskets, 0.002)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "basket.json").write_text(json.dumps(res, indent=2, ensure_ascii=False))
    print(json.dumps(res, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
