"""CLV models: the CDNOW hold-out check (calibrate weeks 1–39, predict weeks 40–78) and the
speed of fitting BG/NBD on 1 M customers, side by side with ``lifetimes``.

    python -m benchmarks.bench_clv --customers 1000000 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from datetime import date, datetime
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"
CDNOW = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}


def holdout() -> dict:
    import ibis
    import lifetimes
    import pandas as pd

    from kehu import Workspace
    from kehu.analytics import customer_summary
    from kehu.datasets import DATASETS
    from kehu.ingest import Importer, plan_import
    from kehu.models.clv import BetaGeo

    ws = Workspace.init(Path(tempfile.mkdtemp()) / "ws")
    d = DATASETS["cdnow_sample"]
    Importer(ws, add_unknown_customers=True).run(
        plan_import(ws, "transactions", [d.path], mapping_file=d.mapping_path))
    tx = ws.engine.table("transactions")
    cal_end, end = date(1997, 9, 30), date(1998, 6, 30)
    cal = customer_summary(tx, cal_end, "W").to_pandas().set_index("customer_id")
    hold = tx.filter((tx.transaction_time.cast("date") > ibis.literal(cal_end))
                     & (tx.transaction_time.cast("date") <= ibis.literal(end)))
    actual = hold.group_by("customer_id").aggregate(
        n=hold.transaction_time.cast("date").nunique()).to_pandas().set_index("customer_id").n
    cal["actual"] = actual.reindex(cal.index).fillna(0)
    horizon = (end - cal_end).days / 7
    m = BetaGeo().fit(cal.frequency, cal.recency, cal["T"])
    cal["kehu"] = m.expected_purchases(horizon, cal.frequency, cal.recency, cal["T"])
    ref = lifetimes.BetaGeoFitter().fit(cal.frequency, cal.recency, cal["T"])
    cal["lifetimes"] = ref.conditional_expected_number_of_purchases_up_to_time(
        horizon, cal.frequency, cal.recency, cal["T"])
    bins = cal.assign(x=cal.frequency.clip(upper=7)).groupby("x")[
        ["actual", "kehu", "lifetimes"]].mean().round(3)
    return {
        "customers": len(cal), "horizon_weeks": round(horizon, 2),
        "actual_total": float(cal.actual.sum()), "kehu_total": round(float(cal.kehu.sum()), 1),
        "lifetimes_total": round(float(cal.lifetimes.sum()), 1),
        "kehu_mae_per_customer": round(float((cal.kehu - cal.actual).abs().mean()), 4),
        "lifetimes_mae_per_customer": round(float((cal.lifetimes - cal.actual).abs().mean()), 4),
        "corr_kehu_actual": round(float(np.corrcoef(cal.kehu, cal.actual)[0, 1]), 4),
        "by_calibration_frequency": {int(k): v for k, v in bins.to_dict(orient="index").items()},
        "kehu_params": m.params_, "lifetimes_params": {k: float(v) for k, v in
                                                        ref.params_.items()},
        "pd": pd.__version__,
    }


def simulate(n: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """BG/NBD histories at the CDNOW parameters, observed for 27–39 weeks at day resolution."""
    from kehu.models.clv.simulate import simulate_bgnbd

    return simulate_bgnbd(n, **{k: CDNOW[k] for k in ("r", "alpha", "a", "b")}, seed=seed)


def fit_speed(n: int, repeat: int) -> dict:
    import lifetimes

    from kehu.models.clv import BetaGeo

    x, tx, T = simulate(n)
    kehu_s, ll_k = [], 0.0
    for _ in range(repeat):
        t0 = time.perf_counter()
        m = BetaGeo().fit(x, tx, T)
        kehu_s.append(time.perf_counter() - t0)
        ll_k = m.log_likelihood_
    lt_s = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        ref = lifetimes.BetaGeoFitter().fit(x, tx, T)
        lt_s.append(time.perf_counter() - t0)
    # lifetimes rescales time internally, so its stored likelihood is on another scale:
    # evaluate both optima with the same (kehu's) log-likelihood function
    from kehu.models.clv.bgnbd import _loglik, sufficient_statistics

    theta = np.array([ref.params_[k] for k in ("r", "alpha", "a", "b")])
    ll_l = _loglik(theta, *sufficient_statistics(x, tx, T))[0]
    k, lt = statistics.median(kehu_s), statistics.median(lt_s)
    return {"customers": n, "distinct_histories": int(m.n_distinct_),
            "kehu_seconds": kehu_s, "kehu_median_s": round(k, 3),
            "lifetimes_seconds": lt_s, "lifetimes_median_s": round(lt, 3),
            "speedup": round(lt / k, 1), "kehu_ll": ll_k, "lifetimes_ll": ll_l,
            "ll_rel_diff": abs(ll_k - ll_l) / abs(ll_l), "kehu_params": m.params_,
            "lifetimes_params": {kk: float(v) for kk, v in ref.params_.items()}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    res = {"date": datetime.now().isoformat(timespec="seconds"), "cpus": os.cpu_count(),
           "holdout": holdout(), "fit": fit_speed(args.customers, args.repeat)}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "clv.json").write_text(json.dumps(res, indent=2, default=str))
    print(json.dumps(res, indent=2, default=str))


if __name__ == "__main__":
    main()
