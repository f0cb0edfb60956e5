"""Streaming writers for the demo's source-system exports: each chunk of customers appends to
every file, so memory does not grow with the number of customers."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq


class CsvAppender:
    """A CSV file written chunk by chunk (UTF-8, UTF-8 with BOM, or GBK)."""

    def __init__(self, path: Path, header: list[str], encoding: str = "utf-8",
                 bom: bool = False) -> None:
        self.path = path
        self.header = header
        self.encoding = encoding
        self.rows = 0
        with path.open("wb") as fh:
            if bom:
                fh.write(b"\xef\xbb\xbf")
            fh.write(self._encode(",".join(header) + "\n"))

    def _encode(self, text: str) -> bytes:
        return text.encode(self.encoding) if self.encoding != "utf-8" else text.encode()

    def append(self, columns: dict[str, Any]) -> int:
        """Append rows; returns the file row number (header = 1) of the first appended row."""
        first = self.rows + 2
        table = pa.table({h: _as_text(columns[h]) for h in self.header})
        buf = io.BytesIO()
        pcsv.write_csv(table, buf, write_options=pcsv.WriteOptions(
            include_header=False, quoting_style="needed"))
        data = buf.getvalue()
        if self.encoding != "utf-8":
            data = data.decode("utf-8").encode(self.encoding)
        with self.path.open("ab") as fh:
            fh.write(data)
        self.rows += table.num_rows
        return first


class JsonLinesAppender:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows = 0
        path.write_bytes(b"")

    def append(self, columns: dict[str, Any]) -> int:
        first = self.rows + 1
        keys = list(columns)
        values = [_as_list(columns[k]) for k in keys]
        n = len(values[0]) if values else 0
        with self.path.open("a", encoding="utf-8") as fh:
            for i in range(n):
                fh.write(json.dumps({k: values[j][i] for j, k in enumerate(keys)
                                     if values[j][i] is not None}, ensure_ascii=False) + "\n")
        self.rows += n
        return first


class ParquetAppender:
    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self.path = path
        self.schema = schema
        self.rows = 0
        self._writer = pq.ParquetWriter(path, schema)

    def append(self, columns: dict[str, Any]) -> int:
        first = self.rows + 1
        table = pa.table({f.name: pa.array(columns[f.name], f.type) for f in self.schema},
                         schema=self.schema)
        self._writer.write_table(table)
        self.rows += table.num_rows
        return first

    def close(self) -> None:
        self._writer.close()


class XlsxOrCsv:
    """Rows collected for an Excel workbook (what people e-mail each other); beyond
    ``max_rows`` — Excel's own limit is about a million — the export becomes a CSV file."""

    def __init__(self, path: Path, header: list[str], max_rows: int = 200_000) -> None:
        self.path = path
        self.header = header
        self.max_rows = max_rows
        self.rows = 0
        self._buf: list[list[Any]] = []
        self._csv: CsvAppender | None = None

    def append(self, columns: dict[str, Any]) -> int:
        first = self.rows + 2
        cols = [_as_list(columns[h]) for h in self.header]
        n = len(cols[0]) if cols else 0
        if self._csv is None and self.rows + n > self.max_rows:
            self._csv = CsvAppender(self.path.with_suffix(".csv"), self.header)
            if self._buf:
                self._csv.append({h: [r[j] for r in self._buf] for j, h in enumerate(self.header)})
            self._buf = []
        if self._csv is not None:
            self._csv.append(columns)
        else:
            self._buf.extend([list(r) for r in zip(*cols, strict=True)])
        self.rows += n
        return first

    def close(self) -> Path:
        if self._csv is not None:
            return self._csv.path
        import datetime as dt

        import openpyxl

        wb = openpyxl.Workbook(write_only=True)
        # fixed document times, so the same seed gives the same bytes
        wb.properties.created = wb.properties.modified = dt.datetime(2026, 1, 1)
        ws = wb.create_sheet("合约")
        ws.append(self.header)
        for r in self._buf:
            ws.append(r)
        wb.save(self.path)
        _make_reproducible(self.path)
        return self.path


def _make_reproducible(path: Path) -> None:
    """Rewrite an .xlsx with fixed zip-entry and document times, so the same seed gives the
    same bytes (openpyxl stamps the save time into both)."""
    import re
    import zipfile

    with zipfile.ZipFile(path) as z:
        entries = [(i.filename, z.read(i.filename)) for i in z.infolist()]
    tmp = path.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in entries:
            if name == "docProps/core.xml":
                data = re.sub(rb"(<dcterms:modified[^>]*>)[^<]*", rb"\g<1>2026-01-01T00:00:00Z",
                              data)
            info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, data)
    tmp.replace(path)


def _as_list(v: Any) -> list[Any]:
    if isinstance(v, np.ndarray):
        if v.dtype.kind == "M":
            return [None if np.isnat(x) else str(x).replace("T", " ") for x in v]
        return [x.item() if hasattr(x, "item") else x for x in v]
    if isinstance(v, pa.Array):
        return v.to_pylist()
    return list(v)


def _as_text(v: Any) -> pa.Array:
    if isinstance(v, pa.Array):
        return v.cast(pa.string())
    arr = np.asarray(v)
    if arr.dtype.kind == "M":
        out = np.datetime_as_string(arr, unit="s" if arr.dtype == "datetime64[s]" else "D")
        return pa.array([None if s == "NaT" else s.replace("T", " ") for s in out.tolist()],
                        pa.string())
    if arr.dtype.kind == "f":
        return pa.array([None if np.isnan(x) else f"{x:.2f}" for x in arr.tolist()],
                        pa.string())
    return pa.array([None if x is None else str(x) for x in arr.tolist()], pa.string())
