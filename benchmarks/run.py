"""Run every benchmark: ``python -m benchmarks.run [--quick]``; results go to
``benchmarks/results/*.json`` and are summarised in docs/benchmarks.md by hand."""

from __future__ import annotations

import argparse
import sys

from benchmarks import bench_generate, bench_import


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="1 M rows, one run (a smoke test)")
    args = ap.parse_args()
    rows, repeat = (1_000_000, 1) if args.quick else (10_000_000, 3)
    argv0 = sys.argv[0]
    sys.argv = [argv0, "--rows", str(rows), "--repeat", str(repeat)]
    bench_import.main()
    sizes = ["20000"] if args.quick else ["50000", "200000"]
    sys.argv = [argv0, "--sizes", *sizes, "--repeat", str(repeat)]
    bench_generate.main()


if __name__ == "__main__":
    main()
