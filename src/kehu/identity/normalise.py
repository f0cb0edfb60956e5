"""Normalisation of customer records for matching — Arrow in, Arrow out, vectorised.

Each function takes and returns a pyarrow array, so the same code runs on a whole table
in-process and per batch on Spark executors (``mapInArrow``). Chinese text is converted
once per distinct value.

>>> import pyarrow as pa
>>> phones(pa.array(["+86 138 1234 5678", "0086-138-1234-5678", "(138)1234 5678"])).to_pylist()
['13812345678', '13812345678', '13812345678']
>>> id_numbers(pa.array(["11010519491231002x", " 110101 900307 663 "])).to_pylist()
['11010519491231002X', '110101199003076632']
>>> dates(pa.array(["1990/3/7", "1990年3月7日", "19900307", "1985-02-30"])).to_pylist()
['1990-03-07', '1990-03-07', '1990-03-07', None]
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kehu.identity import chinese

#: columns a record may have for matching (all optional but ``record_id``)
INPUT_COLUMNS = ("record_id", "source_system", "updated_at", "name", "given_name",
                 "family_name", "gender", "birth_date", "phone", "email", "id_number",
                 "address", "city", "region", "postcode")
#: the source system of records that name none
DEFAULT_SOURCE = "default"
#: matching columns :func:`normalise_records` adds
MATCH_COLUMNS = ("name_norm", "family_hanzi", "given_hanzi", "family_name", "given_name",
                 "name_pinyin", "name_key", "gender", "birth_date", "birth_year", "phone", "email",
                 "email_user", "id_number", "id_valid", "address", "city", "region", "postcode")
_ID_WEIGHTS = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2], dtype=np.int64)
_ID_CHECK = np.array(list("10X98765432"))
_PUNCT = re.compile(r"[^\w\s'-]+|_")
_SPACES = re.compile(r"\s+")
_GENDER = {"m": "M", "male": "M", "男": "M", "f": "F", "female": "F", "女": "F"}


def _blank_to_null(a: pa.Array) -> pa.Array:
    return pc.if_else(pc.equal(a, ""), pa.scalar(None, pa.string()), a)


def _text(a: pa.Array) -> pa.Array:
    """As strings, full-width folded to half-width (NFKC), trimmed, blanks as null."""
    if not pa.types.is_string(a.type) and not pa.types.is_large_string(a.type):
        a = pc.cast(a, pa.string())
    if pa.types.is_large_string(a.type):
        a = pc.cast(a, pa.string())
    return _blank_to_null(pc.utf8_trim_whitespace(pc.utf8_normalize(a, "NFKC")))


def per_distinct(a: pa.Array, fn: Callable[[str], Any], type_: pa.DataType) -> pa.Array:
    """``fn`` applied once per distinct non-null value of ``a`` (names and addresses repeat:
    a million customers have far fewer distinct names)."""
    if len(a) == 0:
        return pa.array([], type_)
    enc = pc.dictionary_encode(a).combine_chunks() if isinstance(a, pa.ChunkedArray) \
        else pc.dictionary_encode(a)
    mapped = pa.array([fn(v) for v in enc.dictionary.to_pylist()], type_)
    return pc.take(mapped, enc.indices)


def phones(a: pa.Array) -> pa.Array:
    """National digits of a phone number: +86 / 0086 / 86 prefixes, spaces, dashes and
    brackets removed (a landline keeps its leading 0); numbers of other countries keep their
    ``+`` and country code. Fewer than 5 digits: null."""
    s = _text(a)
    d = pc.replace_substring_regex(s, r"\D", "")
    plus = pc.match_substring_regex(s, r"^\+")
    # the international prefix is read from the digits ("0-0852 …" too), so a result never
    # starts with 00 and normalising twice changes nothing
    intl = pc.or_(plus, pc.match_substring_regex(d, r"^00"))
    china = pc.or_(pc.and_(plus, pc.match_substring_regex(d, r"^86")),
                   pc.match_substring_regex(d, r"^0086"))
    d = pc.if_else(china, pc.replace_substring_regex(d, r"^(?:00)?86", ""), d)
    mobile = r"^1[3-9]\d{9}$"
    landline = pc.and_(china, pc.invert(pc.or_(pc.match_substring_regex(d, mobile),
                                                pc.match_substring_regex(d, r"^0"))))
    d = pc.if_else(landline, pc.binary_join_element_wise("0", d, ""), d)
    domestic86 = pc.and_(pc.invert(intl), pc.match_substring_regex(d, r"^861[3-9]\d{9}$"))
    d = pc.if_else(domestic86, pc.utf8_slice_codeunits(d, 2), d)
    foreign = pc.and_(intl, pc.invert(china))
    code = pc.if_else(plus, d, pc.replace_substring_regex(d, r"^00", ""))   # 00 852 … → +852 …
    d = pc.if_else(foreign, pc.binary_join_element_wise("+", code, ""), d)
    short = pc.less(pc.utf8_length(pc.replace_substring_regex(d, r"\D", "")), 5)
    return _blank_to_null(pc.if_else(short, pa.scalar(None, pa.string()), d))


def emails(a: pa.Array) -> pa.Array:
    """Lower case, trimmed; a value without ``@`` is null."""
    s = pc.utf8_lower(_text(a))
    s = pc.replace_substring_regex(s, r"\s+", "")
    ok = pc.match_substring_regex(s, r"^[^@]+@[^@]+\.[^@]+$")
    return pc.if_else(ok, s, pa.scalar(None, pa.string()))


def email_users(e: pa.Array) -> pa.Array:
    """The part of a normalised e-mail address before ``@``."""
    return pc.replace_substring_regex(e, r"@.*$", "")


def id_numbers(a: pa.Array) -> pa.Array:
    """Chinese resident ID numbers: 18 characters with a valid ISO 7064 MOD 11-2 check
    character (``x`` upper-cased); 15-digit numbers of the first generation are converted
    to 18 digits; anything else (a typo, a passport number) stays as written, in upper case
    without spaces, so it can still match itself exactly."""
    s = pc.utf8_upper(_text(a))
    s = _blank_to_null(pc.replace_substring_regex(s, r"[\s-]", ""))
    is15 = pc.fill_null(pc.match_substring_regex(s, r"^\d{15}$"), False)
    if not pc.any(is15).as_py():
        return s
    vals = s.to_numpy(zero_copy_only=False).astype(object)
    mask = is15.to_numpy(zero_copy_only=False)
    bodies = np.array([v[:6] + "19" + v[6:] for v in vals[mask]], dtype=object)
    vals[mask] = bodies + _check_chars(bodies)
    return pa.array(vals, pa.string())


def id_valid(ids: pa.Array) -> pa.Array:
    """Whether each (normalised) ID number is an 18-character resident ID whose check
    character is right (a wrong one means a typo somewhere).

    >>> id_valid(pa.array(["11010519491231002X", "110105194912310021", None])).to_pylist()
    [True, False, False]
    """
    shape = pc.fill_null(pc.match_substring_regex(ids, r"^\d{17}[\dX]$"), False)
    ok = np.zeros(len(ids), bool)
    mask = shape.to_numpy(zero_copy_only=False)
    if mask.any():
        cand = ids.filter(shape)
        body = pc.utf8_slice_codeunits(cand, 0, 17).to_numpy(zero_copy_only=False)
        last = pc.utf8_slice_codeunits(cand, 17, 18).to_numpy(zero_copy_only=False)
        ok[mask] = _check_chars(body.astype(object)) == last.astype(object)
    return pa.array(ok, pa.bool_())


def _check_chars(bodies: np.ndarray) -> np.ndarray:
    if not len(bodies):
        return np.array([], dtype=object)
    digits = np.frombuffer("".join(bodies).encode("ascii"), dtype=np.uint8).reshape(
        len(bodies), 17).astype(np.int64) - 48
    return _ID_CHECK[(digits @ _ID_WEIGHTS) % 11].astype(object)


def id_birth_dates(ids: pa.Array) -> pa.Array:
    """The birth date (``YYYY-MM-DD``) inside a valid 18-digit ID number."""
    ok = id_valid(ids)
    ymd = pc.if_else(ok, pc.utf8_slice_codeunits(ids, 6, 14), pa.scalar(None, pa.string()))
    return dates(ymd)


def dates(a: pa.Array) -> pa.Array:
    """Dates as ``YYYY-MM-DD`` strings from dates, timestamps or text (``1990-3-7``,
    ``1990/03/07``, ``19900307``, ``1990年3月7日``); impossible dates are null."""
    if pa.types.is_date(a.type) or pa.types.is_timestamp(a.type):
        return pc.strftime(pc.cast(a, pa.timestamp("s")), format="%Y-%m-%d")
    s = _text(a)
    parts = pc.extract_regex(s, r"^(?P<y>\d{4})\D?(?P<m>\d{1,2})\D?(?P<d>\d{1,2})\D?$")
    y, m, d = (pc.struct_field(parts, i) for i in range(3))
    iso = pc.binary_join_element_wise(y, pc.utf8_lpad(m, 2, "0"), pc.utf8_lpad(d, 2, "0"),
                                      "-")
    parsed = pc.strptime(iso, format="%Y-%m-%d", unit="s", error_is_null=True)
    back = pc.strftime(parsed, format="%Y-%m-%d")
    return pc.if_else(pc.equal(back, iso), iso, pa.scalar(None, pa.string()))


def _address(v: str) -> str:
    v = chinese.simplified(v).lower()
    v = _PUNCT.sub(" ", v)
    return _SPACES.sub(" ", v).strip()


def addresses(a: pa.Array) -> pa.Array:
    """Full-width folded to half-width, traditional to simplified, lower case, punctuation
    and repeated spaces removed."""
    return _blank_to_null(per_distinct(_text(a), _address, pa.string()))


def places(a: pa.Array) -> pa.Array:
    """City or region names: like :func:`addresses`."""
    return addresses(a)


def postcodes(a: pa.Array) -> pa.Array:
    s = pc.utf8_upper(_text(a))
    return _blank_to_null(pc.replace_substring_regex(s, r"\s+", ""))


def genders(a: pa.Array) -> pa.Array:
    s = pc.utf8_lower(_text(a))
    return per_distinct(s, lambda v: _GENDER.get(v), pa.string())


def _latin_tokens(v: str) -> list[str]:
    v = _PUNCT.sub(" ", chinese.fold_latin(v)).replace("-", " ").replace("'", "")
    return v.split()


def _name_parts(v: str) -> tuple[str | None, ...]:
    """name_norm, family_hanzi, given_hanzi, family_name, given_name for one full name."""
    if chinese.has_cjk(v):
        simp = re.sub(r"[^\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]", "", chinese.simplified(v))
        fam, giv = chinese.split_name(simp)
        fpy, gpy = chinese.surname_pinyin(fam), chinese.pinyin(giv)
        return simp, fam, giv or None, fpy or None, gpy or None
    toks = _latin_tokens(v)
    if not toks:
        return None, None, None, None, None
    norm = " ".join(toks)
    if len(toks) == 1:
        return norm, None, None, None, toks[0]
    rank = chinese.surname_ranks()
    first, last = rank.get(toks[0]), rank.get(toks[-1])
    if first is not None and (last is None or first < last):
        return norm, None, None, toks[0], "".join(toks[1:])      # Wang Xiaoming
    return norm, None, None, toks[-1], "".join(toks[:-1])        # Xiaoming Wang, John Smith


def _name_token(a: pa.Array) -> pa.Array:
    """A given or family name given in its own column: pinyin for Chinese, folded latin."""
    def one(v: str) -> str | None:
        if chinese.has_cjk(v):
            return chinese.pinyin(chinese.simplified(v)) or None
        return "".join(_latin_tokens(v)) or None

    return per_distinct(_text(a), one, pa.string())


def names(full: pa.Array | None, given: pa.Array | None = None,
          family: pa.Array | None = None, n: int | None = None) -> dict[str, pa.Array]:
    """The name columns for matching from a full name and / or given and family names.

    ``name_pinyin`` is the romanised name in Chinese order (family first) — 张伟, its
    traditional form 張偉, "Zhang Wei" and "Wei Zhang" all give ``zhang wei``; ``name_key``
    is its tokens in sorted order (for blocking regardless of order).
    """
    if n is None:
        n = len(next(a for a in (full, given, family) if a is not None))
    null = pa.nulls(n, pa.string())
    cols: dict[str, pa.Array] = {}
    if full is not None:
        struct_t = pa.struct([(k, pa.string()) for k in ("name_norm", "family_hanzi",
                                                         "given_hanzi", "family_name",
                                                         "given_name")])
        parts = per_distinct(_text(full), lambda v: dict(zip(struct_t.names, _name_parts(v),
                                                               strict=True)), struct_t)
        for k in struct_t.names:
            cols[k] = pc.struct_field(parts, k)
    else:
        cols.update({k: null for k in ("name_norm", "family_hanzi", "given_hanzi",
                                       "family_name", "given_name")})
    if given is not None:
        cols["given_name"] = pc.coalesce(_name_token(given), cols["given_name"])
    if family is not None:
        cols["family_name"] = pc.coalesce(_name_token(family), cols["family_name"])
    if full is None:
        cols["name_norm"] = _blank_to_null(pc.utf8_trim_whitespace(
            pc.binary_join_element_wise(pc.coalesce(cols["given_name"], ""),
                                        pc.coalesce(cols["family_name"], ""), " ")))
    fam, giv = cols["family_name"], cols["given_name"]
    cols["name_pinyin"] = _blank_to_null(pc.utf8_trim_whitespace(
        pc.binary_join_element_wise(pc.coalesce(fam, ""), pc.coalesce(giv, ""), " ")))
    lo = pc.if_else(pc.less_equal(pc.coalesce(fam, ""), pc.coalesce(giv, "")), fam, giv)
    hi = pc.if_else(pc.less_equal(pc.coalesce(fam, ""), pc.coalesce(giv, "")), giv, fam)
    cols["name_key"] = _blank_to_null(pc.utf8_trim_whitespace(
        pc.binary_join_element_wise(pc.coalesce(lo, ""), pc.coalesce(hi, ""), " ")))
    return cols


def normalise_records(table: pa.Table) -> pa.Table:
    """The matching columns (:data:`MATCH_COLUMNS`) for records with any of
    :data:`INPUT_COLUMNS`; ``record_id``, ``source_system`` and ``updated_at`` are kept.

    >>> t = pa.table({"record_id": ["1", "2", "3"], "name": ["王小明", "王小明", "Xiaoming Wang"],
    ...               "phone": ["13812345678", "+86 138-1234-5678", None]})
    >>> n = normalise_records(t)
    >>> n["name_pinyin"].to_pylist(), n["phone"].to_pylist()
    (['wang xiaoming', 'wang xiaoming', 'wang xiaoming'], ['13812345678', '13812345678', None])
    """
    from kehu.errors import KehuInputError
    from kehu.i18n import _

    if "record_id" not in table.column_names:
        raise KehuInputError(_("Identity resolution needs a 'record_id' column; the records "
                               "have {cols}.").format(cols=", ".join(table.column_names)))
    n = table.num_rows

    def col(name: str) -> pa.Array | None:
        if name not in table.column_names:
            return None
        return table.column(name).combine_chunks()

    null = pa.nulls(n, pa.string())
    out: dict[str, pa.Array] = {"record_id": _text(table.column("record_id").combine_chunks())}
    src = col("source_system")
    out["source_system"] = pc.coalesce(_text(src) if src is not None else null,
                                       pa.scalar(DEFAULT_SOURCE))
    if col("updated_at") is not None:
        out["updated_at"] = pc.cast(col("updated_at"), pa.timestamp("us"))
    out.update(names(col("name"), col("given_name"), col("family_name"), n))
    out["gender"] = genders(col("gender")) if col("gender") is not None else null
    ids = id_numbers(col("id_number")) if col("id_number") is not None else null
    born = dates(col("birth_date")) if col("birth_date") is not None else null
    out["birth_date"] = pc.coalesce(born, id_birth_dates(ids))
    out["birth_year"] = pc.utf8_slice_codeunits(out["birth_date"], 0, 4)
    out["phone"] = phones(col("phone")) if col("phone") is not None else null
    out["email"] = emails(col("email")) if col("email") is not None else null
    out["email_user"] = email_users(out["email"])
    out["id_number"] = ids
    out["id_valid"] = id_valid(ids)
    for k, fn in (("address", addresses), ("city", places), ("region", places),
                  ("postcode", postcodes)):
        c = col(k)
        out[k] = fn(c) if c is not None else null
    return pa.table(out)
