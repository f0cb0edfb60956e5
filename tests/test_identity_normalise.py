"""Normalisation for identity resolution, checked against outside references: the demo
generator's own traditional / pinyin tables and ID numbers, a published ID number in both
of its formats, and hand-written phone and date forms."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kehu.demo import names as nm
from kehu.errors import KehuInputError
from kehu.identity import chinese
from kehu.identity.normalise import (
    addresses,
    dates,
    emails,
    id_birth_dates,
    id_numbers,
    id_valid,
    normalise_records,
    phones,
)


def test_traditional_to_simplified_matches_the_demo_tables() -> None:
    # the generator's hand-written traditional forms (names.py), converted by OpenCC
    for simp, _py, trad, _w in nm.SURNAMES:
        assert chinese.simplified(trad) == simp
    for simp, _py, trad in nm.GIVEN:
        assert chinese.simplified(trad) == simp


def test_pinyin_matches_the_demo_spellings() -> None:
    rng = np.random.default_rng(7)
    names = nm.sample_names(rng, 400)
    t = normalise_records(pa.table({
        "record_id": [str(i) for i in range(1200)],
        "name": [*names["name"], *names["traditional"], *names["pinyin"]]}))
    py, key = t["name_pinyin"].to_pylist(), t["name_key"].to_pylist()
    for i, spelled in enumerate(names["pinyin"]):     # "Xiaoming Wang": given, then family
        given_, family = spelled.rsplit(" ", 1)
        want = f"{family.lower()} {given_.lower()}"
        assert py[i] == want                           # 王小明
        assert py[400 + i] == want                     # 王小明 in traditional characters
        # "Xiaoming Wang": the same tokens (which is the family name is ambiguous in
        # romanised names such as "Chen Hu"; the model also compares names swapped)
        assert key[800 + i] == key[i] == " ".join(sorted(want.split()))


def test_name_orders_and_compound_surnames() -> None:
    t = normalise_records(pa.table({
        "record_id": list("abcdefg"),
        "name": ["欧阳小明", "Xiaoming Ouyang", "Ouyang Xiaoming", "單田芳", "Zoë Lǚ",
                 "John  Smith", "  "]}))
    rows = t.select(["family_name", "given_name", "name_key"]).to_pylist()
    assert rows[0] == rows[1] == rows[2] == {"family_name": "ouyang", "given_name": "xiaoming",
                                              "name_key": "ouyang xiaoming"}
    assert rows[3]["family_name"] == "shan"              # 单 as a surname reads shàn
    assert rows[4]["family_name"] == "lu" and rows[4]["given_name"] == "zoe"
    assert rows[5]["name_key"] == "john smith"
    assert rows[6] == {"family_name": None, "given_name": None, "name_key": None}


@pytest.mark.parametrize("raw,want", [
    ("13812345678", "13812345678"),
    ("+86 138 1234 5678", "13812345678"),
    ("+86-138-1234-5678", "13812345678"),
    ("0086 13812345678", "13812345678"),
    ("8613812345678", "13812345678"),
    ("(138) 1234-5678", "13812345678"),
    ("１３８１２３４５６７８", "13812345678"),           # full-width digits
    ("138-1234-5678", "13812345678"),
    ("(010) 6552-1234", "01065521234"),                  # a Beijing landline
    ("+86 10 6552 1234", "01065521234"),
    ("+852 9123 4567", "+85291234567"),                  # Hong Kong keeps its code
    ("", None), (None, None), ("n/a", None),
])
def test_phone_forms(raw: str | None, want: str | None) -> None:
    assert phones(pa.array([raw], pa.string())).to_pylist() == [want]


def test_phone_variants_of_the_demo_generator() -> None:
    rng = np.random.default_rng(3)
    base = nm.phones(rng, 200)
    for kind in (0, 1):
        variant = [nm.format_phone_variant(p, kind) for p in base]
        assert phones(pa.array(variant)).to_pylist() == list(base)


def test_emails() -> None:
    got = emails(pa.array([" Wang.XM@Example.COM ", "no-at-sign", "a@b",
                           "ｘｍ＠ｅｘａｍｐｌｅ.ｃｎ"]))
    assert got.to_pylist() == ["wang.xm@example.com", None, None, "xm@example.cn"]


def test_id_numbers_published_example_in_both_formats() -> None:
    # the widely published sample ID (Beijing Chaoyang, born 1949-12-31) and its 15-digit
    # first-generation form
    ids = id_numbers(pa.array(["11010519491231002x", "110105491231002", "1101 0519 4912 3100 2X"]))
    assert ids.to_pylist() == ["11010519491231002X"] * 3
    assert id_valid(ids).to_pylist() == [True] * 3
    assert id_birth_dates(ids).to_pylist() == ["1949-12-31"] * 3
    typo = id_numbers(pa.array(["11010519491231003X", "E12345678"]))   # one digit off; passport
    assert typo.to_pylist() == ["11010519491231003X", "E12345678"]
    assert id_valid(typo).to_pylist() == [False, False]


def test_id_check_character_agrees_with_the_demo_generator() -> None:
    rng = np.random.default_rng(11)
    n = 2_000
    birth = np.datetime64("1950-01-01") + rng.integers(0, 365 * 60, n) * np.timedelta64(1, "D")
    ids = nm.id_numbers(rng, rng.integers(0, len(nm.AREA_CODES), n), birth)
    arr = id_numbers(pa.array(list(ids)))
    assert all(id_valid(arr).to_pylist())
    assert id_birth_dates(arr).to_pylist() == list(np.datetime_as_string(birth, unit="D"))
    # change one digit of each: the check character catches it
    bad = [x[:5] + str((int(x[5]) + 1) % 10) + x[6:] for x in ids]
    assert not any(id_valid(id_numbers(pa.array(bad))).to_pylist())


@pytest.mark.parametrize("raw,want", [
    ("1990-03-07", "1990-03-07"), ("1990/3/7", "1990-03-07"), ("19900307", "1990-03-07"),
    ("1990年3月7日", "1990-03-07"), ("1990.03.07", "1990-03-07"), ("1985-02-30", None),
    ("2000-02-29", "2000-02-29"), ("1900-02-29", None), ("not a date", None), ("", None),
])
def test_date_forms(raw: str, want: str | None) -> None:
    assert dates(pa.array([raw])).to_pylist() == [want]


def test_dates_from_date_columns() -> None:
    d = [date(1990, 3, 7), None]
    assert dates(pa.array(d, pa.date32())).to_pylist() == ["1990-03-07", None]


def test_addresses_fold_width_script_and_spaces() -> None:
    got = addresses(pa.array(["北京市朝陽區　建國路８８號", " 北京市朝阳区建国路88号 ",
                              "1 Hay St.,  Oaklands"]))
    assert got.to_pylist() == ["北京市朝阳区 建国路88号", "北京市朝阳区建国路88号",
                               "1 hay st oaklands"]


def test_birth_date_falls_back_to_the_id_number() -> None:
    t = normalise_records(pa.table({"record_id": ["a", "b"], "birth_date": [None, "1960-01-02"],
                                    "id_number": ["11010519491231002X", None]}))
    assert t["birth_date"].to_pylist() == ["1949-12-31", "1960-01-02"]


def test_records_need_unique_ids() -> None:
    with pytest.raises(KehuInputError, match="record_id"):
        normalise_records(pa.table({"name": ["a"]}))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(max_size=12),
                          st.from_regex(r"\+?[0-9 ()\-]{5,16}", fullmatch=True)),
                min_size=1, max_size=20))
def test_phones_keep_every_row_and_are_idempotent(values: list[str | None]) -> None:
    once = phones(pa.array(values, pa.string()))
    assert len(once) == len(values)
    assert phones(once).to_pylist() == once.to_pylist()


@settings(max_examples=40, deadline=None)
@given(st.lists(st.dates(min_value=date(1900, 1, 1), max_value=date(2030, 12, 31)),
                min_size=1, max_size=10))
def test_dates_round_trip_every_format(ds: list[date]) -> None:
    iso = [d.isoformat() for d in ds]
    for fmt in ("{y}-{m}-{d}", "{y}/{m}/{d}", "{y}{m:02d}{d:02d}", "{y}年{m}月{d}日"):
        raw = [fmt.format(y=d.year, m=d.month, d=d.day) for d in ds]
        assert dates(pa.array(raw)).to_pylist() == iso
    assert dates(pa.array([d + timedelta(0) for d in ds], pa.date32())).to_pylist() == iso
