"""The identity review queue at scale: CPU seconds of one queue page (``service.queue``, the
web page's ``/identity`` and ``/identity/journal`` contexts) over a workspace with ``n``
resolved records and a few hundred pending pairs — without running splink: the
``identity_records`` and ``identity_map`` tables are synthetic, written the way a run writes
them, and then changed by a few decisions the way a decision changes them (a Delta merge of
the map), as in a workspace in use.

    python -m benchmarks.bench_identity_queue --records 1000000 --pairs 300 --repeat 5

Prints one JSON line: the median and every run of each step (CPU seconds of this process,
all threads, and wall seconds), and writes ``benchmarks/results/identity-queue-<n>.json``
unless ``--no-save``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from benchmarks.common import RESULTS, meta


def records(n: int, seed: int = 1) -> pa.Table:
    """``n`` cleaned identity records (the columns ``tables.clean_records`` writes)."""
    rng = np.random.default_rng(seed)
    family = np.array(["王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周"], dtype=object)
    given = np.array(["伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋"], dtype=object)
    cities = np.array(["上海", "北京", "广州", "深圳", "南京", "杭州", "成都"], dtype=object)
    src = np.where(rng.random(n) < 0.8, "crm", np.where(rng.random(n) < 0.5, "web", "pos"))
    ids = np.char.add(np.char.upper(src.astype(str)),
                      np.char.zfill(np.arange(n).astype(str), 9)).astype(object)
    f, g = rng.integers(0, 10, n), rng.integers(0, 10, n)
    phone = np.char.add("13", np.char.zfill(rng.integers(0, 10**9, n).astype(str), 9))
    born = (np.datetime64("1950-01-01") + rng.integers(0, 20_000, n)
            * np.timedelta64(1, "D")).astype("datetime64[D]").astype(str)
    return pa.table({
        "customer_id": pa.array(ids, pa.string()),
        "source_system": pa.array(src.astype(object), pa.string()),
        "updated_at": pa.array(np.full(n, np.datetime64("2024-06-01T00:00:00", "us"))),
        "name": pa.array(family[f] + given[g], pa.string()),
        "gender": pa.array(np.where(rng.random(n) < 0.5, "男", "女").astype(object)),
        "birth_date": pa.array(born.astype(object), pa.string()),
        "address": pa.array(np.char.add("路", rng.integers(1, 999, n).astype(str))
                            .astype(object), pa.string()),
        "city": pa.array(cities[rng.integers(0, len(cities), n)], pa.string()),
        "phone": pa.array(phone.astype(object), pa.string()),
        "email": pa.array(np.where(rng.random(n) < 0.4, np.char.add(
            ids.astype(str), "@example.cn"), None).astype(object), pa.string()),
        "id_number": pa.nulls(n, pa.string()),
        "name_pinyin": pa.array(np.char.add("wang ", ids.astype(str)).astype(object),
                                pa.string()),
    })


def build(root: Path, n: int, pairs: int, decisions: int = 3, seed: int = 1) -> Any:
    """A workspace with ``n`` resolved records, ``pairs`` pending pairs, a few decisions."""
    from kehu import Workspace
    from kehu.identity import service
    from kehu.identity import tables as tb
    from kehu.store.models import IdentityPair

    ws = Workspace.init(root / "ws", locale="en")
    recs = records(n, seed)
    writer = getattr(tb, "write_records", None)   # the layout a run writes, where there is one
    if writer is not None:
        writer(ws.warehouse, recs, metadata={"kehu.identity_run": "1"})
    else:
        ws.warehouse.append(tb.RECORDS_TABLE, recs)
    ids = recs["customer_id"].to_numpy(zero_copy_only=False)
    keys = np.char.add("K", np.char.zfill(np.arange(1, n + 1).astype(str), 8)).astype(object)
    mapping = pa.table({"customer_id": recs["customer_id"],
                        "source_system": recs["source_system"],
                        "kehu_key": pa.array(keys, pa.string()),
                        "run_id": pa.array(np.ones(n, dtype=np.int64)),
                        "journal_id": pa.nulls(n, pa.int64())}, schema=tb.MAP_SCHEMA)
    writer_map = getattr(tb, "write_map", None)
    if writer_map is not None:
        writer_map(ws.warehouse, mapping, metadata={"kehu.identity_run": "1"})
    else:
        ws.warehouse.append(tb.MAP_TABLE, mapping)
    rng = np.random.default_rng(seed + 1)
    chosen = rng.choice(n, size=(pairs + decisions, 2), replace=False)
    with ws.store.session() as s:
        for i, (a, b) in enumerate(chosen):
            lo, hi = sorted((str(ids[a]), str(ids[b])))
            s.add(IdentityPair(record_id_l=lo, record_id_r=hi, status="pending",
                               origin="model", match_probability=float(rng.random()),
                               match_weight=float(i)))
    # decisions on the first pairs: merges rewrite the map with a Delta merge, as in use
    for it in service.queue(ws, "pending", decisions):
        service.decide(ws, it.pair_id, "merge", actor="bench")
    ws.engine.refresh()
    return ws


def cpu(fn: Callable[[], Any], repeat: int) -> dict[str, Any]:
    """CPU seconds (this process, all threads) and wall seconds of ``repeat`` calls."""
    cpus, walls = [], []
    for _ in range(repeat):
        c0, w0 = time.process_time(), time.perf_counter()
        fn()
        cpus.append(round(time.process_time() - c0, 4))
        walls.append(round(time.perf_counter() - w0, 4))
    return {"cpu_median": statistics.median(cpus), "cpu": cpus,
            "wall_median": statistics.median(walls), "wall": walls}


def measure(ws: Any, repeat: int) -> dict[str, Any]:
    from kehu.identity import service
    from kehu.identity import tables as tb
    from kehu.web.routes import identity as routes

    def cold() -> None:
        """A page with nothing of the tables' files known yet (a new process)."""
        for cache in ("_GROUPS", "_FILES"):
            getattr(tb, cache, {}).clear()
        service.queue(ws, "pending", routes.PAGE_SIZE)

    service.queue(ws, "pending", routes.PAGE_SIZE)   # warm: imports, the first binding
    return {
        "queue_page_cold": cpu(cold, repeat),
        "queue_page": cpu(lambda: service.queue(ws, "pending", routes.PAGE_SIZE), repeat),
        "queue_50": cpu(lambda: service.queue(ws, "pending", 50), repeat),
        "identity_page": cpu(lambda: routes._queue_context(ws, "pending", 1), repeat),
        "journal_page": cpu(lambda: routes._journal_context(ws, routes.JOURNAL_LIMIT),
                            repeat),
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--pairs", type=int, default=300)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--no-save", action="store_true")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        t0 = time.perf_counter()
        ws = build(Path(tmp), args.records, args.pairs)
        built = round(time.perf_counter() - t0, 1)
        try:
            out = {**meta(records=args.records, pairs=args.pairs), "build_seconds": built,
                   "steps": measure(ws, args.repeat)}
        finally:
            ws.close()
    if not args.no_save:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / f"identity-queue-{args.records}.json").write_text(
            json.dumps(out, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(json.dumps(out["steps"] | {"build_seconds": built}))


if __name__ == "__main__":
    main()
