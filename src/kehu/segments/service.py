"""Evaluating segments: size, value, overlap, membership snapshots and exports."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ibis
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from kehu.errors import KehuInputError
from kehu.i18n import _
from kehu.segments.compile import Context, compile_segment
from kehu.segments.spec import SegmentSpec

if TYPE_CHECKING:
    from kehu.workspace import Workspace

MEMBERS_TABLE = "segment_members"

#: export headers, Chinese first (the people who receive these lists read Chinese)
EXPORT_COLUMNS = {
    "customer_id": "客户编号", "name": "姓名", "phone": "手机号码", "city": "城市",
    "tier": "价值等级", "rfm_class": "RFM类别", "lifecycle_stage": "生命周期阶段",
    "clv": "客户终身价值", "monetary_total": "累计消费",
}


@dataclass
class SegmentResult:
    name: str
    as_of: date
    size: int
    customers_total: int
    share: float
    revenue: float | None
    clv: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def evaluate(ws: Workspace, spec: SegmentSpec, snapshot: bool = False,
             run_id: str | None = None) -> SegmentResult:
    """Size and value of a segment; with ``snapshot`` the membership is appended to
    ``segment_members`` (segment, as-of date, time, run id, customer)."""
    ctx = Context(ws.engine, spec.as_of)
    members = compile_segment(spec, ctx)
    base = ctx.base
    joined = base.filter(base.customer_id.isin(members.customer_id))
    aggs: dict[str, Any] = {"n": joined.count()}
    if "monetary_total" in base.columns:
        aggs["revenue"] = joined.monetary_total.sum()
    if "clv" in base.columns:
        aggs["clv"] = joined.clv.sum()
    row = joined.aggregate(**aggs).to_pyarrow().to_pylist()[0]
    total = int(base.count().to_pyarrow().as_py())
    n = int(row["n"])
    if snapshot:
        # written by the engine: on Spark the members never pass through the driver
        rows = members.select(
            segment=ibis.literal(spec.name, "string"), as_of=ibis.literal(ctx.as_of, "date"),
            snapshot_at=ibis.literal(datetime.now(), "timestamp"),
            run_id=ibis.literal(run_id, "string"),
            customer_id=members.customer_id.cast("string"))
        ws.engine.write(MEMBERS_TABLE, rows, merge_schema=True)
    return SegmentResult(spec.name, ctx.as_of, n, total, n / total if total else 0.0,
                         row.get("revenue"), row.get("clv"))


def overlap(ws: Workspace, specs: list[SegmentSpec]) -> list[dict[str, Any]]:
    """Members shared by every pair of segments."""
    ctx = Context(ws.engine)
    sets = {s.name: set(compile_segment(s, ctx).to_pyarrow().column(0).to_pylist())
            for s in specs}
    out = []
    names = list(sets)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            both = len(sets[a] & sets[b])
            union = len(sets[a] | sets[b])
            out.append({"a": a, "b": b, "a_size": len(sets[a]), "b_size": len(sets[b]),
                        "both": both, "jaccard": both / union if union else 0.0})
    return out


def export(ws: Workspace, spec: SegmentSpec, path: Path) -> int:
    """Write the members with their main fields to CSV (UTF-8 with BOM, Chinese headers),
    Excel or Parquet, by the file's extension. Returns the number of rows."""
    ctx = Context(ws.engine, spec.as_of)
    members = compile_segment(spec, ctx)
    base = ctx.base
    cols = [c for c in EXPORT_COLUMNS if c in base.columns]
    table = base.filter(base.customer_id.isin(members.customer_id)).select(*cols) \
        .order_by("customer_id").to_pyarrow()
    table = table.rename_columns([EXPORT_COLUMNS[c] for c in cols])
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with path.open("wb") as fh:
            fh.write(b"\xef\xbb\xbf")
            pcsv.write_csv(table, fh)
    elif suffix == ".parquet":
        pq.write_table(table, path)
    elif suffix == ".xlsx":
        import openpyxl

        wb = openpyxl.Workbook(write_only=True)
        sh = wb.create_sheet(spec.name[:31])
        sh.append(table.column_names)
        for r in table.to_pylist():
            sh.append(list(r.values()))
        wb.save(path)
    else:
        raise KehuInputError(_("Cannot export to '{ext}': use .csv, .xlsx or .parquet.").format(
            ext=path.suffix))
    return table.num_rows
