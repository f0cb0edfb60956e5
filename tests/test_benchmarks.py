"""The benchmark suite's own machinery (not the benchmarks: those run with
``python -m benchmarks.run``): the generated section of docs/benchmarks.md replaces only the
text between its markers, and the RFM comparison agrees with ``lifetimes`` on a small data
set (and notices when it does not)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import bench_rfm  # noqa: E402
from benchmarks.run import BEGIN, END, render_markdown, replace_generated  # noqa: E402

MACHINE = {"cpu": "Test CPU 9000", "cores": 2, "ram_gib": 23.5, "os": "Linux 6.1",
           "arch": "x86_64", "load_at_start": [0.5, 0.4, 0.3]}
VERSIONS = {"python": "3.11.7", "duckdb": "1.5.6", "pyarrow": "26.0.1", "deltalake": "1.6.6",
            "ibis-framework": "12.0.0", "lifetimes": "0.11.3",
            "pymc-marketing": "0.19.2 (separate venv)"}


def _results() -> dict:
    head = {"date": "2026-11-25T12:00:00", "machine": MACHINE, "versions": VERSIONS}
    return {
        "suite": {**head, "mode": "full", "benchmarks": {
            "run": {"status": "ok", "mode": "full", "date": "2026-11-25T12:00:00",
                    "seconds": 612.0},
            "spark": {"status": "failed", "mode": "full", "date": "2026-11-25T12:00:00",
                      "error": "exit code 1: Traceback\nRuntimeError: no JRE"}}},
        "import-10000000": {**head, "rows": 10_000_000, "runs": {"csv": {
            "kehu_seconds": [21.2, 19.4, 16.9], "kehu_median_s": 19.4,
            "kehu_rows_per_s": 516_267, "kehu_peak_rss_mib": 1418, "duckdb_median_s": 5.16,
            "duckdb_peak_rss_mib": 840, "ratio_kehu_over_duckdb": 3.76, "file_mib": 668}}},
        "run-1000000": {**head, "customers": 1_000_000, "lines": 10_000_000,
                        "runs": [{"process_s": 250.0}, {"process_s": 150.0},
                                 {"process_s": 170.0}],
                        "median_s": 160.0, "first_run_s": 250.0, "peak_rss_mib": 6100,
                        "aim_s": 120.0, "aim_met": False, "aim_met_first_run": False,
                        "median_stages": {"load": 4.8, "rfm": 4.7, "churn": 45.5},
                        "first_run_stages": {"load": 5.0, "rfm": 4.9, "churn": 126.0}},
        "rfm-1000000": {**head, "sizes": {"customers": 1_000_000, "lines": 10_000_000},
                        "summary_customers": 864_321,
                        "tools": {"kehu": {"median_s": 4.2, "peak_rss_mib": 900},
                                  "pandas": {"median_s": 21.0, "peak_rss_mib": 3000},
                                  "lifetimes": {"median_s": 63.0, "peak_rss_mib": 5000}},
                        "ratio": {"pandas": 5.0, "lifetimes": 15.0},
                        "agreement": {"kehu vs lifetimes": {"agree": True},
                                      "pandas vs lifetimes": {"agree": False}}},
        "clv-1000000": {**head, "fits": [{
            "data": "cdnow", "distinct_histories": 104_453,
            "tools": {"kehu": {"median_s": 0.43, "peak_rss_mib": 400},
                      "lifetimes": {"median_s": 8.63, "peak_rss_mib": 700},
                      "pymc-marketing": {"first_fit_s": 19.0, "median_s": 4.1,
                                         "peak_rss_mib": 1500}},
            "ratio": {"lifetimes": 20.1, "pymc-marketing": 9.5},
            "agreement": {"lifetimes": {"max_param_rel_diff": 2.5e-7,
                                        "loglik_rel_diff": 5.7e-15}}}]},
        "identity-100000": {**head, "records": 100_000, "f1": 0.9935, "runs": [{}, {}, {}]},
        "identity": {**head, "quality": [
            {"dataset": "febrl3", "method": "kehu", "f1": 0.99512},
            {"dataset": "febrl3", "method": "splink", "f1": 0.9935}]},
        "spark-1000000": {**head, "markdown": "| engine | seconds |\n|---|---:|\n"
                                              "| spark | 321 |"},
    }


def test_render_markdown_builds_every_table_from_the_results() -> None:
    md = render_markdown(_results())
    assert "Test CPU 9000, 2 cores, 23.5 GiB RAM" in md
    assert "DuckDB 1.5.6" in md and "pymc-marketing 0.19.2 (separate venv)" in md
    # import: the median, lines/s, RSS and ratio of the input
    assert "| 10 M | CSV | 668 MiB | 19.4 s | 516,267 | 1.38 GiB | 5.16 s |" in md
    assert "3.76×" in md
    # the run: headline median, first run, the aim judged from the result's flag
    assert "| 1 M | 10 M | 2 | 160 s | 250 s | 250.0 / 150.0 / 170.0 | 5.96 GiB |" in md
    assert "< 120 s: **not met**" in md
    assert "| 1 M (median) | 4.8 | 4.7 | 45.5 | 55.0 |" in md
    assert "| 1 M (first run) | 5.0 | 4.9 | 126.0 | 135.9 |" in md
    # RFM: times, ratios, the agreement verdict per tool
    assert "| 4.20 s | 21.0 s | 63.0 s | 5.00× | 15.0× |" in md
    assert "kehu: yes, pandas: **NO**" in md
    # BG/NBD: pymc first / later, ratios, agreement
    assert "19.0 s / 4.10 s" in md and "20.1×" in md and "2.5e-07 / —" in md
    # other helpers' results: their markdown verbatim, else key by key; failures named
    assert "| spark | 321 |" in md
    assert "| f1 | 0.9935 |" in md and "| runs | 3 entries |" in md
    assert "| dataset | method | f1 |" in md and "| febrl3 | kehu | 0.9951 |" in md
    assert "failed: RuntimeError: no JRE" in md


def test_run_benchmark_reports_the_median_of_its_first_runs() -> None:
    """Several first runs (each training churn on a fresh warehouse): their median is the
    first-run figure, the runs after them make the headline, and the table says so."""
    from benchmarks.bench_run import summarise

    def run(s: float, first: bool) -> dict:
        return {"first": first, "process_s": s, "run_s": s - 2, "peak_rss_mib": int(s),
                "stages": {"churn": s / 2, "rfm": 1.0}}

    runs = [run(110, True), run(130, True), run(100, True), run(80, False), run(90, False)]
    r = summarise(1_000_000, 10_000_000, 15.0, runs, True)
    assert (r["first_run_s"], r["first_runs"], r["median_s"]) == (110, 3, 85)
    assert r["first_run_stages"] == {"churn": 55.0, "rfm": 1.0}
    assert r["first_run_peak_rss_mib"] == 130 and r["aim_met_first_run"] and r["aim_met"]
    head = {"date": "2026-12-07T12:00:00", "machine": MACHINE, "versions": VERSIONS}
    md = render_markdown({"run-1000000": {**head, **r}})
    assert "| 1 M | 10 M | 2 | 85.0 s | 110 s (median of 3) |" in md
    assert "| 1 M (first run, median of 3) | 55.0 | 1.0 | 56.0 |" in md
    # a result written before first runs were repeated: its first run is runs[0]
    old = summarise(1_000_000, 10_000_000, 15.0,
                    [{k: v for k, v in x.items() if k != "first"} for x in runs[2:]], True)
    assert (old["first_run_s"], old["first_runs"], old["median_s"]) == (100, 1, 85)


def test_render_markdown_with_no_results_still_renders() -> None:
    md = render_markdown({})
    assert md.startswith("## Generated by the benchmark suite")


HAND = """# Benchmarks

Run them all with one command.

The machines are shared and noisy.

## Import (hand-written)

| a | b |
|---|---|
| 1 | 2 |

## CLV (hand-written)

Text with <!-- a comment --> and a hard line break:\x20\x20
next line.
"""


def _outside(doc: str) -> str:
    i, j = doc.index(BEGIN), doc.index(END) + len(END)
    return doc[:i] + doc[j:]


def test_markers_are_created_after_the_introduction_and_only_their_content_replaced() -> None:
    first = replace_generated(HAND, "## Generated\n\nold table\n")
    assert first.index("The machines are shared") < first.index(BEGIN)
    assert first.index(END) < first.index("## Import (hand-written)")
    k = HAND.index("## Import (hand-written)")   # the block goes in whole, nothing else moves
    assert first == HAND[:k] + f"{BEGIN}\n## Generated\n\nold table\n{END}\n\n" + HAND[k:]
    second = replace_generated(first, "## Generated\n\nnew table\n")
    assert "new table" in second and "old table" not in second
    assert _outside(second) == _outside(first)       # hand-written text byte for byte
    assert replace_generated(second, "## Generated\n\nnew table\n") == second
    with pytest.raises(ValueError, match="markers"):
        replace_generated(HAND + "\n" + BEGIN + "\n", "x")


def test_the_real_document_keeps_its_hand_written_sections() -> None:
    doc = (ROOT / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    out = replace_generated(doc, render_markdown(_results()))
    if BEGIN in doc:
        assert _outside(out) == _outside(doc)
    else:
        i, j = out.index(BEGIN), out.index(END) + len(END + "\n\n")
        assert out[:i] + out[j:] == doc
    for heading in [line for line in doc.splitlines() if line.startswith("## ")
                    and not line.startswith("## Generated")]:
        assert heading in _outside(out)


@pytest.fixture(scope="module")
def tiny_transactions(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("rfm") / "tx.parquet"
    return bench_rfm.make_transactions(path, 400, 4_000, seed=11)


def test_rfm_summary_agrees_with_lifetimes_on_a_small_data_set(tiny_transactions: Path
                                                                ) -> None:
    ref, _ = bench_rfm.lifetimes_summary(tiny_transactions)
    assert len(ref) > 300 and (ref.frequency > 0).sum() > 200
    for name in ("kehu", "pandas"):
        ours, _ = bench_rfm.IMPLEMENTATIONS[name](tiny_transactions)
        cmp = bench_rfm.compare(ours, ref)
        assert cmp["agree"], (name, cmp)
        assert cmp["mismatches"] == {"frequency": 0, "recency": 0, "T": 0,
                                     "monetary_value": 0}


def test_rfm_comparison_reports_a_disagreement(tiny_transactions: Path) -> None:
    ref, _ = bench_rfm.lifetimes_summary(tiny_transactions)
    ours, _ = bench_rfm.kehu_summary(tiny_transactions)
    bad = ours.copy()
    who = ref.index[ref.frequency > 0][0]
    bad.loc[who, "monetary_value"] += 0.01
    cmp = bench_rfm.compare(bad, ref)
    assert not cmp["agree"] and cmp["mismatches"]["monetary_value"] == 1
    assert not bench_rfm.compare(ours.drop(index=who), ref)["agree"]
