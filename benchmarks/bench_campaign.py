"""Campaigns at scale: plan, launch (contact policy, holdout, warehouse writes, outbox) and
measure (attribution of purchases in the window + statistics) on a synthetic warehouse of
1 M customers / 10 M transaction lines, next to the same attribution done in pandas.

    python -m benchmarks.bench_campaign --customers 1000000 --lines 10000000 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import pandas as pd

from benchmarks.bench_cube import build
from benchmarks.common import RESULTS


def pandas_attribution(ws: object, campaign_id: str, window: int) -> pd.Series:
    """The reference: contacts merged with every purchase of their customer, filtered to the
    window, summed per contact."""
    wh = ws.warehouse  # type: ignore[attr-defined]
    k = wh.read("campaign_contacts").to_pandas()
    k = k[k.campaign_id == campaign_id][["contact_id", "customer_id", "contact_time"]]
    tx = wh.read("transactions", columns=["customer_id", "transaction_time", "amount"]) \
        .to_pandas()
    j = k.merge(tx, on="customer_id")
    j = j[(j.transaction_time > j.contact_time) &
          (j.transaction_time <= j.contact_time + pd.Timedelta(days=window))]
    return j.groupby("contact_id").amount.sum().reindex(k.contact_id, fill_value=0.0)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--lines", type=int, default=10_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    from kehu.campaigns.launch import launch, plan
    from kehu.campaigns.measure import measure
    from kehu.campaigns.spec import CampaignSpec

    root = Path(tempfile.mkdtemp(prefix="kehu-bench-camp-"))
    t0 = time.perf_counter()
    ws = build(root / "ws", args.customers, args.lines)
    build_s = time.perf_counter() - t0

    def spec(i: int) -> CampaignSpec:
        # push needs no address, so the whole audience is contactable (the policy still runs)
        return CampaignSpec.parse({
            "id": f"B{i}", "name": f"bench {i}", "channel": "push",
            "attribution": "transactions",
            "audience": {"rule": {"field": "region", "op": "in", "value": ["广东", "上海"]}},
            "offers": {"default": {"text": "满200减30"}},
            "schedule": {"start": (date(2025, 6, 1) + timedelta(days=40 * i)).isoformat()},
            "attribution_window_days": 30})

    plans, launches, measures, refs = [], [], [], []
    rep = None
    for i in range(args.repeat):
        t = time.perf_counter()
        p = plan(ws, spec(i))  # type: ignore[arg-type]
        plans.append(time.perf_counter() - t)
        t = time.perf_counter()
        rep = launch(ws, spec(i), "bench", seed=i)  # type: ignore[arg-type]
        launches.append(time.perf_counter() - t)
        t = time.perf_counter()
        m = measure(ws, f"B{i}", by_segment=False)  # type: ignore[arg-type]
        measures.append(time.perf_counter() - t)
        t = time.perf_counter()
        ref = pandas_attribution(ws, f"B{i}", 30)
        refs.append(time.perf_counter() - t)
        # the two agree
        assert abs(float(ref.sum()) - (m.revenue_per_contact["mean_treat"] * m.n_treatment
                                       + m.revenue_per_contact["mean_control"] * m.n_control)
                   ) < 1e-6 * max(1.0, float(ref.sum()))
    assert rep is not None
    out = {
        "benchmark": "campaign", "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "customers": args.customers, "lines": args.lines, "build_s": round(build_s, 1),
        "audience": p.eligible, "treatment": rep.treatment, "control": rep.control,
        "plan_s": round(statistics.median(plans), 2),
        "launch_s": round(statistics.median(launches), 2),
        "measure_s": round(statistics.median(measures), 2),
        "pandas_attribution_s": round(statistics.median(refs), 2),
        "ratio_pandas_over_kehu_measure": round(statistics.median(refs) /
                                                statistics.median(measures), 2),
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 2),
        "runs": args.repeat}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "campaign.json").write_text(json.dumps(out, indent=2), encoding="utf-8")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
