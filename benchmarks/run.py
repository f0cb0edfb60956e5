"""Run the benchmark suite: ``python -m benchmarks.run`` (the sizes of issue 7; long) or
``python -m benchmarks.run --quick`` (small sizes, one or two runs: a smoke test).

Every benchmark runs in its own process (a failure is recorded and the suite goes on) and
writes ``benchmarks/results/<name>.json``: date, machine, versions, sizes, every run, the
median, peak RSS and the ratio against the reference tools run side by side. At the end the
results are rendered (:func:`render_markdown`) into the generated section of
docs/benchmarks.md, between ``<!-- generated:begin -->`` and ``<!-- generated:end -->``; the
hand-written sections around it are left as they are. ``--render-only`` re-renders from the
JSON files without running anything.

    python -m benchmarks.run --quick
    python -m benchmarks.run --only run rfm clv
    python -m benchmarks.run --render-only
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import inspect
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from benchmarks.common import BUILD, RESULTS, ROOT, machine, progress, versions

DOC = ROOT / "docs" / "benchmarks.md"
BEGIN = "<!-- generated:begin -->"
END = "<!-- generated:end -->"
SUITE = "suite"


@dataclass(frozen=True)
class Bench:
    name: str
    module: str
    #: argv for (quick, workdir)
    argv: Callable[[bool, Path], list[str]]
    #: what it measures (the suite status table)
    what: str
    #: written by another part of issue 7; may be missing
    optional: bool = False
    #: quick-mode argv for an optional benchmark whose script has no --quick option
    quick_fallback: tuple[str, ...] = ()


def _rep(quick: bool, full: int, q: int = 1) -> list[str]:
    return ["--repeat", str(q if quick else full)]


BENCHMARKS: tuple[Bench, ...] = (
    Bench("import", "benchmarks.bench_import",
          lambda q, w: ["--rows", "1000000" if q else "10000000", *_rep(q, 3)],
          "import of N transaction lines, CSV and Parquet, vs DuckDB COPY"),
    Bench("run", "benchmarks.bench_run",
          lambda q, w: ["--sizes", *(["20000"] if q else ["100000", "1000000"]),
                        *_rep(q, 2), "--workdir", str(w)],
          "kehu run at N customers / 10 N lines: stages, total"),
    Bench("rfm", "benchmarks.bench_rfm",
          lambda q, w: ["--customers", "100000" if q else "1000000", *_rep(q, 3),
                        "--workdir", str(w)],
          "RFM summary vs lifetimes and pandas"),
    Bench("clv", "benchmarks.bench_clv",
          lambda q, w: ["--customers", "100000" if q else "1000000", *_rep(q, 3, 2),
                        "--workdir", str(w)],
          "BG/NBD fit vs lifetimes and pymc-marketing; CDNOW hold-out"),
    Bench("identity", "benchmarks.bench_identity", lambda q, w: ["--quick"] if q else [],
          "identity resolution at 100 k / 1 M records; FEBRL quality", optional=True,
          quick_fallback=("--sizes", "20000", "--repeat", "1")),
    Bench("spark", "benchmarks.bench_spark", lambda q, w: ["--quick"] if q else [],
          "the analysis on Spark local mode vs DuckDB", optional=True,
          quick_fallback=("--customers", "20000", "--repeat", "1")),
    # earlier benchmarks, summarised by hand further down docs/benchmarks.md
    Bench("generate", "benchmarks.bench_generate",
          lambda q, w: ["--sizes", *(["20000"] if q else ["50000", "200000"]), *_rep(q, 3)],
          "demo generator"),
    Bench("cube", "benchmarks.bench_cube",
          lambda q, w: ["--customers", "100000" if q else "1000000", "--lines",
                        "1000000" if q else "10000000", *_rep(q, 5, 3)],
          "cube queries"),
    Bench("churn", "benchmarks.bench_churn",
          lambda q, w: ["--customers", "100000" if q else "1000000", "--lines",
                        "1000000" if q else "10000000"],
          "churn features, training, scoring"),
    Bench("basket", "benchmarks.bench_basket",
          lambda q, w: ["--customers", "20000" if q else "200000", "--lines",
                        "1000000" if q else "10000000", *_rep(q, 3)],
          "association rules, next best offers vs mlxtend"),
    Bench("campaign", "benchmarks.bench_campaign",
          lambda q, w: ["--customers", "100000" if q else "1000000", "--lines",
                        "1000000" if q else "10000000", *_rep(q, 3)],
          "campaign plan, launch, measurement vs pandas"),
)


def call(module: str, argv: list[str]) -> None:
    """Import ``module`` and run its ``main`` with ``argv`` (the entry point of a benchmark's
    process; older mains without a parameter read ``sys.argv``)."""
    mod = importlib.import_module(module)
    main = mod.main
    if inspect.signature(main).parameters:
        main(argv)
    else:
        sys.argv = [module, *argv]
        main()


def _argv(b: Bench, quick: bool, workdir: Path, repeat: int | None) -> list[str]:
    argv = b.argv(quick, workdir)
    if quick and b.quick_fallback and "--quick" in argv:
        spec = importlib.util.find_spec(b.module)
        origin = Path(spec.origin) if spec and spec.origin else None
        if origin and origin.exists() and '"--quick"' not in origin.read_text("utf-8"):
            argv = list(b.quick_fallback)
    if repeat is not None and "--repeat" in argv:
        argv[argv.index("--repeat") + 1] = str(repeat)
    return argv


def _run_bench(b: Bench, quick: bool, workdir: Path, results: Path,
               repeat: int | None = None) -> dict[str, Any]:
    argv = _argv(b, quick, workdir, repeat)
    entry: dict[str, Any] = {"date": datetime.now().isoformat(timespec="seconds"),
                             "mode": "quick" if quick else "full", "argv": argv,
                             "what": b.what}
    if importlib.util.find_spec(b.module) is None:
        entry.update(status="missing", error=f"{b.module} does not exist")
        return entry
    cmd = [sys.executable, "-c", "import sys; from benchmarks.run import call; "
           "call(sys.argv[1], sys.argv[2:])", b.module, *argv]
    tail: deque[str] = deque(maxlen=25)
    # benchmarks that make temporary workspaces with tempfile do so here, removed afterwards
    tmp = workdir / f"tmp-{b.name}"
    tmp.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "TMPDIR": str(tmp), "KEHU_BENCH_RESULTS": str(results)}
    t0 = time.perf_counter()
    try:
        proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, cwd=ROOT, text=True, bufsize=1,
                                env=env)
        assert proc.stderr is not None
        for line in proc.stderr:
            sys.stderr.write(line)
            tail.append(line)
        rc = proc.wait()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    entry["seconds"] = round(time.perf_counter() - t0, 1)
    if rc:
        entry.update(status="failed", error=f"exit code {rc}: " + "".join(tail)[-2000:])
    else:
        entry["status"] = "ok"
    return entry


def run_suite(quick: bool, names: list[str], workdir: Path, results: Path,
              repeat: int | None = None) -> dict[str, Any]:
    suite = load_results(results).get(SUITE) or {}
    suite.update(date=datetime.now().isoformat(timespec="seconds"),
                 mode="quick" if quick else "full", machine=machine(), versions=versions())
    entries = suite.setdefault("benchmarks", {})
    chosen = [b for b in BENCHMARKS if b.name in names]
    for i, b in enumerate(chosen, 1):
        progress(f"=== [{i}/{len(chosen)}] {b.name}: {b.what} "
                 f"({' '.join(_argv(b, quick, workdir, repeat))})")
        entry = _run_bench(b, quick, workdir, results, repeat)
        entries[b.name] = entry
        progress(f"=== {b.name}: {entry['status']}"
                 + (f" in {entry['seconds']} s" if "seconds" in entry else "")
                 + (f" — {entry['error'][-300:]}" if entry["status"] != "ok" else ""))
        results.mkdir(parents=True, exist_ok=True)
        (results / f"{SUITE}.json").write_text(json.dumps(suite, indent=2, ensure_ascii=False)
                                              + "\n", encoding="utf-8")
    return suite


# --- rendering ------------------------------------------------------------------------------


def load_results(directory: Path = RESULTS) -> dict[str, Any]:
    """Every ``*.json`` in ``directory`` by file stem (unreadable files are left out)."""
    out: dict[str, Any] = {}
    for p in sorted(directory.glob("*.json")):
        try:
            out[p.stem] = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
    return out


def _s(x: Any) -> str:
    if x is None:
        return "—"
    x = float(x)
    if x >= 100:
        return f"{x:,.0f} s"
    if x >= 10:
        return f"{x:.1f} s"
    if x >= 1:
        return f"{x:.2f} s"
    return f"{x:.3f} s"


def _mib(x: Any) -> str:
    if x is None:
        return "—"
    return f"{x / 1024:.2f} GiB" if x >= 1024 else f"{x:.0f} MiB"


def _ratio(x: Any) -> str:
    return "—" if x is None else f"{float(x):.1f}×" if x >= 10 else f"{float(x):.2f}×"


def _n(x: Any) -> str:
    if x is None:
        return "—"
    x = int(x)
    if x >= 1_000_000 and x % 100_000 == 0:
        return f"{x / 1_000_000:g} M"
    if x >= 1_000 and x % 1_000 == 0:
        return f"{x // 1000:,} k"
    return f"{x:,}"


def _runs(xs: list[float] | None) -> str:
    return " / ".join(f"{x:.2f}" if x < 10 else f"{x:.1f}" for x in xs or [])


def _day(r: dict[str, Any]) -> str:
    return str(r.get("date", ""))[:10] or "—"


def _table(head: list[str], rows: list[list[str]], right: set[int] | None = None) -> str:
    if right is None:   # numbers to the right
        right = {i for i in range(len(head))
                 if all(re.match(r"[\d—.<]", str(r[i]) or "—") for r in rows)}
    sep = ["---:" if i in right else "---" for i in range(len(head))]
    lines = ["| " + " | ".join(head) + " |", "| " + " | ".join(sep) + " |"]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _by_size(results: dict[str, Any], prefix: str) -> list[tuple[int, dict[str, Any]]]:
    out = []
    for k, v in results.items():
        m = re.fullmatch(rf"{prefix}-(\d+)", k)
        if m and isinstance(v, dict):
            out.append((int(m.group(1)), v))
    return sorted(out, key=lambda kv: kv[0])


def _header(results: dict[str, Any]) -> list[str]:
    suite = results.get(SUITE) or {}
    src = suite if suite.get("machine") else max(
        (v for v in results.values() if isinstance(v, dict) and isinstance(v.get("machine"),
                                                                           dict)),
        key=lambda v: str(v.get("date", "")), default={})
    out = []
    m = src.get("machine") or {}
    if m:
        load = m.get("load_at_start") or []
        out.append(f"- **Machine:** {m.get('cpu', '?')}, {m.get('cores', '?')} cores, "
                   f"{m.get('ram_gib', '?')} GiB RAM, {m.get('os', '?')} {m.get('arch', '')}"
                   + (f"; load average {' / '.join(map(str, load))} when it started"
                      if load else ""))
    if src.get("date"):
        mode = f" ({src['mode']} run)" if src.get("mode") else ""
        out.append(f"- **Date:** {str(src['date']).replace('T', ' ')}{mode}; each table "
                   "gives the date of its rows")
    v = src.get("versions") or {}
    if v:
        names = [("python", "Python"), ("kehu", "kehu"), ("duckdb", "DuckDB"),
                 ("pyarrow", "pyarrow"), ("deltalake", "deltalake"), ("ibis-framework", "Ibis"),
                 ("pandas", "pandas"), ("numpy", "NumPy"), ("pyspark", "PySpark"),
                 ("splink", "splink"), ("lifetimes", "lifetimes"),
                 ("pymc-marketing", "pymc-marketing"), ("recordlinkage", "recordlinkage")]
        parts = []
        for key, label in names:
            if key in v:
                extra = f" ({v['kehu_commit']})" if key == "kehu" and v.get("kehu_commit") \
                    else ""
                parts.append(f"{label} {v[key]}{extra}")
        out.append("- **Versions:** " + ", ".join(parts))
    return out


def _status(results: dict[str, Any]) -> str:
    entries = (results.get(SUITE) or {}).get("benchmarks") or {}
    if not entries:
        return ""
    rows = []
    for b in BENCHMARKS:
        e = entries.get(b.name)
        if not e:
            continue
        status = e.get("status", "?")
        if status != "ok":
            err = str(e.get("error", "")).strip().splitlines()
            status += f": {err[-1][:120]}" if err else ""
        rows.append([b.name, b.what, status, e.get("mode", "—"), _day(e),
                     _s(e.get("seconds"))])
    return "### Suite\n\n" + _table(["benchmark", "what", "status", "mode", "date",
                                      "wall time"], rows)


def _render_import(results: dict[str, Any]) -> str:
    rows = []
    for n, r in _by_size(results, "import"):
        for src, v in (r.get("runs") or {}).items():
            rows.append([_n(n), src.upper() if src == "csv" else src.capitalize(),
                         f"{v['file_mib']} MiB" if "file_mib" in v else "—",
                         _s(v.get("kehu_median_s")), f"{v.get('kehu_rows_per_s', 0):,}",
                         _mib(v.get("kehu_peak_rss_mib")), _s(v.get("duckdb_median_s")),
                         _mib(v.get("duckdb_peak_rss_mib")),
                         _ratio(v.get("ratio_kehu_over_duckdb")),
                         _runs(v.get("kehu_seconds")), _day(r)])
    if not rows:
        return ""
    return ("### Import: transaction lines, CSV and Parquet\n\n"
            "`kehu import transactions FILE --yes` as a subprocess into a workspace holding "
            "1 M customers (mapping, coercion, validation, duplicate and reference checks, "
            "one Delta commit); reference: DuckDB copying the same file to Parquet without "
            "validation. Wall time with start-up, median of the runs; peak RSS of the "
            "process.\n\n"
            + _table(["lines", "source", "file", "kehu median", "kehu lines/s",
                      "kehu peak RSS", "DuckDB COPY median", "DuckDB peak RSS",
                      "kehu / DuckDB", "kehu runs (s)", "date"], rows))


def _render_run(results: dict[str, Any]) -> str:
    sizes = _by_size(results, "run")
    if not sizes:
        return ""
    rows, stage_rows, stages = [], [], []
    for n, r in sizes:
        runs = r.get("runs") or []
        aim = "—"
        if "aim_met" in r:
            aim = (f"< {r['aim_s']:.0f} s: **{'met' if r['aim_met'] else 'not met'}**"
                   + ("" if r.get("aim_met_first_run") == r["aim_met"] else
                      f" (first run: {'met' if r.get('aim_met_first_run') else 'not met'})"))
        loads = [x["load_after"] for x in runs if "load_after" in x]
        firsts = int(r.get("first_runs") or 1)
        rows.append([_n(n) + (" (incomplete)" if r.get("complete") is False else ""),
                     _n(r.get("lines")), str(max(0, len(runs) - firsts)),
                     _s(r.get("median_s")),
                     _s(r.get("first_run_s")) + (f" (median of {firsts})" if firsts > 1
                                                 else ""),
                     _runs([x["process_s"] for x in runs]), _mib(r.get("peak_rss_mib")),
                     " / ".join(f"{x:.1f}" for x in loads) or "—", aim, _day(r)])
        for s in list(r.get("median_stages") or {}) + list(r.get("first_run_stages") or {}):
            if s not in stages:
                stages.append(s)
    for n, r in sizes:
        firsts = int(r.get("first_runs") or 1)
        for label, st in (("median", r.get("median_stages")),
                          ("first run" + (f", median of {firsts}" if firsts > 1 else ""),
                           r.get("first_run_stages"))):
            if st:
                stage_rows.append([f"{_n(n)} ({label})",
                                   *[f"{st[s]:.1f}" if s in st else "—" for s in stages],
                                   f"{sum(st.values()):.1f}"])
    return ("### Analysis run (`kehu run`)\n\n"
            "`kehu run --as-of 2025-12-31 --no-warm --json` as a subprocess on a synthetic "
            "warehouse (bench_cube's generator: N customers, 10 lines each over 2023–2025, "
            "200 products). The first run also trains the churn model (repeated on fresh "
            "copies of the warehouse when more than one); the later runs reuse it (a nightly "
            "run retrains only when the model is older than its churn window) and their "
            "median is the headline. Wall time of the process, start-up included; peak RSS "
            "of the process; the machine is shared, so the load average is shown.\n\n"
            + _table(["customers", "lines", "runs after the first", "median",
                      "first run (trains churn)", "all runs (s)", "peak RSS",
                      "load average after each run", "aim (1 M in 2 min)", "date"], rows)
            + "\n\nSeconds per stage (`RunReport.stages`):\n\n"
            + _table(["customers", *stages, "sum"], stage_rows))


def _render_rfm(results: dict[str, Any]) -> str:
    rows = []
    for n, r in _by_size(results, "rfm"):
        t = r.get("tools") or {}
        ratio = r.get("ratio") or {}
        agree = r.get("agreement") or {}
        ok = [f"{k.split(' vs ')[0]}: {'yes' if v.get('agree') else '**NO**'}"
              for k, v in agree.items()]
        rss = " / ".join(_mib((t.get(k) or {}).get("peak_rss_mib"))
                         for k in ("kehu", "pandas", "lifetimes"))
        sizes = r.get("sizes") or {}
        rows.append([_n(n), _n(sizes.get("lines")), f"{r.get('summary_customers', 0):,}",
                     *[_s((t.get(k) or {}).get("median_s"))
                       for k in ("kehu", "pandas", "lifetimes")],
                     _ratio(ratio.get("pandas")), _ratio(ratio.get("lifetimes")), rss,
                     ", ".join(ok) or "—", _day(r)])
    if not rows:
        return ""
    return ("### RFM summary vs `lifetimes` and pandas\n\n"
            "Frequency, recency, T and monetary value per customer as of 2025-12-31 (day "
            "resolution; lines after that day left out), from the same Parquet file: kehu's "
            "`customer_summary` (Ibis on DuckDB), `lifetimes.utils."
            "summary_data_from_transaction_data`, and a plain pandas group-by. Each in its "
            "own process; time = reading the file + the summary, median of the runs; "
            "agreement = same customers, frequency equal, the rest equal to 1e-9 relative, "
            "compared with `lifetimes`' output.\n\n"
            + _table(["customers", "lines", "customers summarised", "kehu", "pandas",
                      "lifetimes", "pandas / kehu", "lifetimes / kehu",
                      "peak RSS kehu / pandas / lifetimes", "agrees with lifetimes",
                      "date"], rows))


def _render_clv(results: dict[str, Any]) -> str:
    rows, holdouts = [], []
    for n, r in _by_size(results, "clv"):
        for f in r.get("fits") or []:
            t = f.get("tools") or {}
            k, lt, pm = (t.get(x) or {} for x in ("kehu", "lifetimes", "pymc-marketing"))
            ag = f.get("agreement") or {}
            ratio = f.get("ratio") or {}

            def err(v: dict[str, Any]) -> str | None:
                return f"failed: {str(v['error']).splitlines()[0][:80]}" if "error" in v \
                    else None

            pm_s = err(pm) or (f"{_s(pm.get('first_fit_s'))} / {_s(pm.get('median_s'))}"
                               if pm else "—")
            diffs = " / ".join(f"{ag[x]['max_param_rel_diff']:.1e}" if x in ag else "—"
                               for x in ("lifetimes", "pymc-marketing"))
            lls = " / ".join(f"{ag[x]['loglik_rel_diff']:.1e}" if x in ag else "—"
                             for x in ("lifetimes", "pymc-marketing"))
            rows.append([f.get("data", "?"), _n(n), f"{f.get('distinct_histories', 0):,}",
                         _s(k.get("median_s")), err(lt) or _s(lt.get("median_s")), pm_s,
                         _ratio(ratio.get("lifetimes")), _ratio(ratio.get("pymc-marketing")),
                         " / ".join(_mib(v.get("peak_rss_mib")) for v in (k, lt, pm)),
                         diffs, lls, _day(r)])
        h = r.get("holdout")
        if h:
            holdouts.append(f"CDNOW hold-out ({h['customers']:,} customers, weeks 40–78): "
                            f"actual repeat purchases {h['actual_total']:.0f}, predicted by "
                            f"kehu {h['kehu_total']}, by `lifetimes` {h['lifetimes_total']}; "
                            f"mean absolute error per customer {h['kehu_mae_per_customer']} "
                            f"(kehu) and {h['lifetimes_mae_per_customer']} (`lifetimes`).")
    if not rows:
        return ""
    return ("### BG/NBD fit vs `lifetimes` and `pymc-marketing`\n\n"
            "The same customers fitted by kehu's `BetaGeo` (sufficient statistics, analytic "
            "gradient), `lifetimes.BetaGeoFitter` and `pymc_marketing.clv.BetaGeoModel` "
            "(MAP; in a separate virtual environment under build/, created with pip on first "
            "use, since it is not a kehu dependency). `cdnow`: histories drawn at the CDNOW "
            "parameters, observed 27–39 weeks; `three-years`: customers joining over three "
            "years (4–156 weeks), day resolution. Fit time only (data loaded), median of the "
            "runs, each tool in its own process; pymc-marketing: first fit (includes PyTensor's "
            "compilation) / median of the later fits, which the ratio uses. Agreement: largest "
            "relative difference of r, α, a, b from kehu's, and of the log-likelihood at each "
            "optimum (one function for all).\n\n"
            + _table(["data", "customers", "distinct histories", "kehu", "lifetimes",
                      "pymc-marketing first / later", "lifetimes / kehu", "pymc / kehu",
                      "peak RSS kehu / lifetimes / pymc",
                      "max param rel. diff lifetimes / pymc",
                      "log-lik rel. diff lifetimes / pymc", "date"], rows)
            + ("\n\n" + "\n\n".join(holdouts) if holdouts else ""))


#: top-level fields of a result that the generic rendering leaves out (the header has them)
_SKIP = {"machine", "versions", "date", "cpus", "python", "platform", "sizes", "markdown"}


def _cell(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e6 else f"{v:,.0f}"
    if isinstance(v, int):
        return f"{v:,}" if abs(v) >= 10_000 else str(v)
    return str(v)


def _flatten(d: Any, prefix: str = "") -> list[tuple[str, str]]:
    """Scalar leaves of a result as (path, text); lists of runs are counted, not listed."""
    out: list[tuple[str, str]] = []
    if isinstance(d, dict):
        for k, v in d.items():
            if not prefix and k in _SKIP:
                continue
            out += _flatten(v, f"{prefix} / {k}" if prefix else str(k))
    elif isinstance(d, list):
        if d and all(isinstance(x, int | float) and not isinstance(x, bool) for x in d) \
                and len(d) <= 12:
            out.append((prefix, ", ".join(_cell(x) for x in d)))
        else:
            out.append((prefix, f"{len(d)} entries"))
    else:
        out.append((prefix, _cell(d)))
    return out


def _dict_tables(r: dict[str, Any]) -> list[str]:
    """Top-level lists of records (e.g. a quality table) as tables of their own."""
    out = []
    for k, v in r.items():
        if k in _SKIP or k == "runs" or not isinstance(v, list) or not v \
                or not all(isinstance(x, dict) for x in v):
            continue
        cols: list[str] = []
        for x in v:
            cols += [c for c in x if c not in cols and not isinstance(x[c], dict | list)]
        out.append(f"{k}:\n\n" + _table(cols, [[_cell(x.get(c, "—")) for c in cols]
                                               for x in v]))
    return out


def _render_generic(title: str, prefix: str, results: dict[str, Any]) -> str:
    """Results of benchmarks written elsewhere (identity resolution, Spark): a ``markdown``
    field is used as it is; results by size (``<prefix>-<n>.json``) become one table with a
    column per size; lists of records become tables; other fields are listed."""
    stems = sorted(k for k in results if k == prefix or k.startswith((prefix + "-",
                                                                        prefix + "_")))
    sized = [(n, r) for n, r in _by_size(results, prefix) if "markdown" not in r]
    sized_stems = {f"{prefix}-{n}" for n, _ in sized}
    parts = []
    for stem in stems:
        r = results[stem]
        if not isinstance(r, dict) or stem in sized_stems:
            continue
        if isinstance(r.get("markdown"), str):
            parts.append(f"`{stem}.json` ({_day(r)}):\n\n{r['markdown'].strip()}")
            continue
        kv = [[k, v] for k, v in _flatten({k: v for k, v in r.items()
                                           if not (isinstance(v, list) and v
                                                   and isinstance(v[0], dict))})]
        body = _dict_tables(r) + ([_table(["field", "value"], kv[:60], set())] if kv else [])
        parts.append(f"`{stem}.json` ({_day(r)}):\n\n" + "\n\n".join(body))
    if sized:
        fields: list[str] = []
        flat = []
        for _, r in sized:
            f = dict(_flatten(r))
            flat.append(f)
            fields += [k for k in f if k not in fields]
        rows = [[k, *[f.get(k, "—") for f in flat]] for k in fields][:80]
        rows.append(["date", *[_day(r) for _, r in sized]])
        parts.append(f"`{prefix}-<n>.json`:\n\n"
                     + _table(["", *[_n(n) for n, _ in sized]], rows,
                              set(range(1, len(sized) + 1))))
    if not parts:
        return ""
    return f"### {title}\n\n" + "\n\n".join(parts)


#: the scaling estimate's customer base, and transactions per customer (a telecom's billing
#: lines; the demo retailer has ~29)
SCALE_CUSTOMERS = 500_000_000


def _gb(x: float) -> str:
    return f"{x / 1e9:,.0f} GB" if x >= 1e9 else f"{x / 1e6:,.0f} MB"


def _render_spark(results: dict[str, Any]) -> str:
    """Spark local mode against DuckDB (stages, agreement) and the scaling estimate for a
    500 M-customer base, computed from the row sizes bench_spark measured."""
    r = results.get("spark")
    if not isinstance(r, dict) or "spark" not in r or "duckdb" not in r:
        return ""
    d, sp = r["duckdb"], r["spark"]
    stages = list(d.get("stages_median_s") or {})
    rows = []
    for st in stages:
        a = (d.get("stages_median_s") or {}).get(st)
        b = (sp.get("stages_median_s") or {}).get(st)
        rows.append([st, _s(a), _s(b), _ratio(b / a) if a and b else "—"])
    rows.append(["**total (median)**", _s(d.get("total_median_s")),
                 _s(sp.get("total_median_s")),
                 _ratio(sp["total_median_s"] / d["total_median_s"])
                 if d.get("total_median_s") else "—"])
    ag = r.get("agreement") or {}
    diffs = ag.get("differing_values") or {}
    maxrel = ag.get("max_relative_difference") or {}
    same_tiers = len(ag.get("tiers") or []) == 2 and ag["tiers"][0] == ag["tiers"][1]
    clv = ag.get("clv_total") or [None, None]
    agree = [
        ["customers scored", " / ".join(_n(x) for x in ag.get("rows") or []),
         "same customers" if ag.get("same_customers") else "**different customers**"],
        ["tiers (counts)", "identical" if same_tiers else "**differ**", ""],
        ["CLV total", " / ".join(_n(x) for x in clv),
         f"relative difference {abs(clv[0] - clv[1]) / abs(clv[0]):.1e}"
         if clv[0] and clv[1] is not None else ""],
    ]
    for col in sorted(diffs):
        agree.append([f"{col}: customers differing", _n(diffs[col]),
                      f"max relative difference {maxrel.get(col, 0):.1e}"])
    customers = int(r.get("customers") or 0)
    rs = r.get("row_sizes") or {}
    n_rows = (results.get("spark") or {}).get("rows") or {}
    lines_per_customer = (n_rows.get("transactions", 0) / n_rows["customers"]
                          if n_rows.get("customers") else 0)

    def per_customer(key: str, field: str) -> float:
        e = rs.get(key) or {}
        return (e.get("rows", 0) * e.get(field, 0)) / max(n_rows.get("customers", 1), 1)

    scale = SCALE_CUSTOMERS
    tx_parquet = per_customer("transactions parquet", "parquet_bytes_per_row") * scale
    tx_arrow = per_customer("transactions (columns the run reads)",
                            "arrow_bytes_per_row") * scale
    days = per_customer("(customer, day) purchase days", "arrow_bytes_per_row") * scale
    feats = per_customer("churn features", "arrow_bytes_per_row") * scale
    rfm_b = per_customer("rfm_classes", "arrow_bytes_per_row") * scale
    core_s = (sp.get("total_median_s") or 0) * int(results.get("spark", {}).get("cpus") or 2)
    core_h = core_s * scale / max(customers, 1) / 3600
    est = [
        ["transactions", f"{lines_per_customer * scale / 1e9:,.1f} bn lines "
         f"({lines_per_customer:.0f} per customer, as the demo)",
         f"{_gb(tx_parquet)} Parquet; {_gb(tx_arrow)} in memory (the columns the run reads)"],
        ["largest shuffle", "(customer, day) purchase days for RFM, lifecycle and the "
         "customer summary", f"{_gb(days)} → ~{max(1, int(days / 200e6)):,} shuffle "
         "partitions of 200 MB"],
        ["per-customer results", "RFM classes, churn features (persisted on the executors)",
         f"{_gb(rfm_b)} and {_gb(feats)}"],
        ["driver", "model fits from bounded samples: ≤ 2 M rows of (x, t_x, T) / (x, m̄) "
         "counts, ≤ 300 k churn rows, ≤ 50 k rows for k-means", "≈ 0.2 GB of data; 8 GB "
         "driver memory is ample"],
        ["compute", f"{_s(sp.get('total_median_s'))} on {results.get('spark', {}).get('cpus')} "
         f"cores for {_n(customers)} customers, scaled linearly",
         f"≈ {core_h:,.0f} core-hours: ≈ {core_h / 800:,.1f} h on 50 executors × 16 cores "
         "(an upper bound: at 100 k customers local mode is dominated by per-task overhead "
         "and the fixed-size model fits)"],
    ]
    return ("### Spark local mode vs DuckDB\n\n"
            f"`python -m benchmarks.bench_spark`: the same workspace ({_n(customers)} demo "
            f"customers, {_n(n_rows.get('transactions'))} transactions) analysed by `kehu run` "
            f"on DuckDB and on Spark {r.get('versions', {}).get('pyspark', '')} local mode "
            f"({r.get('spark_master')}, driver memory {r.get('spark_driver_memory')}); "
            f"median of {len(d.get('runs_s') or [])} runs each (DuckDB: "
            f"{_runs(d.get('runs_s'))} s; Spark: {_runs(sp.get('runs_s'))} s), Spark's "
            f"start-up ({_s(r.get('spark_start_seconds'))}) not included; {_day(r)}. "
            "Spark is expected to be slower on one machine; the point is that it runs and "
            "agrees.\n\n"
            + _table(["stage", "DuckDB", "Spark", "Spark / DuckDB"], rows)
            + "\n\nAgreement of the two runs' `customer_scores`:\n\n"
            + _table(["", "value", "note"], agree)
            + "\n\nThe churn model is fitted on at most 100 k customers: above that each "
            "engine draws its own random sample, so the models (and churn risks) differ "
            "slightly; below the caps the parity suite (`tests/test_engine_parity.py`) finds "
            "identical segments, tiers, classes, stages and churn risks and CLV to 1e-6. "
            "Expected spend differs at ~1e-7: the mean spend of a customer can differ in its "
            "last bit between the engines' sums, which changes which (x, m̄) rows the "
            "Gamma-Gamma fit sees as distinct.\n\n"
            f"**Scaling estimate for {SCALE_CUSTOMERS / 1e6:,.0f} M customers on a cluster**, "
            "from the row sizes measured here (docs/spark.md has what runs where):\n\n"
            + _table(["", "what", "estimate"], est))


def render_markdown(results: dict[str, Any]) -> str:
    """The generated section (without its markers) from the results by file stem, as
    :func:`load_results` reads them."""
    out = ["## Generated by the benchmark suite",
           "This section is written by `python -m benchmarks.run` from "
           "`benchmarks/results/*.json` (`--render-only` re-renders it without running "
           "anything); do not edit it by hand. Medians of several runs unless a table says "
           "otherwise; the reference tools ran side by side in the same session on the same "
           "files. The hand-written sections after it give context and history."]
    head = _header(results)
    if head:
        out.append("\n".join(head))
    for part in (_status(results), _render_import(results), _render_run(results),
                 _render_rfm(results), _render_clv(results), _render_spark(results)):
        if part:
            out.append(part)
    for title, prefix in (("Identity resolution", "identity"),
                          ("Spark local mode vs DuckDB", "spark")):
        part = "" if prefix == "spark" and _render_spark(results) else \
            _render_generic(title, prefix, results)
        if not part:
            e = ((results.get(SUITE) or {}).get("benchmarks") or {}).get(prefix)
            if e and e.get("status") != "ok":
                part = f"### {title}\n\nNo results: {e.get('status')} ({_day(e)})."
        if part:
            out.append(part)
    return "\n\n".join(out) + "\n"


def replace_generated(doc: str, section: str) -> str:
    """``doc`` with the text between the markers replaced by ``section``; the markers are
    added before the first ``## `` heading (after the title and the introduction) when
    missing. Everything outside the markers is kept byte for byte."""
    block = f"{BEGIN}\n{section.strip()}\n{END}"
    i, j = doc.find(BEGIN), doc.find(END)
    if i >= 0 and j > i:
        return doc[:i] + block + doc[j + len(END):]
    if i >= 0 or j >= 0:
        raise ValueError(f"{DOC.name}: found only one of {BEGIN} and {END}, or in the wrong "
                         "order; fix the markers by hand, then re-render.")
    m = re.search(r"^## ", doc, flags=re.MULTILINE)
    if m is None:
        return doc.rstrip("\n") + "\n\n" + block + "\n"
    return doc[:m.start()] + block + "\n\n" + doc[m.start():]


def write_docs(section: str, path: Path = DOC) -> None:
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(replace_generated(text, section), encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    names = [b.name for b in BENCHMARKS]
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes, one or two runs")
    ap.add_argument("--render-only", action="store_true",
                    help="only re-render docs/benchmarks.md from benchmarks/results")
    ap.add_argument("--only", nargs="+", choices=names, help="run only these")
    ap.add_argument("--skip", nargs="+", choices=names, default=[], help="leave these out")
    ap.add_argument("--repeat", type=int, default=None,
                    help="override every benchmark's number of runs")
    ap.add_argument("--workdir", type=Path, default=BUILD,
                    help="scratch space for generated data and warehouses")
    ap.add_argument("--results", type=Path, default=None,
                    help="where the JSON results go (default: benchmarks/results; with "
                    "--quick build/bench/results-quick, so a smoke run replaces nothing)")
    ap.add_argument("--no-docs", action="store_true", help="do not write the markdown")
    args = ap.parse_args(argv)
    results = args.results or (BUILD / "results-quick" if args.quick else RESULTS)
    # the real document only from the real results; a quick run writes a copy next to them
    doc = DOC if results == RESULTS else results / "benchmarks.md"
    if not args.render_only:
        chosen = [n for n in (args.only or names) if n not in args.skip]
        args.workdir.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        run_suite(args.quick, chosen, args.workdir, results, args.repeat)
        progress(f"suite finished in {time.perf_counter() - t0:.0f} s")
    section = render_markdown(load_results(results))
    print(section)
    if not args.no_docs:
        if doc != DOC and not doc.exists() and DOC.exists():
            results.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(DOC, doc)
        write_docs(section, doc)
        progress(f"written the generated section of {doc}")


if __name__ == "__main__":
    main()
