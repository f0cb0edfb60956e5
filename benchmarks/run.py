"""Run every benchmark: ``python -m benchmarks.run [--quick]`` — import, generator, CLV fit,
analysis run and cube, association rules and offers, campaign launch and measurement; results go to
``benchmarks/results/*.json`` and are summarised in docs/benchmarks.md by hand."""

from __future__ import annotations

import argparse
import sys

from benchmarks import (
    bench_basket,
    bench_campaign,
    bench_churn,
    bench_clv,
    bench_cube,
    bench_generate,
    bench_import,
)


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
    customers = "100000" if args.quick else "1000000"
    sys.argv = [argv0, "--customers", customers, "--repeat", str(repeat)]
    bench_clv.main()
    sys.argv = [argv0, "--customers", customers, "--lines", str(rows), "--repeat",
                str(max(repeat, 3))]
    bench_cube.main()
    sys.argv = [argv0, "--customers", customers, "--lines", str(rows)]
    bench_churn.main()
    sys.argv = [argv0, "--customers", "20000" if args.quick else "200000", "--lines",
                str(rows), "--repeat", str(repeat)]
    bench_basket.main()
    sys.argv = [argv0, "--customers", customers, "--lines", str(rows), "--repeat",
                str(repeat)]
    bench_campaign.main()


if __name__ == "__main__":
    main()
