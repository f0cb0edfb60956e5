"""Budgets imported through the public importer and tracked against the cube's actuals."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from kehu import Workspace
from kehu.analytics.budget import budget_vs_actual
from kehu.ingest import Importer, plan_import


def _imp(ws: Workspace, entity: str, path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
    Importer(ws).run(plan_import(ws, entity, [path]))


def test_budget_against_actuals(tmp_path: Path) -> None:
    ws = Workspace.init(tmp_path / "w")
    _imp(ws, "customers", tmp_path / "c.csv", "客户编号,地区\nA,广东\nB,上海\n")
    _imp(ws, "transactions", tmp_path / "t.csv",
         "交易流水号,客户编号,交易时间,金额,成本\n1,A,2025-01-05,100,60\n2,B,2025-01-09,50,20\n"
         "3,A,2025-02-01,80,40\n")
    _imp(ws, "budgets", tmp_path / "b.csv",
         "预算编号,月份,指标,维度,维度取值,预算值\n"
         "B1,2025-01,收入,,,200\nB2,2025-02,收入,,,100\n"
         "B3,2025-01,毛利,region,广东,50\nB4,2025-01,revenue,region,上海,40\n")
    r = budget_vs_actual(ws.engine).set_index("budget_id")
    assert r.loc["B1"].actual == pytest.approx(150) and r.loc["B1"].variance == pytest.approx(-50)
    assert r.loc["B2"].attainment == pytest.approx(0.8)
    assert r.loc["B3"].actual == pytest.approx(40)   # margin in 广东, January: 100 − 60
    assert r.loc["B4"].actual == pytest.approx(50)
    assert isinstance(r, pd.DataFrame) and len(r) == 4
