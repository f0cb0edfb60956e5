"""Lead funnel through the public importer, against plain Python counts."""

from __future__ import annotations

from pathlib import Path

import pytest

from kehu import Workspace
from kehu.analytics.funnel import funnel
from kehu.ingest import Importer, plan_import

LEADS = """线索编号,创建日期,线索来源,转商机日期,成交日期,丢失日期
L1,2024-01-03,官网,2024-01-10,2024-02-01,
L2,2024-01-05,官网,2024-01-20,,2024-03-01
L3,2024-01-09,展会,,,2024-01-30
L4,2024-02-02,展会,2024-02-05,2024-02-20,
L5,2024-02-11,官网,,,
L6,2024-02-15,转介绍,2024-02-16,2024-02-18,
"""


def test_funnel_counts_and_rates(tmp_path: Path) -> None:
    ws = Workspace.init(tmp_path / "w")
    src = tmp_path / "leads.csv"
    src.write_text(LEADS, encoding="utf-8")
    rep = Importer(ws).run(plan_import(ws, "leads", [src]))
    assert rep.loaded == 6
    total = funnel(ws.engine.table("leads")).to_pandas().iloc[0]
    assert (total.leads, total.prospects, total.customers, total.lost) == (6, 4, 3, 2)
    assert total.close_rate == pytest.approx(3 / 4)
    assert total.median_days_to_customer == pytest.approx(sorted([29, 18, 3])[1])
    by = funnel(ws.engine.table("leads"), "month").to_pandas().set_index("month")
    assert by.loc["2024-01"].leads == 3 and by.loc["2024-02"].customers == 2
    src_ = funnel(ws.engine.table("leads"), "source").to_pandas().set_index("source")
    assert src_.loc["官网"].customer_rate == pytest.approx(1 / 3)
