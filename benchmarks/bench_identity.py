"""Identity resolution: time and peak memory at 100 k and 1 M records (synthetic customers
from three source systems with planted duplicates: traditional characters, pinyin in either
order, +86 / dashed phones, a mistyped digit, a missing ID number), its precision and recall
on those duplicates, and the FEBRL table (kehu next to splink as in its FEBRL examples and
recordlinkage's ECM, all in the same run, without the SSN).

    python -m benchmarks.bench_identity --sizes 100000 1000000 --repeat 3

Writes ``benchmarks/results/identity.json`` (FEBRL and demo) and
``benchmarks/results/identity-<n>.json``; prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import resource
import statistics
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

#: benchmarks/results, or $KEHU_BENCH_RESULTS (the suite's --quick run writes elsewhere)
RESULTS = Path(os.environ.get("KEHU_BENCH_RESULTS") or Path(__file__).parent / "results")


def synthetic(n: int, dup_share: float = 0.05, seed: int = 1
              ) -> tuple[pa.Table, set[tuple[str, str]]]:
    """``n`` records: customers of a CRM plus duplicates entered by a web shop and a POS."""
    from kehu.demo import names as nm

    rng = np.random.default_rng(seed)
    k = int(n * dup_share)
    base = n - k
    people = nm.sample_names(rng, base)
    city, region, city_idx = nm.sample_cities(rng, base)
    birth = np.datetime64("1950-01-01") + rng.integers(0, 365 * 55, base) * np.timedelta64(1, "D")
    phone = nm.phones(rng, base)
    idno = nm.id_numbers(rng, city_idx, birth)
    gender = np.where(rng.random(base) < 0.5, "男", "女").astype(object)
    email = np.where(rng.random(base) < 0.4,
                     np.char.add(np.char.lower(np.char.replace(
                         people["pinyin"].astype(str), " ", ".")),
                         np.char.add(rng.integers(1, 999, base).astype(str), "@example.cn")),
                     None).astype(object)
    ids = np.array([f"CRM{i:08d}" for i in range(base)], dtype=object)
    born = np.datetime_as_string(birth, unit="D").astype(object)
    # duplicates of randomly chosen customers
    src = rng.choice(base, k, replace=k > base)
    v = rng.random(k)
    name = np.where(v < 0.3, people["traditional"][src],
                    np.where(v < 0.6, people["pinyin"][src],
                             np.where(v < 0.7, _family_first(people["pinyin"][src]),
                                      people["name"][src])))
    pv = rng.random(k)
    dphone = np.array([
        None if p < 0.25 else nm.format_phone_variant(ph, 0) if p < 0.5 else
        nm.format_phone_variant(ph, 1) if p < 0.7 else _typo(ph, rng) if p < 0.75 else ph
        for ph, p in zip(phone[src], pv, strict=True)], dtype=object)
    did = np.where(rng.random(k) < 0.4, None, idno[src]).astype(object)
    dborn = np.where(rng.random(k) < 0.5,
                     np.array([b.replace("-", "/") for b in born[src]], dtype=object), born[src])
    demail = np.where(rng.random(k) < 0.5,
                      np.array([e.upper() if e else None for e in email[src]], dtype=object),
                      None).astype(object)
    dsource = np.where(rng.random(k) < 0.5, "web", "pos").astype(object)
    dids = np.array([f"{s.upper()}{i:08d}" for i, s in enumerate(dsource)], dtype=object)
    table = pa.table({
        "record_id": np.concatenate([ids, dids]).astype(str),
        "source_system": np.concatenate([np.full(base, "crm", dtype=object), dsource]),
        "name": np.concatenate([people["name"], name]),
        "gender": np.concatenate([gender, gender[src]]),
        "birth_date": np.concatenate([born, dborn]),
        "phone": pa.array(np.concatenate([phone, dphone]), pa.string()),
        "email": pa.array(np.concatenate([email, demail]), pa.string()),
        "id_number": pa.array(np.concatenate([idno, did]), pa.string()),
        "city": np.concatenate([city, city[src]]),
        "region": np.concatenate([region, region[src]]),
    })
    # true pairs: every two records of the same person
    owner = np.concatenate([np.arange(base), src])
    order = np.argsort(owner, kind="stable")
    rid = table["record_id"].to_numpy(zero_copy_only=False)[order]
    ow = owner[order]
    true: set[tuple[str, str]] = set()
    starts = np.flatnonzero(np.r_[True, ow[1:] != ow[:-1]])
    ends = np.r_[starts[1:], len(ow)]
    for a, b in zip(starts, ends, strict=True):
        if b - a > 1:
            group = sorted(rid[a:b])
            true.update((x, y) for i, x in enumerate(group) for y in group[i + 1:])
    return table, true


def _family_first(pinyin: np.ndarray) -> np.ndarray:
    return np.array([" ".join(reversed(p.split(" ", 1))) for p in pinyin], dtype=object)


def _typo(phone: str, rng: np.random.Generator) -> str:
    i = int(rng.integers(3, 11))
    return phone[:i] + str((int(phone[i]) + 1) % 10) + phone[i + 1:]


def _one_run(n: int, seed: int, q: Any) -> None:
    """In a child process: resolve ``n`` synthetic records; report timings and peak RSS."""
    import pyarrow.compute as pc

    from kehu.identity.cluster import constrained_clusters
    from kehu.identity.keys import assign_keys
    from kehu.identity.model import LinkModel
    from kehu.identity.normalise import normalise_records
    from kehu.identity.quality import pairs_of_clusters, score
    from kehu.identity.spec import IdentitySpec

    recs, true = synthetic(n, seed=seed)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    spec = IdentitySpec()
    t = {}
    t0 = time.perf_counter()
    norm = normalise_records(recs)
    t["normalise"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    model = LinkModel(spec).fit(norm)
    t["train"] = time.perf_counter() - t1
    t2 = time.perf_counter()
    base, pairs = model.link(norm)
    t["score_and_cluster"] = time.perf_counter() - t2
    t3 = time.perf_counter()
    edges = pairs.filter(pc.greater_equal(pairs["match_probability"], spec.match_threshold))
    clusters, _ = constrained_clusters(base, edges)
    keys = assign_keys(clusters, None, high_water=0)
    again = assign_keys(clusters, keys.keys, high_water=keys.high_water)
    t["keys"] = time.perf_counter() - t3
    t["total"] = time.perf_counter() - t0
    merged = pairs_of_clusters(clusters["record_id"].to_pylist(),
                               clusters["cluster_id"].to_pylist())
    s = score("kehu", f"synthetic {n}", merged, true, t["total"])
    band = pairs.filter(pc.less(pairs["match_probability"], spec.match_threshold))
    queued = set(zip(band["record_id_l"].to_pylist(), band["record_id_r"].to_pylist(),
                     strict=True))
    # true pairs a person would see: merged, or in the review queue
    with_review = len((merged | queued) & true) / len(true)
    q.put({"seconds": {k: round(v, 2) for k, v in t.items()},
           "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
           "rss_before_mb": rss0 // 1024, "pairs_scored": pairs.num_rows,
           "customers": len(set(keys.keys["kehu_key"].to_pylist())),
           "rerun_stable": bool(again.keys.equals(keys.keys)), "quality": s.to_dict(),
           "recall_with_review": round(with_review, 4)})


def scale(n: int, repeat: int) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    runs = []
    for i in range(repeat):
        q = ctx.Queue()
        p = ctx.Process(target=_one_run, args=(n, 1, q))
        p.start()
        runs.append(q.get())
        p.join()
        print(f"  run {i + 1}/{repeat}: {runs[-1]['seconds']['total']} s, "
              f"{runs[-1]['peak_rss_mb']} MB", flush=True)
    stages = runs[0]["seconds"].keys()
    return {"records": n, "repeat": repeat,
            "median_seconds": {s: round(statistics.median(r["seconds"][s] for r in runs), 2)
                               for s in stages},
            "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
            "pairs_scored": runs[0]["pairs_scored"], "customers": runs[0]["customers"],
            "rerun_stable": all(r["rerun_stable"] for r in runs),
            "quality": runs[0]["quality"], "recall_with_review": runs[0]["recall_with_review"],
            "runs": runs}


def febrl(repeat: int = 1) -> list[dict[str, Any]]:
    from kehu.identity import quality as q

    rows = []
    for d in ("febrl3", "febrl4"):
        for fn in (q.run_kehu, q.run_splink, q.run_ecm):
            rows.append(fn(d).to_dict())
        rows.append(q.run_splink_best(d).to_dict())
    for industry in ("telco", "retail"):
        rows.append(q.run_demo(industry, 20_000).to_dict())
    return rows


def _env() -> dict[str, Any]:
    from importlib.metadata import version

    return {"date": datetime.now().isoformat(timespec="seconds"), "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "versions": {p: version(p) for p in ("splink", "duckdb", "recordlinkage", "pandas",
                                                 "opencc", "pypinyin")}}


def markdown(quality: list[dict[str, Any]], scales: list[dict[str, Any]]) -> str:
    out: list[str] = []
    if quality:
        out += ["| data set | method | precision | recall | F1 | seconds |",
                "|---|---|---:|---:|---:|---:|"]
    for r in quality:
        out.append(f"| {r['dataset']} | {r['method']} | {r['precision']:.4f} | "
                   f"{r['recall']:.4f} | {r['f1']:.4f} | {r['seconds']:.1f} |")
    if scales:
        out += [""] if out else []
        out += ["| records | runs | normalise s | train s | score + cluster s | keys s "
                "| total s | peak MB | pairs ≥ review threshold | precision | recall | F1 "
                "| recall incl. review queue |",
                "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for s in scales:
            m, qd = s["median_seconds"], s["quality"]
            out.append(f"| {s['records']:,} | {s['repeat']} | {m['normalise']} | {m['train']} | "
                       f"{m['score_and_cluster']} | {m['keys']} | {m['total']} | "
                       f"{s['peak_rss_mb']:,} | {s['pairs_scored']:,} | {qd['precision']:.4f} "
                       f"| {qd['recall']:.4f} | {qd['f1']:.4f} "
                       f"| {s.get('recall_with_review', float('nan')):.4f} |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="*", default=[100_000, 1_000_000])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-febrl", action="store_true")
    ap.add_argument("--quick", action="store_true", help="20 k records, one run (a smoke test)")
    args = ap.parse_args()
    if args.quick:
        args.sizes, args.repeat = [20_000], 1
    RESULTS.mkdir(parents=True, exist_ok=True)
    env = _env()
    quality: list[dict[str, Any]] = []
    if not args.no_febrl:
        print("FEBRL and demo duplicates …", flush=True)
        quality = febrl()
        (RESULTS / "identity.json").write_text(json.dumps(
            {**env, "quality": quality, "markdown": markdown(quality, [])}, indent=2,
            ensure_ascii=False))
    scales = []
    for n in args.sizes:
        print(f"{n:,} records …", flush=True)
        res = {**env, **scale(n, args.repeat)}
        res["markdown"] = markdown([], [res])
        (RESULTS / f"identity-{n}.json").write_text(json.dumps(res, indent=2,
                                                               ensure_ascii=False))
        scales.append(res)
    print(markdown(quality, scales))


if __name__ == "__main__":
    main()
