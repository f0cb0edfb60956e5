"""Property tests: random and malformed files never crash an importer and never lose a row.

Files mix valid values with garbage types, ragged rows, blank lines, undecodable bytes, wrong
encodings and empty files, in every format kehu reads.
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kehu import Workspace
from kehu.errors import KehuError
from kehu.ingest import Importer, plan_import
from kehu.ingest.journal import visible_rejects

ILLEGAL_XLSX = re.compile(r"[\x00-\x08\x0b-\x0c\x0e-\x1f]")
HEADER = ["customer_id", "name", "gender", "birth_date", "signup_date", "积分"]

value = st.one_of(
    st.sampled_from(["", "C1", "C2", "张三", "男", "F", "2024-01-02", "2024/3/4", "1999年1月2日",
                     "2999-01-01", "13-45-2020", "¥1,000", "-5", "N/A", "是", "否", "12.5",
                     "null", " ", "x" * 50]),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\x00"),
            max_size=12),
    st.integers(-10**6, 10**6).map(str),
)
row = st.lists(value, min_size=0, max_size=8)


def _write_csv(path: Path, rows: list[list[str]], encoding: str, junk: bytes) -> None:
    """Write rows (no quoting needed: commas and quotes are stripped)."""
    lines = [",".join(HEADER)]
    for r in rows:
        lines.append(",".join(v.replace(",", " ").replace('"', " ") for v in r))
    data = b""
    for i, ln in enumerate(lines):
        try:
            enc = ln.encode(encoding)
        except UnicodeEncodeError:
            enc = ln.encode("utf-8", "replace")
        data += enc + (junk if i == 2 else b"") + b"\n"
    path.write_bytes(data)


def rep_encoding(path: Path) -> str:
    from kehu.ingest.encoding import detect_encoding

    return detect_encoding(path.read_bytes())


def _check(ws: Workspace, path: Path) -> None:
    try:
        plans = plan_import(ws, "customers", [path])
        rep = Importer(ws).run(plans)
    except KehuError:
        assert not ws.warehouse.exists("customers")  # refused before writing anything
        return
    assert rep.read == rep.loaded + rep.rejected
    in_table = ws.warehouse.count("customers")
    assert in_table == rep.loaded
    rejected_rows = {(r["file"], r["row"]) for r in
                     visible_rejects(ws.warehouse, rep.import_id).to_pylist()}
    assert len(rejected_rows) == rep.rejected


SETTINGS = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@SETTINGS
@given(rows=st.lists(row, max_size=30), encoding=st.sampled_from(["utf-8", "gbk", "latin-1"]),
       junk=st.sampled_from([b"", b"\xff\xfe", b"\x81", b"\xe4\xb8"]),
       bom=st.booleans())
def test_csv_never_loses_a_row(rows: list[list[str]], encoding: str, junk: bytes,
                               bom: bool) -> None:
    with tempfile.TemporaryDirectory() as d:
        ws = Workspace.init(Path(d) / "ws")
        path = Path(d) / "c.csv"
        _write_csv(path, rows, encoding, junk)
        if bom:
            path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
        _check(ws, path)
        # an independent count of the records: one per line after the header, except lines
        # with nothing but separators and spaces (blank records)
        if ws.warehouse.exists("_imports"):
            rep = ws.warehouse.read("_imports").to_pylist()[-1]
            enc = "utf-8" if bom else rep_encoding(path)
            lines = path.read_bytes().decode(enc, "replace").split("\n")[1:]
            records = [ln for ln in lines if ln.replace(",", "").strip(" \t\r\u3000\ufeff")]
            assert rep["read"] == len(records)


@SETTINGS
@given(rows=st.lists(row, max_size=30))
def test_jsonl_and_parquet_and_xlsx_never_lose_a_row(rows: list[list[str]]) -> None:
    import openpyxl

    with tempfile.TemporaryDirectory() as d:
        base = Path(d)
        # JSON Lines: objects, plus a line that is not JSON and one that is a list
        jl = base / "c.jsonl"
        with jl.open("w", encoding="utf-8") as fh:
            for r in rows:
                fh.write(json.dumps(dict(zip(HEADER, r, strict=False)), ensure_ascii=False)
                         + "\n")
            fh.write("{not json\n[1, 2]\n")
        ws = Workspace.init(base / "ws1")
        _check(ws, jl)
        # Parquet with typed columns of mixed kinds
        width = max([len(r) for r in rows] + [1])
        cols = {HEADER[i] if i < len(HEADER) else f"extra{i}":
                [r[i] if i < len(r) else None for r in rows] for i in range(width)}
        pq.write_table(pa.table(cols) if rows else pa.table({"customer_id": pa.array(
            [], pa.string())}), base / "c.parquet")
        ws = Workspace.init(base / "ws2")
        _check(ws, base / "c.parquet")
        # Excel, with ragged rows
        wb = openpyxl.Workbook()
        sh = wb.active
        sh.append(HEADER)
        for r in rows:
            # Excel cannot hold control characters, and "=..." would be a formula
            sh.append([ILLEGAL_XLSX.sub("", v).lstrip("=") for v in r])
        wb.save(base / "c.xlsx")
        ws = Workspace.init(base / "ws3")
        _check(ws, base / "c.xlsx")


def test_empty_files(tmp_path: Path) -> None:
    for name, data in (("e.csv", b""), ("h.csv", b"customer_id,name\n"), ("e.jsonl", b""),
                       ("b.csv", b"\n\n\n")):
        ws = Workspace.init(tmp_path / f"ws-{name}")
        p = tmp_path / name
        p.write_bytes(data)
        _check(ws, p)
