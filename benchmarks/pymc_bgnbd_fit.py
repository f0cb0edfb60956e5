"""pymc-marketing's BG/NBD MAP fit on the same 1 M simulated customers as bench_clv.

pymc-marketing is not a kehu dependency; run this in a separate virtual environment:

    python -m venv /tmp/pymc-venv && /tmp/pymc-venv/bin/pip install pymc-marketing pyarrow
    python -c "from benchmarks.bench_clv import simulate; ..."   # writes /tmp/bg1m.parquet
    /tmp/pymc-venv/bin/python benchmarks/pymc_bgnbd_fit.py
"""

import time  # noqa: I001
t0 = time.perf_counter()
import pandas as pd
from pymc_marketing.clv import BetaGeoModel

t_import = time.perf_counter() - t0
df = pd.read_parquet("/tmp/bg1m.parquet")
times = []
for _ in range(2):
    t = time.perf_counter()
    m = BetaGeoModel(data=df)
    m.fit(method="map")
    times.append(time.perf_counter() - t)
print({"import_s": round(t_import, 2), "fit_s": [round(x, 2) for x in times]})
print(m.fit_summary() if hasattr(m, "fit_summary") else m.idata.posterior)
