"""Data-quality report against independent computations (pandas on the same rows) and
problems planted on purpose."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kehu import Workspace
from kehu.model import ENTITIES
from kehu.quality import build_report, score

NOW = datetime(2025, 1, 1)


def _table(entity: str, rows: list[dict]) -> pa.Table:
    schema = ENTITIES[entity].arrow_schema()
    cols = {f.name: [r.get(f.name) for r in rows] for f in schema}
    return pa.Table.from_pydict(cols, schema=schema)


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    w = Workspace.init(tmp_path / "w")
    customers = [
        {"customer_id": "C1", "name": "张伟", "phone": "13800138000", "gender": "M",
         "birth_date": date(1980, 1, 1)},
        {"customer_id": "C2", "name": "張偉", "phone": "+86 138 0013 8000", "gender": "M"},
        {"customer_id": "C3", "name": "李娜", "phone": "139-0000-1111", "email": "Li@x.cn",
         "gender": "X"},   # invalid choice written straight into the warehouse
        {"customer_id": "C4", "name": "王芳", "email": "li@x.CN", "signup_date": date(2030, 1, 1)},
        {"customer_id": "C5", "name": "赵六", "id_number": "110101199001011234"},
        {"customer_id": "C6", "name": "钱七", "id_number": "110101199001011234"},
    ]
    w.warehouse.append("customers", _table("customers", customers))
    tx = [{"transaction_id": f"T{i}", "customer_id": "C1", "amount": 10.0 + i % 5,
           "transaction_time": datetime(2024, 1 + (i % 3) * 2, 1 + i % 20)} for i in range(40)]
    tx.append({"transaction_id": "T99", "customer_id": "C404", "amount": 12.0,
               "transaction_time": datetime(2024, 1, 5)})                      # orphan
    tx.append({"transaction_id": "T100", "customer_id": "C2", "amount": 100000.0,
               "transaction_time": datetime(2024, 1, 6)})                      # outlier
    tx.append({"transaction_id": "T101", "customer_id": "C1", "amount": 10.0,
               "transaction_time": datetime(2024, 1, 1)})                      # duplicate of T0
    w.warehouse.append("transactions", _table("transactions", tx))
    return w


def test_report_finds_what_was_planted(ws: Workspace) -> None:
    rep = build_report(ws, now=NOW)
    by = {e.entity: e for e in rep.entities}
    assert set(by) == {"customers", "transactions"}
    assert "employees" in rep.empty_entities
    cust = by["customers"]
    inv = {c.name: c.invalid for c in cust.columns}
    assert inv["gender"] == 1 and inv["signup_date"] == 1
    groups = {(g["rule"], tuple(g["customer_ids"])) for g in
              rep.suspected_duplicate_customers["examples"]}
    assert ("phone", ("C1", "C2")) in groups
    assert ("email", ("C3", "C4")) in groups
    assert ("id_number", ("C5", "C6")) in groups
    tx = by["transactions"]
    assert tx.orphans["customer_id→customers"] == 1
    assert tx.exact_duplicates == 1
    assert list(tx.outliers) == ["amount"] and tx.outliers["amount"]["examples"][0] == 100000.0
    cov = tx.date_coverage
    assert cov is not None and cov["empty_months"] == ["2024-02", "2024-04"]


def test_completeness_and_score_equal_independent_computation(ws: Workspace) -> None:
    rep = build_report(ws, now=NOW)
    cust = next(e for e in rep.entities if e.entity == "customers")
    df = ws.warehouse.read("customers").to_pandas()
    for c in cust.columns:
        assert c.completeness == pytest.approx(df[c.name].notna().mean())
    ent = ENTITIES["customers"]
    w = [(3.0 if ent.column(c).required else 1.0, df[c].notna().mean()) for c in df.columns
         if ent.has_column(c) and (ent.column(c).required or df[c].notna().mean() > 0)]
    expected = sum(a * b for a, b in w) / sum(a for a, _ in w)
    assert cust.completeness == pytest.approx(expected, abs=1e-6)
    # C1..C6: C1/C2 share a phone, C3/C4 an e-mail, C5/C6 an ID number -> 6 of 6 suspected
    assert cust.uniqueness == pytest.approx(0.0)
    assert cust.validity == pytest.approx(1 - 2 / 6)
    assert cust.score == score(cust.completeness, cust.validity, cust.uniqueness,
                               cust.integrity)


@settings(max_examples=15, deadline=None)
@given(values=st.lists(st.one_of(st.none(), st.floats(-1e6, 1e6)), min_size=1, max_size=60))
def test_completeness_property(tmp_path_factory: pytest.TempPathFactory,
                               values: list[float | None]) -> None:
    w = Workspace.init(tmp_path_factory.mktemp("p") / "w")
    rows = [{"product_id": f"P{i}", "unit_price": v} for i, v in enumerate(values)]
    w.warehouse.append("products", _table("products", rows))
    rep = build_report(w, ["products"])
    (p,) = rep.entities
    got = {c.name: c.completeness for c in p.columns}["unit_price"]
    assert 0.0 <= got <= 1.0
    assert got == pytest.approx(pd.Series(values, dtype="float64").notna().mean())
    assert 0 <= p.score <= 100
