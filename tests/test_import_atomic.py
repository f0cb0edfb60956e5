"""A real import process killed at any moment leaves the warehouse as it was before, or as
it is after a complete import — never in between."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pytest

from kehu import Workspace
from kehu.ingest import Importer, plan_import
from kehu.ingest.journal import completed_imports

N = 150_000


def _tx(path: Path, ids: np.ndarray, amount: float) -> Path:
    n = len(ids)
    t = pa.table({
        "transaction_id": np.char.add("T", ids.astype(str)),
        "customer_id": np.char.add("C", (ids % 1000).astype(str)),
        "transaction_time": ["2024-05-01 10:00:00"] * n,
        "amount": np.full(n, amount),
    })
    pcsv.write_csv(t, path)
    return path


def _state(ws_path: Path) -> tuple[int, set[float]]:
    ws = Workspace.open(ws_path)
    if not ws.warehouse.exists("transactions"):
        return 0, set()
    amounts = ws.warehouse.read("transactions", ["amount"]).column(0)
    return len(amounts), set(amounts.unique().to_pylist())


@pytest.mark.slow
def test_killed_import_leaves_previous_state(tmp_path: Path) -> None:
    ws = Workspace.init(tmp_path / "ws")
    cust = tmp_path / "c.csv"
    pcsv.write_csv(pa.table({"customer_id": [f"C{i}" for i in range(1000)]}), cust)
    Importer(ws).run(plan_import(ws, "customers", [cust]))
    base = _tx(tmp_path / "base.csv", np.arange(N), 1.0)
    Importer(ws).run(plan_import(ws, "transactions", [base]))
    # the update changes every existing row and adds as many new ones
    update = _tx(tmp_path / "update.csv", np.arange(2 * N), 2.0)
    before = (N, {1.0})
    after = (2 * N, {2.0})
    env = {**os.environ, "KEHU_WORKSPACE": str(ws.root)}
    cmd = [sys.executable, "-m", "kehu.cli.main", "import", "transactions", str(update), "--yes",
           "--json"]
    # spread the kills over start-up, reading, staging, merging and journaling
    outcomes = {"before": 0, "after": 0}
    delays = np.linspace(0.3, 2.5, 9)
    for delay in delays:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(float(delay))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        state = _state(ws.root)
        assert state in (before, after), f"partial state after kill at {delay:.2f}s: {state}"
        if state == after:
            outcomes["after"] += 1
            # put the previous state back for the next round (a new commit, not a rewrite)
            ws2 = Workspace.open(ws.root)
            ws2.warehouse.overwrite("transactions", ws2.warehouse.read(
                "transactions", version=_version_with(ws2, N)))
        else:
            outcomes["before"] += 1
    assert outcomes["before"] >= 1, outcomes  # at least one kill landed mid-import
    # a clean run afterwards completes and the journal knows it
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert _state(ws.root) == after
    ws3 = Workspace.open(ws.root)
    assert len(completed_imports(ws3.warehouse)) >= 3


def _version_with(ws: Workspace, n: int) -> int:
    """The newest table version that holds exactly ``n`` rows of amount 1.0."""
    for h in ws.warehouse.history("transactions"):
        v = h["version"]
        t = ws.warehouse.read("transactions", ["amount"], version=v)
        if len(t) == n and set(t.column(0).unique().to_pylist()) == {1.0}:
            return int(v)
    raise AssertionError("no earlier version with the base rows")
