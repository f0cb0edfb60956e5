"""Vectorised type coercion of raw source columns (pyarrow compute, no row loops).

Each function takes an Arrow array of raw values and returns a :class:`Coerced`: the typed
values and a mask of values that were present but could not be converted (``bad``). Nothing
is silently fixed: a bad value makes its row a reject with the reason.

Rules (documented in docs/importing.md):

- text is trimmed (also the ideographic space U+3000); empty text and the null tokens
  ``NULL``, ``NA``, ``N/A``, ``None``, ``-``, ``\\N``, ``#N/A``, ``nan`` are missing values;
- numbers may carry currency signs (¥ ￥ $ € £, 元, RMB, CNY), thousands separators, spaces,
  and accounting parentheses for negatives: ``"¥1,234.50"`` → 1234.5, ``"(12)"`` → -12;
- dates: ``2024-03-05``, ``2024/3/5``, ``2024.3.5``, ``20240305``, ``2024年3月5日``,
  ``5/3/2024`` (month first unless ``day_first``), ``05-Mar-2024``, ``Mar 5, 2024`` and the
  same with a time of day for timestamps;
- booleans: ``true/false``, ``yes/no``, ``y/n``, ``1/0``, ``是/否``, ``有/无``, ``√/×``.

>>> c = to_float(pa.array(["¥1,234.50", "(12)", "", "abc", None]))
>>> c.values.to_pylist(), c.bad.to_pylist()
([1234.5, -12.0, None, None, None], [False, False, False, True, False])
>>> to_date(pa.array(["2024年3月5日", "2024/3/5", "2024-13-45"])).values.to_pylist()
[datetime.date(2024, 3, 5), datetime.date(2024, 3, 5), None]
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from kehu.model.types import ColumnType

NULL_TOKENS = ["", "null", "NULL", "Null", "NA", "N/A", "n/a", "na", "None", "none", "-", "--",
               "—", "\\N", "#N/A", "nan", "NaN", "NAN"]
_NULLS = pa.array(NULL_TOKENS, pa.string())

_NUMBER = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"
_CURRENCY = r"[¥￥$€£\s,，_']|元|RMB|CNY|USD|rmb|cny|usd"

_DATE_FORMATS = ["%Y-%m-%d", "%Y/%m/%d", "%Y.%m.%d", "%Y%m%d", "%Y年%m月%d日", "%d-%b-%Y",
                 "%d %b %Y", "%b %d, %Y", "%Y-%m"]
_TIME_SUFFIXES = [" %H:%M:%S", " %H:%M", "T%H:%M:%S", "T%H:%M", ""]

_TRUE = ["true", "t", "yes", "y", "1", "是", "有", "√", "对", "真", "1.0"]
_FALSE = ["false", "f", "no", "n", "0", "否", "无", "×", "错", "假", "0.0"]


@dataclass
class Coerced:
    """Typed values and the mask of present-but-unconvertible raw values."""

    values: pa.Array
    bad: pa.Array


def clean_text(arr: pa.Array) -> pa.Array:
    """Trim text and turn empty strings and null tokens into nulls.

    >>> clean_text(pa.array([" a ", "", "N/A", "\\u3000b"])).to_pylist()
    ['a', None, None, 'b']
    """
    if not pa.types.is_string(arr.type) and not pa.types.is_large_string(arr.type):
        arr = pc.cast(arr, pa.string())
    arr = pc.utf8_trim(arr, characters=" \t\r\n\u3000\ufeff")
    is_null = pc.is_in(arr, value_set=_NULLS)
    return pc.if_else(is_null, pa.scalar(None, pa.string()), arr)


def _none_bad(n: int) -> pa.Array:
    return pa.repeat(pa.scalar(False), n) if n else pa.array([], pa.bool_())


def _bad(raw: pa.Array, values: pa.Array) -> pa.Array:
    return pc.and_(pc.is_valid(raw), pc.is_null(values))


def to_string(arr: pa.Array) -> Coerced:
    values = clean_text(arr)
    return Coerced(values, _none_bad(len(values)))


def _number_text(arr: pa.Array) -> pa.Array:
    s = pc.replace_substring_regex(arr, _CURRENCY, "")
    neg = pc.match_substring_regex(s, r"^\(.*\)$")
    s = pc.if_else(neg, pc.binary_join_element_wise("-", pc.utf8_trim(s, "()"), ""), s)
    return s


def to_float(arr: pa.Array) -> Coerced:
    if pa.types.is_floating(arr.type) or pa.types.is_integer(arr.type):
        values = pc.cast(arr, pa.float64())
        return Coerced(values, _none_bad(len(arr)))
    raw = clean_text(arr)
    try:
        values = pc.cast(raw, pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        text = _number_text(raw)
        ok = pc.match_substring_regex(text, _NUMBER)
        text = pc.if_else(ok, text, pa.scalar(None, pa.string()))
        values = pc.cast(text, pa.float64())
    finite = pc.is_finite(values)
    values = pc.if_else(finite, values, pa.scalar(None, pa.float64()))
    return Coerced(values, _bad(raw, values))


def to_int(arr: pa.Array) -> Coerced:
    if pa.types.is_integer(arr.type):
        return Coerced(pc.cast(arr, pa.int64()), _none_bad(len(arr)))
    f = to_float(arr)
    whole = pc.equal(pc.floor(f.values), f.values)
    in_range = pc.less_equal(pc.abs(f.values), 2.0**53)
    ok = pc.and_(whole, in_range)
    values = pc.cast(pc.if_else(ok, f.values, pa.scalar(None, pa.float64())), pa.int64())
    bad = pc.or_(f.bad, pc.and_(pc.is_valid(f.values), pc.invert(ok.fill_null(False))))
    return Coerced(values, bad)


def _parse_times(raw: pa.Array, formats: list[str]) -> pa.Array:
    """Try ``formats`` in order; each later format only sees what is still unparsed."""
    out = pa.nulls(len(raw), pa.timestamp("us"))
    todo = pc.is_valid(raw)
    for fmt in formats:
        if not pc.any(todo).as_py():
            break
        cand = pc.if_else(todo, raw, pa.scalar(None, pa.string()))
        parsed = pc.cast(pc.strptime(cand, format=fmt, unit="us", error_is_null=True),
                         pa.timestamp("us"))
        out = pc.coalesce(out, parsed)
        todo = pc.and_(todo, pc.is_null(parsed))
    return out


def _formats(day_first: bool, with_time: bool, explicit: str | None) -> list[str]:
    if explicit:
        return [explicit]
    dates = list(_DATE_FORMATS)
    dates.insert(4, "%d/%m/%Y" if day_first else "%m/%d/%Y")
    if not with_time:
        return dates + [d + t for d in dates[:3] for t in _TIME_SUFFIXES if t]
    return [d + t for d in dates for t in _TIME_SUFFIXES]


def to_timestamp(arr: pa.Array, day_first: bool = False, fmt: str | None = None) -> Coerced:
    if pa.types.is_timestamp(arr.type) or pa.types.is_date(arr.type):
        values = pc.cast(pc.cast(arr, pa.timestamp("us", tz=getattr(arr.type, "tz", None))),
                         pa.timestamp("us")) if pa.types.is_timestamp(arr.type) else \
            pc.cast(arr, pa.timestamp("us"))
        return Coerced(values, _none_bad(len(arr)))
    raw = clean_text(arr)
    values = None
    if fmt is None:
        try:  # fast path: ISO 8601 throughout
            values = pc.cast(raw, pa.timestamp("us"))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            values = None
    if values is None:
        values = _parse_times(raw, _formats(day_first, True, fmt))
    return Coerced(values, _bad(raw, values))


def to_date(arr: pa.Array, day_first: bool = False, fmt: str | None = None) -> Coerced:
    if pa.types.is_date(arr.type):
        return Coerced(pc.cast(arr, pa.date32()), _none_bad(len(arr)))
    if pa.types.is_timestamp(arr.type):
        return Coerced(pc.cast(pc.cast(arr, pa.timestamp("us")), pa.date32()),
                       _none_bad(len(arr)))
    raw = clean_text(arr)
    values = None
    if fmt is None:
        try:
            values = pc.cast(raw, pa.date32())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            values = None
    if values is None:
        values = pc.cast(_parse_times(raw, _formats(day_first, False, fmt)), pa.date32())
    return Coerced(values, _bad(raw, values))


def to_bool(arr: pa.Array) -> Coerced:
    if pa.types.is_boolean(arr.type):
        return Coerced(arr, _none_bad(len(arr)))
    raw = clean_text(arr)
    low = pc.utf8_lower(raw)
    t = pc.is_in(low, value_set=pa.array(_TRUE))
    f = pc.is_in(low, value_set=pa.array(_FALSE))
    values = pc.if_else(t, True, pc.if_else(f, False, pa.scalar(None, pa.bool_())))
    return Coerced(values, _bad(raw, values))


def to_choice(arr: pa.Array, choices: dict[str, str]) -> Coerced:
    """Map accepted spellings (any case, zh or en) to canonical codes.

    >>> to_choice(pa.array(["男", "F", "x"]), {"男": "M", "m": "M", "f": "F"}).values.to_pylist()
    ['M', 'F', None]
    """
    raw = clean_text(arr)
    keys = list(choices)
    low = pc.utf8_lower(raw)
    idx = pc.index_in(low, value_set=pa.array([k.lower() for k in keys]))
    values = pc.take(pa.array([choices[k] for k in keys], pa.string()), idx)
    return Coerced(values, _bad(raw, values))


def coerce(arr: pa.Array, typ: ColumnType, *, day_first: bool = False,
           fmt: str | None = None) -> Coerced:
    """Coerce raw values to the Arrow type of ``typ``."""
    if typ is ColumnType.STRING:
        return to_string(arr)
    if typ is ColumnType.FLOAT:
        return to_float(arr)
    if typ is ColumnType.INT:
        return to_int(arr)
    if typ is ColumnType.DATE:
        return to_date(arr, day_first, fmt)
    if typ is ColumnType.TIMESTAMP:
        return to_timestamp(arr, day_first, fmt)
    if typ is ColumnType.BOOL:
        return to_bool(arr)
    raise AssertionError(typ)


def infer_type(arr: pa.Array) -> ColumnType:
    """Infer the type of a custom attribute from its values (all present values must fit).

    >>> infer_type(pa.array(["1", "2", None])), infer_type(pa.array(["1.5", "2"]))
    (<ColumnType.INT: 'int'>, <ColumnType.FLOAT: 'float'>)
    >>> infer_type(pa.array(["2024-01-02", ""])), infer_type(pa.array(["是", "否"]))
    (<ColumnType.DATE: 'date'>, <ColumnType.BOOL: 'bool'>)
    >>> infer_type(pa.array(["金卡", "银卡"]))
    <ColumnType.STRING: 'string'>
    """
    if pa.types.is_integer(arr.type):
        return ColumnType.INT
    if pa.types.is_floating(arr.type):
        return ColumnType.FLOAT
    if pa.types.is_boolean(arr.type):
        return ColumnType.BOOL
    if pa.types.is_date(arr.type):
        return ColumnType.DATE
    if pa.types.is_timestamp(arr.type):
        return ColumnType.TIMESTAMP
    raw = clean_text(arr)
    if raw.null_count == len(raw):
        return ColumnType.STRING
    for typ in (ColumnType.BOOL, ColumnType.INT, ColumnType.FLOAT, ColumnType.DATE,
                ColumnType.TIMESTAMP):
        if typ is ColumnType.BOOL:
            low = pc.utf8_lower(raw.drop_null())
            # 0/1 columns are numbers, not flags, unless words say otherwise
            if pc.all(pc.is_in(low, value_set=pa.array(["0", "1", "0.0", "1.0"]))).as_py():
                continue
        if not pc.any(coerce(raw, typ).bad).as_py():
            return typ
    return ColumnType.STRING
