"""After a Delta merge (the importer's upsert of changed rows), queries that filter string
columns still work: delta-rs writes the merged files with string_view columns, which pyarrow
cannot compare with the plain strings DuckDB pushes down as filters."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from kehu import Workspace
from kehu.model import ENTITIES


def test_filters_after_a_merge(tmp_path) -> None:  # type: ignore[no-untyped-def]
    ws = Workspace.init(tmp_path / "w")
    schema = ENTITIES["customers"].arrow_schema()
    n = 200
    cols = {"customer_id": [f"C{i:04d}" for i in range(n)],
            "name": [f"客户{i}" for i in range(n)],
            "city": ["上海" if i % 2 else "北京" for i in range(n)]}
    t = pa.table({f.name: pa.array(cols[f.name], f.type) if f.name in cols
                  else pa.nulls(n, f.type) for f in schema}, schema=schema)
    ws.warehouse.append("customers", t)
    changed = t.slice(0, 50)
    i = schema.get_field_index("email")
    changed = changed.set_column(i, schema.field(i), pa.array(
        [f"c{k}@example.com" for k in range(50)], schema.field(i).type))
    ws.warehouse.upsert("customers", changed, key=("customer_id",), compare=["email"])
    files = ws.warehouse.delta("customers").file_uris()
    kinds = {str(pq.read_schema(f).field("customer_id").type) for f in files}
    assert kinds <= {"string", "string_view"}
    c = ws.engine.table("customers")
    got = c.filter((c.customer_id >= "C0040") & c.email.notnull()
                   & c.city.isin(["上海"])).order_by("customer_id").customer_id \
        .to_pyarrow().to_pylist()
    df = ws.warehouse.read("customers").to_pandas()
    want = df[(df.customer_id >= "C0040") & df.email.notna() & (df.city == "上海")] \
        .sort_values("customer_id").customer_id.tolist()
    assert got == want and len(want) == 5
    assert isinstance(df, pd.DataFrame)


def test_upsert_compares_every_column(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The default comparison ORs one IS DISTINCT FROM per column; each must be bracketed
    (delta-rs's parser binds OR tighter), or the merge fails on string columns."""
    ws = Workspace.init(tmp_path / "w")
    schema = ENTITIES["customers"].arrow_schema()
    n = 30
    cols = {"customer_id": [f"C{i:04d}" for i in range(n)],
            "name": [f"客户{i}" for i in range(n)], "city": ["上海"] * n}
    t = pa.table({f.name: pa.array(cols[f.name], f.type) if f.name in cols
                  else pa.nulls(n, f.type) for f in schema}, schema=schema)
    ws.warehouse.append("customers", t)
    i = schema.get_field_index("city")
    new = t.set_column(i, schema.field(i), pa.array(["北京"] * 10 + ["上海"] * 20,
                                                     schema.field(i).type))
    res = ws.warehouse.upsert("customers", new, key=("customer_id",))
    assert (res.inserted, res.updated, res.unchanged) == (0, 10, 20)
    df = ws.warehouse.read("customers").to_pandas().sort_values("customer_id")
    assert df.city.tolist() == ["北京"] * 10 + ["上海"] * 20
