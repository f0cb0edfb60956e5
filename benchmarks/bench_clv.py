"""CLV models: the CDNOW hold-out check (calibrate weeks 1–39, predict weeks 40–78) and the
BG/NBD fit side by side with ``lifetimes`` (``BetaGeoFitter``) and ``pymc-marketing``
(``BetaGeoModel``, MAP) on the same customers, in the same run:

- ``cdnow``: N customers drawn from BG/NBD at the CDNOW parameters, observed 27–39 weeks at
  day resolution (about 10 % distinct (x, t_x, T) histories);
- ``three-years``: the same process with customers joining over three years (observed 4–156
  weeks, day resolution), like the warehouse of a ``kehu run``: about 40 % distinct histories.

(The synthetic warehouse of bench_run / bench_rfm has no dropout, so its BG/NBD optimum lies
on the boundary, where ``lifetimes`` reports that it did not converge: a speed comparison
needs data with an interior optimum.)

Each tool fits in its own process (``--repeat`` fits; wall time per fit measured inside, peak
RSS of the process from ``wait4``). pymc-marketing is not a kehu dependency: it runs in a
separate virtual environment under build/pymc-venv, created with pip on first use
(``--pymc skip`` leaves it out). Parameters are compared with kehu's, and every tool's optimum
is evaluated with the same log-likelihood function (lifetimes rescales time internally).

    python -m benchmarks.bench_clv --customers 1000000 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import (
    BUILD,
    PYMC_VENV,
    ROOT,
    measure,
    med,
    meta,
    progress,
    python_worker,
    write_result,
)

CDNOW = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
PARAMS = ("r", "alpha", "a", "b")
#: what the separate pymc-marketing environment gets
PYMC_REQUIREMENTS = ("pymc-marketing>=0.10,<1", "pyarrow")


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


#: the data sets: (first, last) week a customer is observed for
DATASETS = {"cdnow": (27, 39), "three-years": (4, 156)}


def simulate(n: int, seed: int = 1, weeks: tuple[int, int] = DATASETS["cdnow"]
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """BG/NBD histories at the CDNOW parameters, observed for ``weeks`` weeks at day
    resolution."""
    from kehu.models.clv.simulate import simulate_bgnbd

    return simulate_bgnbd(n, **{k: CDNOW[k] for k in PARAMS}, seed=seed,
                          min_weeks=weeks[0], max_weeks=weeks[1])


def make_data(kind: str, n: int, workdir: Path) -> Path:
    """Write (once) customer_id, frequency, recency, T (weeks) of ``n`` customers to Parquet."""
    import pandas as pd

    path = workdir / f"bgnbd-{kind}-{n}.parquet"
    if path.exists():
        return path
    workdir.mkdir(parents=True, exist_ok=True)
    x, tx, T = simulate(n, seed=1 if kind == "cdnow" else 2, weeks=DATASETS[kind])
    pd.DataFrame({"customer_id": np.arange(len(x)), "frequency": x, "recency": tx,
                  "T": T}).to_parquet(path)
    return path


def worker(tool: str, path: Path, repeat: int) -> None:
    """``repeat`` fits of one tool in this process; prints seconds per fit and parameters."""
    import pandas as pd

    df = pd.read_parquet(path)
    x, tx, T = (df[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T"))
    times: list[float] = []
    params: dict[str, float] = {}
    extra: dict[str, Any] = {}
    import lifetimes  # imported before timing, as kehu's model is

    from kehu.models.clv import BetaGeo

    for _ in range(repeat):
        t0 = time.perf_counter()
        try:
            if tool == "kehu":
                m = BetaGeo().fit(x, tx, T)
                params = dict(m.params_)
                extra = {"distinct_histories": int(m.n_distinct_)}
            else:
                ref = lifetimes.BetaGeoFitter().fit(x, tx, T)
                params = {k: float(ref.params_[k]) for k in PARAMS}
        except Exception as exc:
            sys.stdout.write(json.dumps({"error": f"{type(exc).__name__}: {exc}".strip()})
                             + "\n")
            return
        times.append(time.perf_counter() - t0)
    sys.stdout.write(json.dumps({"fit_s": times, "params": params, **extra}) + "\n")


def ensure_pymc_venv() -> Path:
    """The separate environment's python, created with pip when missing."""
    py = PYMC_VENV / "bin" / "python"
    check = [str(py), "-c", "import pymc_marketing, pyarrow"]
    if py.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return py
    progress(f"clv: creating {PYMC_VENV} for pymc-marketing (pip, once)")
    subprocess.run([sys.executable, "-m", "venv", str(PYMC_VENV)], check=True)
    out = subprocess.run([str(py), "-m", "pip", "install", "-q", *PYMC_REQUIREMENTS],
                         capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"pip install {' '.join(PYMC_REQUIREMENTS)} failed: "
                           f"{out.stderr[-1500:]}")
    return py


def _loglik_at(params: dict[str, float], path: Path) -> float:
    import pandas as pd

    from kehu.models.clv.bgnbd import _loglik, sufficient_statistics

    df = pd.read_parquet(path)
    theta = np.array([params[k] for k in PARAMS])
    stats = sufficient_statistics(df.frequency.to_numpy(), df.recency.to_numpy(),
                                  df["T"].to_numpy())
    return float(_loglik(theta, *stats)[0])


def fit_speed(kind: str, n: int, repeat: int, workdir: Path, pymc: bool) -> dict[str, Any]:
    progress(f"clv: data {kind}, {n:,} customers")
    data = make_data(kind, n, workdir)
    out: dict[str, Any] = {"data": kind, "customers": n, "repeat": repeat, "tools": {}}
    for tool in ("kehu", "lifetimes"):
        m = measure(python_worker("benchmarks.bench_clv", "--worker", tool, "--data-file",
                                  str(data), "--repeat", str(repeat)))
        r = m.json()
        if "error" in r:
            out["tools"][tool] = {"error": r["error"], "peak_rss_mib": m.peak_rss_mib}
            progress(f"clv: {kind} {tool} failed: {r['error'][:200]}")
            continue
        out["tools"][tool] = {"runs": [round(t, 3) for t in r["fit_s"]],
                              "median_s": med(r["fit_s"]), "peak_rss_mib": m.peak_rss_mib,
                              "params": r["params"]}
        if "distinct_histories" in r:
            out["distinct_histories"] = r["distinct_histories"]
        progress(f"clv: {kind} {tool}: median {med(r['fit_s'])} s, {m.peak_rss_mib} MiB")
    if pymc:
        try:
            py = ensure_pymc_venv()
            m = measure([str(py), str(ROOT / "benchmarks" / "pymc_bgnbd_fit.py"), str(data),
                         str(max(2, repeat))])
            r = m.json()
            fits = r["fit_s"]
            out["tools"]["pymc-marketing"] = {
                "runs": [round(t, 3) for t in fits], "first_fit_s": round(fits[0], 3),
                "median_s": med(fits[1:]), "import_s": r["import_s"],
                "peak_rss_mib": m.peak_rss_mib, "params": r["params"],
                "version": r.get("version"), "method": "MAP",
                "note": "first fit includes PyTensor compilation; median of the later fits"}
            progress(f"clv: {kind} pymc-marketing: first {fits[0]:.1f} s, later "
                     f"{med(fits[1:])} s, {m.peak_rss_mib} MiB")
        except (OSError, RuntimeError, subprocess.CalledProcessError) as exc:
            out["tools"]["pymc-marketing"] = {"error": str(exc)[-1500:]}
            progress(f"clv: pymc-marketing failed: {str(exc)[-300:]}")
    k = out["tools"]["kehu"]
    if "params" not in k:
        return out
    ll_k = _loglik_at(k["params"], data)
    out["ratio"], out["agreement"] = {}, {}
    for tool, v in out["tools"].items():
        if tool == "kehu" or "params" not in v:
            continue
        out["ratio"][tool] = round(v["median_s"] / k["median_s"], 1)
        ll = _loglik_at(v["params"], data)
        out["agreement"][tool] = {
            "max_param_rel_diff": max(abs(v["params"][p] - k["params"][p]) / abs(k["params"][p])
                                      for p in PARAMS),
            "loglik": ll, "kehu_loglik": ll_k,
            "loglik_rel_diff": abs(ll - ll_k) / abs(ll_k)}
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--data", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    ap.add_argument("--pymc", choices=["auto", "skip"], default="auto")
    ap.add_argument("--no-holdout", action="store_true", help="skip the CDNOW hold-out check")
    ap.add_argument("--workdir", type=Path, default=BUILD)
    ap.add_argument("--worker", choices=["kehu", "lifetimes"], help=argparse.SUPPRESS)
    ap.add_argument("--data-file", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker(args.worker, args.data_file, args.repeat)
        return
    res: dict[str, Any] = {**meta(customers=args.customers, repeat=args.repeat)}
    if not args.no_holdout:
        progress("clv: CDNOW hold-out")
        res["holdout"] = holdout()
    res["fits"] = [fit_speed(kind, args.customers, args.repeat, args.workdir,
                             args.pymc == "auto") for kind in args.data]
    path = write_result(f"clv-{args.customers}", res)
    progress(f"clv: written {path}")
    print(json.dumps([{k: f[k] for k in ("data", "ratio", "agreement")} for f in res["fits"]],
                     indent=2, default=str))


if __name__ == "__main__":
    main()
