"""Turning one raw batch into typed, validated rows and reject records (vectorised)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from kehu.i18n import _
from kehu.ingest.coerce import Coerced, clean_text, coerce, to_choice
from kehu.ingest.journal import REJECTS_SCHEMA
from kehu.ingest.mapping import Mapping
from kehu.ingest.readers import REPLACEMENT, RawBatch, RowProblem
from kehu.ingest.rules import rules_for
from kehu.model import Entity
from kehu.model.types import ATTR_PREFIX, LINEAGE_COLUMNS, ColumnType

#: cap of reject records kept per (file, reason) beyond which only counts are kept in memory
#: before they are flushed; nothing is dropped, records are written in chunks
_FLUSH_REJECTS = 50_000


@dataclass
class Check:
    """One failing check: the mask of rows and how to describe each."""

    code: str
    column: str
    mask: pa.Array
    reason: str
    raw: pa.Array | None = None


@dataclass
class Prepared:
    """A validated batch: typed good rows (with lineage) and the reject records."""

    good: pa.Table
    rejects: list[dict[str, Any]]
    read: int
    rejected: int
    blank: int
    reasons: dict[str, int] = field(default_factory=dict)


class BatchValidator:
    """Validates batches of one source file against an entity and a mapping."""

    def __init__(self, ent: Entity, mapping: Mapping, attr_types: dict[str, ColumnType], *,
                 import_id: str, file_label: str, encoding: str | None, day_first: bool,
                 future_tolerance_days: int, now: datetime | None = None) -> None:
        self.ent = ent
        self.mapping = mapping
        self.attr_types = attr_types  # header -> type
        self.import_id = import_id
        self.file_label = file_label
        self.encoding = encoding
        self.day_first = day_first
        self.future_limit = (now or datetime.now()) + timedelta(days=future_tolerance_days)
        self.schema = output_schema(ent, {mapping.attributes[h].name: t
                                          for h, t in attr_types.items()})

    # -- main -------------------------------------------------------------------------------
    def prepare(self, batch: RawBatch) -> Prepared:
        rejects = [self._problem_record(p) for p in batch.problems]
        reasons: dict[str, int] = {}
        for p in batch.problems:
            reasons[p.reason_code] = reasons.get(p.reason_code, 0) + 1
        n = batch.num_rows
        if n == 0:
            return Prepared(self.schema.empty_table(), rejects, len(rejects), len(rejects), 0,
                            reasons)
        raw_cols = {h: clean_text(a) for h, a in batch.columns.items()}
        # rows with nothing but whitespace in them are blank lines, not records (a row of
        # "N/A"s is a record with every value missing, and is rejected as such)
        nonblank = None
        for a in batch.columns.values():
            v = pc.greater(pc.utf8_length(pc.utf8_trim(_as_text(a), _SPACES)), 0).fill_null(
                False)
            nonblank = v if nonblank is None else pc.or_(nonblank, v)
        assert nonblank is not None
        blank = n - pc.sum(nonblank.cast(pa.int64())).as_py() if n else 0
        if blank:
            raw_cols = {h: a.filter(nonblank) for h, a in raw_cols.items()}
            orig = {h: a.filter(nonblank) for h, a in batch.columns.items()}
            rows = batch.rows.filter(nonblank)
        else:
            orig = batch.columns
            rows = batch.rows
        n = len(rows)
        typed, checks = self._coerce_all(raw_cols, orig, rows, n)
        checks.extend(self._value_checks(typed, raw_cols, checks))
        if batch.replaced_bytes:
            checks.extend(self._replacement_checks(raw_cols))
        bad = pa.repeat(pa.scalar(False), n)
        for ch in checks:
            bad = pc.or_(bad, ch.mask.fill_null(False))
        n_bad = pc.sum(bad.cast(pa.int64())).as_py() or 0
        if n_bad:
            rejects.extend(self._reject_records(checks, orig, rows))
            for ch in checks:
                cnt = pc.sum(ch.mask.fill_null(False).cast(pa.int64())).as_py() or 0
                if cnt:
                    reasons[ch.code] = reasons.get(ch.code, 0) + cnt
        keep = pc.invert(bad)
        cols = {name: arr.filter(keep) if n_bad else arr for name, arr in typed.items()}
        good_rows = rows.filter(keep) if n_bad else rows
        m = len(good_rows)
        cols["_import_id"] = pa.repeat(pa.scalar(self.import_id), m).cast(pa.string())
        cols["_source_file"] = pa.repeat(pa.scalar(self.file_label), m).cast(pa.string())
        cols["_source_row"] = pc.cast(good_rows, pa.int64())
        good = pa.Table.from_arrays([cols[f.name] for f in self.schema], schema=self.schema)
        return Prepared(good, rejects, n + len(batch.problems),
                        n_bad + len(batch.problems), blank, reasons)

    # -- steps ------------------------------------------------------------------------------
    def _coerce_all(self, raw: dict[str, pa.Array], orig: dict[str, pa.Array], rows: pa.Array,
                    n: int) -> tuple[dict[str, pa.Array], list[Check]]:
        typed: dict[str, pa.Array] = {}
        checks: list[Check] = []
        m = self.mapping
        for col in self.ent.columns:
            src = m.columns.get(col.name)
            if src is not None:
                source = orig[src]
                if col.choices:
                    c: Coerced = to_choice(source, col.choices)
                    reason = _("'{value}' is not one of the accepted values of {col} "
                               "({choices})").format(
                        value="{value}", col=col.name,
                        choices=", ".join(sorted(set(col.choices.values()))))
                    code = "bad_choice"
                else:
                    c = coerce(source, col.type, day_first=self.day_first,
                               fmt=m.formats.get(col.name))
                    code, reason = _type_reason(col.type)
                    reason = reason.format(value="{value}", col=col.name)
                typed[col.name] = c.values
                if pc.any(c.bad).as_py():
                    checks.append(Check(code, col.name, c.bad, reason, raw[src]))
            elif col.name in m.defaults:
                value = m.defaults[col.name]
                c = coerce(pa.array([str(value)] * n, pa.string()), col.type)
                typed[col.name] = c.values
            elif m.generate_key and col.name in self.ent.key:
                typed[col.name] = pc.binary_join_element_wise(
                    pa.repeat(pa.scalar(self.file_label), n).cast(pa.string()),
                    pc.cast(rows, pa.string()), ":")
            else:
                typed[col.name] = pa.nulls(n, col.arrow_type)
        for header, typ in self.attr_types.items():
            spec = m.attributes[header]
            c = coerce(orig[header], typ, day_first=self.day_first)
            name = ATTR_PREFIX + spec.name
            typed[name] = c.values
            if pc.any(c.bad).as_py():
                code, reason = _type_reason(typ)
                checks.append(Check(code, name, c.bad, reason.format(value="{value}", col=name),
                                    raw[header]))
        return typed, checks

    def _value_checks(self, typed: dict[str, pa.Array], raw: dict[str, pa.Array],
                      type_checks: list[Check]) -> list[Check]:
        checks: list[Check] = []
        already_bad = {c.column: c.mask for c in type_checks}
        for col in self.ent.columns:
            arr = typed[col.name]
            if col.required:
                missing = pc.is_null(arr)
                if col.name in already_bad:  # reported as a bad value already
                    missing = pc.and_(missing, pc.invert(already_bad[col.name]))
                checks.append(Check("missing", col.name, missing,
                                    _("required value of {col} is missing").format(col=col.name)))
            if col.min_value is not None and col.type in (ColumnType.INT, ColumnType.FLOAT):
                checks.append(Check("below_min", col.name, pc.less(arr, col.min_value),
                                    _("{col} = {value} is below the minimum {min}").format(
                                        col=col.name, value="{value}", min=col.min_value)))
            if col.max_value is not None and col.type in (ColumnType.INT, ColumnType.FLOAT):
                checks.append(Check("above_max", col.name, pc.greater(arr, col.max_value),
                                    _("{col} = {value} is above the maximum {max}").format(
                                        col=col.name, value="{value}", max=col.max_value)))
            if col.not_future and col.type in (ColumnType.DATE, ColumnType.TIMESTAMP):
                limit = pa.scalar(self.future_limit, pa.timestamp("us"))
                ts = pc.cast(arr, pa.timestamp("us"))
                checks.append(Check("future_date", col.name, pc.greater(ts, limit),
                                    _("{col} = {value} is in the future").format(
                                        col=col.name, value="{value}")))
        for rule in rules_for(self.ent.name):
            checks.append(Check(rule.code, rule.column, rule.check(typed), rule.message()))
        for c in checks:
            if c.raw is None and c.code != "missing":
                src = self.mapping.columns.get(c.column)
                c.raw = raw[src] if src is not None else pc.cast(typed[c.column], pa.string())
        return [c for c in checks if pc.any(c.mask.fill_null(False)).as_py()]

    def _replacement_checks(self, raw: dict[str, pa.Array]) -> list[Check]:
        out = []
        for h, arr in raw.items():
            if not pa.types.is_string(arr.type):
                continue
            mask = pc.match_substring(arr, REPLACEMENT)
            if pc.any(mask.fill_null(False)).as_py():
                out.append(Check("bad_bytes", h, mask, _(
                    "contains bytes that are not valid {enc}; re-export the file as UTF-8 or "
                    "pass --encoding").format(enc=self.encoding or "text"), arr))
        return out

    # -- reject records ---------------------------------------------------------------------
    def _reject_records(self, checks: list[Check], orig: dict[str, pa.Array],
                        rows: pa.Array) -> list[dict[str, Any]]:
        headers = list(orig)
        out: list[dict[str, Any]] = []
        for ch in checks:
            mask = ch.mask.fill_null(False)
            idx = pc.indices_nonzero(mask)
            if len(idx) == 0:
                continue
            row_nums = pc.take(rows, idx).to_pylist()
            raw_vals = (pc.take(ch.raw, idx).to_pylist() if ch.raw is not None
                        else [None] * len(idx))
            src_cols = {h: pc.take(orig[h], idx).to_pylist() for h in headers}
            for i, (r, v) in enumerate(zip(row_nums, raw_vals, strict=True)):
                raw_row = {h: _jsonable(src_cols[h][i]) for h in headers}
                out.append({
                    "import_id": self.import_id, "entity": self.ent.name,
                    "file": self.file_label, "row": int(r), "column": ch.column,
                    "value": None if v is None else str(v), "reason_code": ch.code,
                    "reason": ch.reason.replace("{value}", "" if v is None else str(v)),
                    "raw": json.dumps(raw_row, ensure_ascii=False),
                })
        return out

    def _problem_record(self, p: RowProblem) -> dict[str, Any]:
        return {"import_id": self.import_id, "entity": self.ent.name, "file": self.file_label,
                "row": p.row, "column": None, "value": None, "reason_code": p.reason_code,
                "reason": p.reason, "raw": json.dumps(p.raw, ensure_ascii=False)}


_SPACES = " \t\r\n\u3000\ufeff"


def _as_text(a: pa.Array) -> pa.Array:
    return a if pa.types.is_string(a.type) else pc.cast(a, pa.string())


def _jsonable(v: Any) -> Any:
    if v is None or isinstance(v, str | int | float | bool):
        return v
    return str(v)


def _type_reason(typ: ColumnType) -> tuple[str, str]:
    return {
        ColumnType.INT: ("bad_number", _("{col}: '{value}' is not a whole number")),
        ColumnType.FLOAT: ("bad_number", _("{col}: '{value}' is not a number")),
        ColumnType.DATE: ("bad_date", _("{col}: '{value}' is not a date (e.g. 2024-03-05, "
                                        "2024/3/5, 2024年3月5日)")),
        ColumnType.TIMESTAMP: ("bad_date", _("{col}: '{value}' is not a date/time (e.g. "
                                             "2024-03-05 14:30:00)")),
        ColumnType.BOOL: ("bad_bool", _("{col}: '{value}' is not yes/no (是/否)")),
        ColumnType.STRING: ("bad_text", _("{col}: '{value}' is not text")),
    }[typ]


def output_schema(ent: Entity, attrs: dict[str, ColumnType]) -> pa.Schema:
    """The warehouse schema for an import: canonical columns, attributes, lineage."""
    extra = {ATTR_PREFIX + name: typ.arrow for name, typ in sorted(attrs.items())}
    return ent.arrow_schema(extra)


def rejects_table(records: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(records, schema=REJECTS_SCHEMA)


def business_columns(schema: pa.Schema, key: tuple[str, ...]) -> list[str]:
    return [n for n in schema.names if n not in key and n not in LINEAGE_COLUMNS]
