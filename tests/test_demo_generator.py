"""The demo company: deterministic, realistic, dirty where it says, and the behaviour the later
analytics must find is really in the files. Checks read the files independently (csv module,
pyarrow), never through kehu's importer."""

from __future__ import annotations

import csv
import tracemalloc
from collections import defaultdict
from datetime import date, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from kehu.demo import generate
from kehu.ingest.mapping import propose
from kehu.ingest.readers import open_source
from kehu.model import entity

N = 12_000


@pytest.fixture(scope="module")
def company(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "retail"
    generate("retail", N, seed=11, out=out)
    return out


def _rows(path: Path, encoding: str = "utf-8-sig") -> list[dict[str, str]]:
    with path.open(encoding=encoding, newline="") as fh:
        return list(csv.DictReader(fh))


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for out, seed in ((a, 5), (b, 5), (c, 6)):
        generate("bank", 800, seed=seed, out=out, chunk=300)
    files = sorted(p.name for p in a.iterdir() if p.is_file())
    assert files == sorted(p.name for p in b.iterdir() if p.is_file())
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)
    assert (a / "customers.csv").read_bytes() != (c / "customers.csv").read_bytes()


def test_customers_file_is_gbk_with_chinese_headers(company: Path) -> None:
    raw = (company / "customers.csv").read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    header = raw.decode("gb18030").splitlines()[0].split(",")
    assert header[:3] == ["客户编号", "姓名", "性别"]


def test_every_file_maps_onto_its_entity(company: Path) -> None:
    manifest = yaml.safe_load((company / "manifest.yaml").read_text(encoding="utf-8"))
    assert len(manifest["sources"]) >= 12
    for src in manifest["sources"]:
        ent = entity(src["entity"])
        headers = open_source(company / src["files"][0]).headers
        p = propose(ent, headers)
        assert p.complete, (src, p.unmapped_required, p.ambiguous)
        assert not p.unused, (src, p.unused)  # every column lands somewhere
        if ent.name == "customers":
            assert {"会员等级", "职业", "月收入", "是否实名"} <= set(p.mapping.attributes)


def test_planted_dirty_rows_are_dirty(company: Path) -> None:
    dirty = pq.read_table(company / "truth" / "dirty_rows.parquet").to_pylist()
    kinds = {d["kind"] for d in dirty}
    assert {"bad_date", "negative_amount", "unknown_customer", "duplicate_customer",
            "future_date", "missing_id", "negative_quantity"} <= kinds
    tx = _rows(company / "transactions.csv")
    cust = _rows(company / "customers.csv", "gb18030")
    known = {r["客户编号"] for r in cust}
    rate = len(dirty) / (len(tx) + len(cust))
    assert 0.005 < rate < 0.05
    for d in dirty:
        if d["file"] == "transactions.csv":
            r = tx[d["row"] - 2]
            if d["kind"] == "negative_amount":
                assert float(r["金额"].replace("¥", "").replace(",", "")) < 0
            elif d["kind"] == "unknown_customer":
                assert r["客户编号"] not in known
            elif d["kind"] == "bad_date":
                with pytest.raises(ValueError):
                    datetime.fromisoformat(r["交易时间"])
            elif d["kind"] == "negative_quantity":
                assert int(r["数量"]) < 0
        elif d["file"] == "customers.csv":
            r = cust[d["row"] - 2]
            if d["kind"] == "missing_id":
                assert r["客户编号"] == ""
            elif d["kind"] == "future_date":
                assert r["注册日期"] > "2030"
            elif d["kind"] == "bad_date":
                with pytest.raises(ValueError):
                    date.fromisoformat(r["出生日期"])


def test_duplicates_are_the_same_person_written_differently(company: Path) -> None:
    dups = pq.read_table(company / "truth" / "duplicates.parquet").to_pylist()
    assert len(dups) > N * 0.002
    by_id = {r["客户编号"]: r for r in _rows(company / "customers.csv", "gb18030")}
    differs = 0
    for d in dups:
        a, b = by_id[d["duplicate_id"]], by_id[d["duplicate_of"]]
        assert a["证件号码"] == b["证件号码"] and a["出生日期"] == b["出生日期"]
        assert a["手机号码"].replace("+86", "").replace(" ", "").replace("-", "") \
            == b["手机号码"]
        differs += a["姓名"] != b["姓名"]
    assert differs > len(dups) / 2  # traditional characters or pinyin


def test_usage_falls_before_churn(company: Path) -> None:
    truth = {r["customer_id"]: r for r in
             pq.read_table(company / "truth" / "customers.parquet").to_pylist()}
    times: dict[str, list[datetime]] = defaultdict(list)
    for r in _rows(company / "transactions.csv"):
        try:
            times[r["客户编号"]].append(datetime.fromisoformat(r["交易时间"]))
        except ValueError:
            continue
    ratios = {True: [], False: []}
    for cid, t in truth.items():
        ts = times.get(cid)
        if not ts or len(ts) < 6:
            continue
        end = datetime.combine(t["churn_date"], datetime.min.time()) if t["churned"] \
            else datetime(2025, 12, 31)
        first = min(ts)
        if (end - first).days < 240:
            continue
        last90 = sum(end - timedelta(days=90) <= x < end for x in ts) / 90
        before = sum(x < end - timedelta(days=90) for x in ts) / (end - first).days
        ratios[bool(t["churned"])].append(last90 / before if before else 1.0)
    churned = sum(ratios[True]) / len(ratios[True])
    retained = sum(ratios[False]) / len(ratios[False])
    assert len(ratios[True]) > 100
    assert churned < 0.5 < 0.8 < retained


def test_campaign_control_group_and_effect(company: Path) -> None:
    contacts = _rows(company / "campaign_contacts.csv")
    responded = {(r["campaign id"], r["customer id"]) for r in _rows(company / "responses.csv")}
    n = {"treatment": 0, "control": 0}
    hits = {"treatment": 0, "control": 0}
    for c in contacts:
        n[c["group"]] += 1
        hits[c["group"]] += (c["campaign id"], c["customer id"]) in responded
    share = n["control"] / (n["control"] + n["treatment"])
    assert 0.07 < share < 0.13
    rt, rc = hits["treatment"] / n["treatment"], hits["control"] / n["control"]
    assert rt - rc > 0.02  # the planted effect is 0.05


def test_spend_is_long_tailed(company: Path) -> None:
    spend: dict[str, float] = defaultdict(float)
    for r in _rows(company / "transactions.csv"):
        v = float(r["金额"].replace("¥", "").replace(",", ""))
        if v > 0:
            spend[r["客户编号"]] += v
    ordered = sorted(spend.values(), reverse=True)
    top = sum(ordered[: len(ordered) // 5]) / sum(ordered)
    assert 0.5 < top < 0.9


def test_affinity_pairs_are_bought_together(company: Path) -> None:
    pairs = pq.read_table(company / "truth" / "affinity_pairs.parquet").to_pylist()
    baskets: dict[str, set[str]] = defaultdict(set)
    for r in _rows(company / "transactions.csv"):
        baskets[r["订单号"]].add(r["产品编号"])
    n = len(baskets)
    a, b = pairs[0]["product_a"], pairs[0]["product_b"]
    pa = sum(a in x for x in baskets.values()) / n
    pb = sum(b in x for x in baskets.values()) / n
    pab = sum(a in x and b in x for x in baskets.values()) / n
    assert pab / (pa * pb) > 3  # lift far above independence


def test_memory_does_not_grow_with_customers(tmp_path: Path) -> None:
    peaks = []
    for n in (2_000, 8_000):
        tracemalloc.start()
        generate("telco", n, seed=3, out=tmp_path / f"t{n}", chunk=1_000)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    assert peaks[1] < 1.6 * peaks[0], peaks


@pytest.mark.parametrize("industry", ["telco", "bank"])
def test_other_industries(tmp_path: Path, industry: str) -> None:
    s = generate(industry, 1500, seed=2, out=tmp_path / industry)
    assert s.files["customers.csv"] >= 1500 and s.files["payments.csv"] > 1500
    assert sum(s.dirty.values()) > 0


def test_telco_monthly_bills_fall_before_churn(tmp_path: Path) -> None:
    out = tmp_path / "telco"
    generate("telco", 4000, seed=8, out=out)
    bills = pq.read_table(out / "bills.parquet").to_pylist()
    truth = {r["customer_id"]: r for r in
             pq.read_table(out / "truth" / "customers.parquet").to_pylist()}
    monthly: dict[str, list[tuple[datetime, float]]] = defaultdict(list)
    for r in bills:
        if r["kind"] == "bill":
            monthly[r["customer id"]].append((r["date"], r["amount"]))
    # one bill per customer and month
    assert all(len({(d.year, d.month) for d, _ in v}) == len(v) for v in monthly.values())
    drops = {True: [], False: []}
    for cid, v in monthly.items():
        if len(v) < 8:
            continue
        v.sort()
        last, before = [a for _, a in v[-2:]], [a for _, a in v[:-3]]
        drops[bool(truth[cid]["churned"])].append(
            (sum(last) / len(last)) / (sum(before) / len(before)))
    assert len(drops[True]) > 30
    assert sum(drops[True]) / len(drops[True]) < sum(drops[False]) / len(drops[False]) - 0.05
