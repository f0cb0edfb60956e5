"""pymc-marketing's BG/NBD MAP fit on the same 1 M simulated customers as bench_clv.

pymc-marketing is not a kehu dependency; run this in a separate virtual environment:

    python -m venv /tmp/pymc-venv && /tmp/pymc-venv/bin/pip install pymc-marketing pyarrow
    .venv/bin/python -c "from benchmarks.bench_clv import simulate; import pandas as pd; \\
        x, tx, T = simulate(1_000_000); pd.DataFrame({'customer_id': range(len(x)), \\
        'frequency': x, 'recency': tx, 'T': T}).to_parquet('/tmp/bg1m.parquet')"
    /tmp/pymc-venv/bin/python benchmarks/pymc_bgnbd_fit.py
"""

from __future__ import annotations

import json
import sys
import time


def main(path: str = "/tmp/bg1m.parquet") -> None:
    t0 = time.perf_counter()
    import pandas as pd
    from pymc_marketing.clv import BetaGeoModel

    t_import = time.perf_counter() - t0
    df = pd.read_parquet(path)
    times = []
    model = None
    for _ in range(2):
        t = time.perf_counter()
        model = BetaGeoModel(data=df)
        model.fit(method="map")
        times.append(time.perf_counter() - t)
    assert model is not None
    params = {k: float(v) for k, v in model.fit_summary().items()}
    sys.stdout.write(json.dumps({"import_s": round(t_import, 2),
                                 "fit_s": [round(x, 2) for x in times], "params": params}) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:])
