"""pymc-marketing's BG/NBD MAP fit, timed; run by bench_clv with the python of the separate
environment build/pymc-venv (pymc-marketing is not a kehu dependency):

    build/pymc-venv/bin/python benchmarks/pymc_bgnbd_fit.py DATA.parquet [REPEAT]

DATA.parquet has customer_id, frequency, recency, T. Prints one JSON line: import seconds,
seconds per fit (the first includes PyTensor's compilation), the parameters.
"""

from __future__ import annotations

import json
import sys
import time


def main(path: str, repeat: str = "2") -> None:
    t0 = time.perf_counter()
    import importlib.metadata

    import pandas as pd
    from pymc_marketing.clv import BetaGeoModel

    t_import = time.perf_counter() - t0
    df = pd.read_parquet(path)
    times = []
    model = None
    for _ in range(int(repeat)):
        t = time.perf_counter()
        model = BetaGeoModel(data=df)
        model.fit(method="map", progressbar=False)
        times.append(time.perf_counter() - t)
    assert model is not None
    summary = model.fit_summary()
    params = {k: float(summary[k]) for k in ("r", "alpha", "a", "b")}
    sys.stdout.write(json.dumps({"import_s": round(t_import, 2), "fit_s": times,
                                 "params": params,
                                 "version": importlib.metadata.version("pymc-marketing")})
                     + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:])
