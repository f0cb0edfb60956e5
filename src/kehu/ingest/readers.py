"""Source readers: stream a file as batches of raw columns with their source row numbers.

Readers are plugins: :func:`register_reader` adds a format the way a third party would.
Built in: delimited text (``.csv``, ``.tsv``, ``.txt`` — UTF-8, UTF-8 with BOM, GBK/GB18030
detected, delimiter sniffed, whitespace-separated columns supported), Excel ``.xlsx``,
Parquet and JSON Lines.

Row numbers are 1-based and count the header as row 1 in text and Excel files (what a person
sees in an editor or spreadsheet); in Parquet they are the record's position starting at 1 and
in JSON Lines the line number.
"""

from __future__ import annotations

import codecs
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from kehu.errors import KehuInputError
from kehu.i18n import _
from kehu.ingest.encoding import SAMPLE_BYTES, detect_encoding, sniff_delimiter

REPLACEMENT = "\ufffd"


@dataclass
class RowProblem:
    """A source row that could not even be split into columns (ragged, bad JSON, bad bytes)."""

    row: int | None
    raw: str
    reason_code: str
    reason: str


@dataclass
class RawBatch:
    """Columns as read (header -> Arrow array), source row numbers, and unparseable rows."""

    columns: dict[str, pa.Array]
    rows: pa.Array
    problems: list[RowProblem] = field(default_factory=list)
    #: whether undecodable bytes were replaced in this batch (rows with U+FFFD get rejected)
    replaced_bytes: bool = False

    @property
    def num_rows(self) -> int:
        return len(self.rows)


@dataclass
class ReadOptions:
    """How to read a source file; ``None`` means detect."""

    encoding: str | None = None
    delimiter: str | None = None
    header: bool = True
    column_names: list[str] | None = None
    sheet: str | None = None
    batch_rows: int = 262_144


class SourceReader(Protocol):
    path: Path
    format: str
    encoding: str | None
    headers: list[str]

    def batches(self) -> Iterator[RawBatch]: ...


ReaderFactory = Callable[[Path, ReadOptions], SourceReader]
_READERS: dict[str, ReaderFactory] = {}
_EXTENSIONS: dict[str, str] = {}


def register_reader(fmt: str, extensions: tuple[str, ...], factory: ReaderFactory) -> None:
    """Register a reader for a file format (extensions include the dot: ``.csv``)."""
    _READERS[fmt] = factory
    for ext in extensions:
        _EXTENSIONS[ext.lower()] = fmt


def formats() -> dict[str, list[str]]:
    """The registered formats and their extensions."""
    out: dict[str, list[str]] = {f: [] for f in _READERS}
    for ext, f in _EXTENSIONS.items():
        out[f].append(ext)
    return out


def open_source(path: str | Path, options: ReadOptions | None = None,
                fmt: str | None = None) -> SourceReader:
    """Open ``path`` with the reader registered for its format (or ``fmt``)."""
    p = Path(path)
    if not p.is_file():
        raise KehuInputError(_("File not found: {path}. Check the path.").format(path=p))
    if fmt is not None and fmt not in _READERS:
        raise KehuInputError(_("Unknown format '{fmt}'. Expected one of: {formats}.").format(
            fmt=fmt, formats=", ".join(sorted(_READERS))))
    name = fmt or _EXTENSIONS.get(p.suffix.lower())
    if name is None:
        raise KehuInputError(
            _("{path}: unknown file type '{ext}'. Expected one of: {exts}. Pass --format to "
              "say how to read it.").format(path=p, ext=p.suffix,
                                            exts=", ".join(sorted(_EXTENSIONS)))
        )
    return _READERS[name](p, options or ReadOptions())


def unique_headers(raw: list[Any]) -> list[str]:
    """Clean header names: strip, name blanks ``column_N``, suffix repeats ``_2``, ``_3``.

    >>> unique_headers([" id", "", "金额", "金额", None])
    ['id', 'column_2', '金额', '金额_2', 'column_5']
    """
    out: list[str] = []
    seen: dict[str, int] = {}
    for i, h in enumerate(raw, start=1):
        name = str(h).strip().lstrip("\ufeff").strip() if h is not None else ""
        if not name:
            name = f"column_{i}"
        if name in seen:
            seen[name] += 1
            name = f"{name}_{seen[name]}"
        else:
            seen[name] = 1
        out.append(name)
    return out


# -- delimited text -------------------------------------------------------------------------
_REPLACE_HANDLER = "kehu-replace"


class _Transcoder(io.RawIOBase):
    """A byte stream that decodes ``encoding`` (undecodable bytes become U+FFFD, counted) and
    yields UTF-8, so pyarrow can parse any encoding without losing a row."""

    def __init__(self, path: Path, encoding: str) -> None:
        self._fh = path.open("rb")
        self._dec = codecs.getincrementaldecoder(encoding)(_REPLACE_HANDLER)
        self._buf = b""
        self._eof = False

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        n = len(b)
        while len(self._buf) < n and not self._eof:
            chunk = self._fh.read(1 << 20)
            if not chunk:
                self._eof = True
                self._buf += self._dec.decode(b"", final=True).encode("utf-8")
                break
            self._buf += self._dec.decode(chunk).encode("utf-8")
        out, self._buf = self._buf[:n], self._buf[n:]
        b[: len(out)] = out
        return len(out)

    def close(self) -> None:
        self._fh.close()
        super().close()


def _replace_errors(exc: UnicodeError) -> tuple[str, int]:
    if isinstance(exc, UnicodeDecodeError):
        return REPLACEMENT, exc.end
    raise exc


codecs.register_error(_REPLACE_HANDLER, _replace_errors)


def _valid_utf8(path: Path) -> bool:
    dec = codecs.getincrementaldecoder("utf-8")("strict")
    try:
        with path.open("rb") as fh:
            while chunk := fh.read(1 << 22):
                dec.decode(chunk)
            dec.decode(b"", final=True)
        return True
    except UnicodeDecodeError:
        return False


class DelimitedReader:
    """CSV / TSV / whitespace-separated text, streamed with pyarrow in batches."""

    format = "csv"

    def __init__(self, path: Path, options: ReadOptions) -> None:
        self.path = path
        self.options = options
        with path.open("rb") as fh:
            sample = fh.read(SAMPLE_BYTES)
        self.encoding: str | None = (options.encoding or detect_encoding(sample)).lower()
        if self.encoding in ("gbk", "gb2312"):
            self.encoding = "gb18030"  # a superset: decodes every GBK file
        try:
            codecs.lookup(self.encoding)
        except LookupError as exc:
            raise KehuInputError(_("Unknown encoding '{enc}' for {path}. Use e.g. utf-8, gbk, "
                                   "gb18030.").format(enc=self.encoding, path=path)) from exc
        text = codecs.getincrementaldecoder(self.encoding)(_REPLACE_HANDLER).decode(sample)
        text = text.lstrip("\ufeff")
        lines = text.splitlines()
        if sample and len(sample) == SAMPLE_BYTES and lines:
            lines = lines[:-1]  # the last line of a sample may be cut
        self.delimiter = options.delimiter or sniff_delimiter("\n".join(lines[:50]))
        if self.delimiter in ("\\t", "tab"):
            self.delimiter = "\t"
        if self.delimiter in ("whitespace", "space"):
            self.delimiter = " "
        self._whitespace = self.delimiter == " "
        first = next((ln for ln in lines if ln.strip()), "")
        if options.header:
            cells = first.split() if self._whitespace else _split_header(first, self.delimiter)
            self.headers = unique_headers(cells)
        elif options.column_names:
            self.headers = unique_headers(list(options.column_names))
        else:
            n = len(first.split() if self._whitespace else _split_header(first, self.delimiter))
            self.headers = [f"column_{i}" for i in range(1, n + 1)]
        self._utf8_direct = self.encoding in ("utf-8", "utf8", "utf-8-sig") and _valid_utf8(path)

    def _stream(self) -> Any:
        if self._utf8_direct:
            return pa.OSFile(str(self.path), "rb")
        return pa.PythonFile(_Transcoder(self.path, self.encoding or "utf-8"), mode="r")

    def batches(self) -> Iterator[RawBatch]:
        invalid: list[int] = []
        problems: list[RowProblem] = []
        blank: list[int] = []
        names = ["line"] if self._whitespace else self.headers
        if not self.headers:  # an empty file: nothing to read
            return

        def on_invalid(row: Any) -> str:
            text = row.text or ""
            if row.number is not None:
                if not text.replace(self.delimiter, "").strip(" \t\r\n\u3000\ufeff"):
                    blank.append(row.number)
                    return "skip"
                invalid.append(row.number)
            problems.append(RowProblem(
                row.number, text, "ragged",
                _("row has {got} fields, the header has {expected}").format(
                    got=row.actual_columns, expected=row.expected_columns)))
            return "skip"

        read_opts = pcsv.ReadOptions(
            use_threads=False, column_names=names, skip_rows=1 if self.options.header else 0,
            block_size=1 << 24, encoding="utf8",
        )
        parse_opts = pcsv.ParseOptions(
            delimiter="\x1f" if self._whitespace else self.delimiter,
            quote_char=False if self._whitespace else '"',
            newlines_in_values=False, ignore_empty_lines=False,
            invalid_row_handler=on_invalid,
        )
        conv = pcsv.ConvertOptions(column_types={n: pa.string() for n in names},
                                   strings_can_be_null=False, quoted_strings_can_be_null=False)
        next_line = 2 if self.options.header else 1
        transcoded = not self._utf8_direct
        with self._stream() as stream:
            try:
                reader = pcsv.open_csv(stream, read_options=read_opts, parse_options=parse_opts,
                                       convert_options=conv)
            except pa.ArrowInvalid as exc:
                if "Empty CSV file" in str(exc):
                    return
                raise KehuInputError(_("{path}: cannot be read as delimited text: {err}").format(
                    path=self.path, err=exc)) from exc
            pending = 0
            for rb in _iter_reader(reader, self.path):
                skip = sorted(invalid[pending:] + blank)
                blank.clear()
                pending = len(invalid)
                rows, next_line = _assign_rows(next_line, rb.num_rows, skip)
                cols = {name: rb.column(i) for i, name in enumerate(names)}
                if self._whitespace:
                    cols, rows, extra = self._split_whitespace(cols["line"], rows)
                    problems.extend(extra)
                yield RawBatch(cols, rows, problems.copy(), replaced_bytes=transcoded)
                problems.clear()
            if problems:
                yield RawBatch({h: pa.array([], pa.string()) for h in self.headers},
                               pa.array([], pa.int64()), problems.copy(), transcoded)

    def _split_whitespace(self, lines: pa.Array, rows: pa.Array
                          ) -> tuple[dict[str, pa.Array], pa.Array, list[RowProblem]]:
        parts = pc.utf8_split_whitespace(pc.utf8_trim_whitespace(lines))
        lengths = pc.list_value_length(parts)
        k = len(self.headers)
        empty = pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(lines)), 0)
        good = pc.and_(pc.equal(lengths, k), pc.invert(empty))
        bad = pc.and_(pc.not_equal(lengths, k), pc.invert(empty))
        problems = [
            RowProblem(int(r), str(t), "ragged",
                       _("row has {got} fields, the header has {expected}").format(
                           got=int(n), expected=k))
            for r, t, n in zip(rows.filter(bad).to_pylist(), lines.filter(bad).to_pylist(),
                               lengths.filter(bad).to_pylist(), strict=True)
        ]
        parts = parts.filter(good)
        rows_ok = rows.filter(good)
        flat = parts.flatten()
        cols = {h: pc.list_element(parts, i) if len(parts) else flat.slice(0, 0)
                for i, h in enumerate(self.headers)}
        return cols, rows_ok, problems


def _iter_reader(reader: Any, path: Path) -> Iterator[pa.RecordBatch]:
    while True:
        try:
            rb = reader.read_next_batch()
        except StopIteration:
            return
        except pa.ArrowInvalid as exc:
            raise KehuInputError(_("{path}: cannot be parsed: {err}").format(path=path, err=exc)
                                 ) from exc
        yield rb


def _assign_rows(start: int, n: int, skip: list[int]) -> tuple[pa.Array, int]:
    """Row numbers for ``n`` parsed rows from line ``start`` on, jumping over ``skip`` lines.

    >>> rows, nxt = _assign_rows(2, 3, [3])
    >>> rows.to_pylist(), nxt
    ([2, 4, 5], 6)
    """
    if n == 0:
        return pa.array([], pa.int64()), start
    skip_arr = np.asarray([s for s in skip if s >= start], dtype=np.int64)
    cand = np.arange(start, start + n + len(skip_arr), dtype=np.int64)
    if len(skip_arr):
        cand = cand[~np.isin(cand, skip_arr)]
    cand = cand[:n]
    return pa.array(cand), int(cand[-1]) + 1


def _split_header(line: str, delimiter: str) -> list[str]:
    import csv

    return next(csv.reader([line], delimiter=delimiter), [])


def _text_batch(headers: list[str], buf: list[list[str | None]], rows: list[int],
                problems: list[RowProblem], replaced_bytes: bool = False) -> RawBatch:
    """A batch from columns of Python strings collected row by row."""
    return RawBatch({h: pa.array(buf[j], pa.string()) for j, h in enumerate(headers)},
                    pa.array(rows, pa.int64()), problems, replaced_bytes=replaced_bytes)


# -- Excel ----------------------------------------------------------------------------------
def _cell_text(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if hasattr(v, "isoformat"):
        text = v.isoformat(sep=" ") if hasattr(v, "hour") else v.isoformat()
        return str(text).removesuffix(" 00:00:00")
    return str(v)


class ExcelReader:
    """``.xlsx`` workbooks (openpyxl, read-only streaming). The first non-empty row of the
    sheet is the header; dates arrive as dates, numbers as text of their value."""

    format = "xlsx"
    encoding: str | None = None

    def __init__(self, path: Path, options: ReadOptions) -> None:
        self.path = path
        self.options = options
        wb = self._open()
        try:
            ws = self._sheet(wb)
            self.headers: list[str] = []
            self._header_row = 0
            for i, row in enumerate(ws.iter_rows(values_only=True), start=1):
                if any(c is not None and str(c).strip() for c in row):
                    if options.header:
                        self.headers = unique_headers(list(row))
                        self._header_row = i
                    else:
                        self.headers = unique_headers(options.column_names or
                                                      [None] * len(row))
                        self._header_row = i - 1
                    break
        finally:
            wb.close()

    def _open(self) -> Any:
        import openpyxl

        try:
            return openpyxl.load_workbook(self.path, read_only=True, data_only=True)
        except Exception as exc:
            raise KehuInputError(_("{path}: not a readable .xlsx workbook ({err}).").format(
                path=self.path, err=exc)) from exc

    def _sheet(self, wb: Any) -> Any:
        name = self.options.sheet
        if name:
            if name not in wb.sheetnames:
                raise KehuInputError(_("{path}: no sheet '{sheet}'. Sheets: {sheets}.").format(
                    path=self.path, sheet=name, sheets=", ".join(wb.sheetnames)))
            return wb[name]
        return wb.worksheets[0]

    def batches(self) -> Iterator[RawBatch]:
        if not self.headers:
            return
        k = len(self.headers)
        buf: list[list[str | None]] = [[] for _ in range(k)]
        rows: list[int] = []
        problems: list[RowProblem] = []
        wb = self._open()
        try:
            sheet = self._sheet(wb)
            for i, row in enumerate(sheet.iter_rows(min_row=self._header_row + 1,
                                                    values_only=True),
                                    start=self._header_row + 1):
                cells = [_cell_text(c) for c in row]
                while cells and cells[-1] is None and len(cells) > k:
                    cells.pop()
                if not any(c is not None and c.strip() for c in cells):
                    continue
                if len(cells) > k:
                    problems.append(RowProblem(
                        i, json.dumps(cells, ensure_ascii=False), "ragged",
                        _("row has {got} fields, the header has {expected}").format(
                            got=len(cells), expected=k)))
                    continue
                cells += [None] * (k - len(cells))
                for j in range(k):
                    buf[j].append(cells[j])
                rows.append(i)
                if len(rows) >= self.options.batch_rows:
                    yield self._batch(buf, rows, problems)
                    buf, rows, problems = [[] for _ in range(k)], [], []
            if rows or problems:
                yield self._batch(buf, rows, problems)
        finally:
            wb.close()

    def _batch(self, buf: list[list[str | None]], rows: list[int],
               problems: list[RowProblem]) -> RawBatch:
        return _text_batch(self.headers, buf, rows, problems)


# -- Parquet --------------------------------------------------------------------------------
class ParquetReader:
    """Parquet files, streamed by row group; typed columns are kept as they are."""

    format = "parquet"
    encoding: str | None = None

    def __init__(self, path: Path, options: ReadOptions) -> None:
        self.path = path
        self.options = options
        try:
            self._pf = pq.ParquetFile(path)
        except Exception as exc:
            raise KehuInputError(_("{path}: not a readable Parquet file ({err}).").format(
                path=path, err=exc)) from exc
        self._names = list(self._pf.schema_arrow.names)
        self.headers = unique_headers(self._names)

    def batches(self) -> Iterator[RawBatch]:
        start = 1
        try:
            for rb in self._pf.iter_batches(batch_size=self.options.batch_rows):
                n = rb.num_rows
                cols = {h: rb.column(i) for i, h in enumerate(self.headers)}
                yield RawBatch(cols, pa.array(np.arange(start, start + n, dtype=np.int64)))
                start += n
        except (OSError, pa.ArrowException) as exc:
            raise KehuInputError(_("{path}: Parquet data is corrupt after row {row} ({err})."
                                   ).format(path=self.path, row=start - 1, err=exc)) from exc


# -- JSON Lines -----------------------------------------------------------------------------
class JsonLinesReader:
    """JSON Lines: one object per line. Keys become columns (all keys in the file); a line
    that is not a JSON object is a rejected row."""

    format = "jsonl"
    encoding: str | None = "utf-8"

    def __init__(self, path: Path, options: ReadOptions) -> None:
        self.path = path
        self.options = options
        with path.open("rb") as fh:
            self.encoding = options.encoding or detect_encoding(fh.read(SAMPLE_BYTES))
        keys: dict[str, None] = {}
        for _n, obj in self._objects():
            if isinstance(obj, dict):
                keys.update(dict.fromkeys(str(k) for k in obj))
        self._keys = list(keys)
        self.headers = unique_headers(self._keys)

    def _objects(self) -> Iterator[tuple[int, Any]]:
        with self.path.open("r", encoding=self.encoding, errors=_REPLACE_HANDLER) as fh:
            for n, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    yield n, json.loads(line)
                except ValueError:
                    yield n, _BadLine(line.rstrip("\r\n"))

    def batches(self) -> Iterator[RawBatch]:
        k = len(self._keys)
        buf: list[list[str | None]] = [[] for _ in range(k)]
        rows: list[int] = []
        problems: list[RowProblem] = []
        for n, obj in self._objects():
            if not isinstance(obj, dict):
                raw = obj.text if isinstance(obj, _BadLine) else json.dumps(obj)
                problems.append(RowProblem(n, raw, "bad_json",
                                           _("line is not a JSON object")))
            else:
                for j, key in enumerate(self._keys):
                    v = obj.get(key)
                    buf[j].append(None if v is None else v if isinstance(v, str)
                                  else json.dumps(v, ensure_ascii=False))
                rows.append(n)
            if len(rows) >= self.options.batch_rows:
                yield self._batch(buf, rows, problems)
                buf, rows, problems = [[] for _ in range(k)], [], []
        if rows or problems:
            yield self._batch(buf, rows, problems)

    def _batch(self, buf: list[list[str | None]], rows: list[int],
               problems: list[RowProblem]) -> RawBatch:
        return _text_batch(self.headers, buf, rows, problems, replaced_bytes=True)


@dataclass
class _BadLine:
    text: str


register_reader("csv", (".csv", ".tsv", ".txt", ".dat"), DelimitedReader)
register_reader("xlsx", (".xlsx", ".xlsm"), ExcelReader)
register_reader("parquet", (".parquet", ".pq"), ParquetReader)
register_reader("jsonl", (".jsonl", ".ndjson", ".json"), JsonLinesReader)
