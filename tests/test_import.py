"""Importers: every row loaded or rejected with its reason, idempotent, incremental, typed.

Expected values are computed independently from the source text in the tests (plain Python
over the file contents), never copied from kehu's output.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import date, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kehu import Workspace
from kehu.errors import KehuInputError, MappingError
from kehu.ingest import Importer, plan_import
from kehu.ingest.journal import completed_imports, visible_rejects

NOW = datetime(2025, 6, 30, 12, 0)

CUSTOMERS = """客户编号,姓名,性别,出生日期,手机号码,城市,入网日期,客户经理,会员等级,月收入,是否实名
C001,张伟,男,1985-03-12,13800138000,北京,2019-01-05,E01,金卡,"12,000",是
C002,王芳,女,1990/7/1,13900139000,上海,2020年3月4日,E02,银卡,8000,否
C003,李娜,女,not a date,13700137000,广州,2021-06-01,,普通,5000,是
C004,刘洋,x,1979-11-30,13600136000,深圳,2018-09-09,E01,金卡,20000,是
C005,陈静,女,1988-02-29,,杭州,2099-01-01,,银卡,7000,否
,赵磊,男,1992-05-05,13500135000,成都,2022-02-02,,普通,4000,是
C006,孙丽,女,1995-12-25,13400134000,武汉,2023-03-03,E02,普通,3000,否
"""
# planted: C003 bad birth date, C004 bad gender, C005 future signup, blank id -> 4 rejects
CUSTOMER_REJECTS = {4: "bad_date", 5: "bad_choice", 6: "future_date", 7: "missing"}

TRANSACTIONS = """交易流水号,客户编号,交易时间,金额,数量,渠道
T1,C001,2024-01-05 10:00:00,"¥1,200.50",1,门店
T2,C001,2024-02-05 11:30:00,300,2,网站
T3,C002,2024-03-01 09:00:00,-50,1,门店
T4,C999,2024-03-02 09:00:00,80,1,app
T5,C002,2024-13-45 09:00:00,80,1,app
T6,C006,2024-04-01 12:00:00,"(20.00)",1,门店
T7,C006,2024-04-02 12:00:00,99.9,-3,门店
T8,C002,2024-05-01 08:00:00,45,1,短信
T9,C001,2024-06-01 18:00:00,"2,000",1,web
"""
TX_REJECTS = {4: "negative_amount", 5: "unknown_reference", 6: "bad_date", 7: "negative_amount",
              8: "below_min"}


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def run_import(ws: Workspace, entity: str, files: list[Path], **kw: object):
    plans = plan_import(ws, entity, files, **kw)  # type: ignore[arg-type]
    return Importer(ws, now=NOW).run(plans)


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    w = Workspace.init(tmp_path / "ws")
    emp = write(tmp_path / "employees.csv",
                "employee_id,name,team\nE01,周经理,北京\nE02,吴经理,上海\n")
    run_import(w, "employees", [emp])
    return w


def _data_rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))[1:]


def test_gbk_customers_with_chinese_headers(ws: Workspace, tmp_path: Path) -> None:
    src = write(tmp_path / "客户.csv", CUSTOMERS, "gbk")
    plans = plan_import(ws, "customers", [src])
    assert plans[0].reader.encoding == "gb18030"
    assert plans[0].mapping.columns["customer_id"] == "客户编号"
    rep = Importer(ws, now=NOW).run(plans)
    n_rows = len(_data_rows(CUSTOMERS))
    assert rep.read == n_rows == rep.loaded + rep.rejected
    assert rep.rejected == len(CUSTOMER_REJECTS)
    rej = visible_rejects(ws.warehouse, rep.import_id).to_pylist()
    assert {r["row"]: r["reason_code"] for r in rej} == CUSTOMER_REJECTS
    assert all(r["reason"] and r["file"] == "客户.csv" for r in rej)
    bad_gender = next(r for r in rej if r["row"] == 5)
    assert bad_gender["column"] == "gender" and bad_gender["value"] == "x"
    assert json.loads(bad_gender["raw"])["姓名"] == "刘洋"
    got = ws.warehouse.read("customers").to_pylist()
    by_id = {r["customer_id"]: r for r in got}
    assert set(by_id) == {"C001", "C002", "C006"}
    # custom attributes are kept, typed from the data
    assert by_id["C001"]["attr_月收入"] == 12000 and by_id["C002"]["attr_是否实名"] is False
    assert by_id["C001"]["attr_会员等级"] == "金卡"
    assert by_id["C002"]["signup_date"] == date(2020, 3, 4)
    assert by_id["C002"]["birth_date"] == date(1990, 7, 1)
    assert by_id["C001"]["gender"] == "M"
    schema = ws.warehouse.schema("customers")
    assert schema.field("attr_月收入").type == pa.int64()
    assert schema.field("attr_是否实名").type == pa.bool_()


def test_reimport_is_a_no_op_and_changes_are_updates(ws: Workspace, tmp_path: Path) -> None:
    src = write(tmp_path / "c.csv", CUSTOMERS, "gbk")
    first = run_import(ws, "customers", [src])
    version = ws.warehouse.version("customers")
    again = run_import(ws, "customers", [src])
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, first.loaded)
    assert ws.warehouse.version("customers") == version  # no commit at all
    changed = CUSTOMERS.replace("C006,孙丽,女,1995-12-25,13400134000,武汉",
                                "C006,孙丽,女,1995-12-25,13400134999,武汉")
    changed += "C007,周杰,男,1979-01-18,13300133000,台北,2024-01-01,,普通,9000,是\n"
    rep = run_import(ws, "customers", [write(tmp_path / "c2.csv", changed, "gbk")])
    assert (rep.inserted, rep.updated) == (1, 1)
    assert rep.unchanged == rep.loaded - 2
    phones = {r["customer_id"]: r["phone"] for r in ws.warehouse.read("customers").to_pylist()}
    assert phones["C006"] == "13400134999" and "C007" in phones
    assert ws.warehouse.count("customers") == 4


def test_transactions_values_and_rejects(ws: Workspace, tmp_path: Path) -> None:
    run_import(ws, "customers", [write(tmp_path / "c.csv", CUSTOMERS, "gbk")])
    rep = run_import(ws, "transactions", [write(tmp_path / "t.csv", TRANSACTIONS)])
    rows = _data_rows(TRANSACTIONS)
    assert rep.read == len(rows) == rep.loaded + rep.rejected
    rej = {r["row"]: r["reason_code"] for r in visible_rejects(ws.warehouse).to_pylist()
           if r["entity"] == "transactions"}
    assert rej == TX_REJECTS
    # independent computation of the loaded amounts from the text
    expected = {}
    for i, r in enumerate(rows, start=2):
        if i in TX_REJECTS:
            continue
        txt = r[3].replace("¥", "").replace(",", "")
        expected[r[0]] = -float(txt.strip("()")) if txt.startswith("(") else float(txt)
    got = {r["transaction_id"]: r["amount"] for r in ws.warehouse.read("transactions").to_pylist()}
    assert got == expected
    # T6 "(20.00)" is a negative purchase -> rejected; so expected must not have it
    assert "T6" not in got
    chans = {r["transaction_id"]: r["channel"] for r in ws.warehouse.read("transactions")
             .to_pylist()}
    assert chans == {"T1": "store", "T2": "web", "T8": "sms", "T9": "web"}


def test_same_rows_in_every_format(ws: Workspace, tmp_path: Path) -> None:
    import openpyxl

    run_import(ws, "customers", [write(tmp_path / "c.csv", CUSTOMERS, "gbk")])
    header, *rows = list(csv.reader(io.StringIO(TRANSACTIONS)))
    variants: dict[str, Path] = {}
    variants["bom"] = write(tmp_path / "bom.csv", "\ufeff" + TRANSACTIONS)
    semi = io.StringIO()
    csv.writer(semi, delimiter=";").writerows([header, *rows])
    variants["semicolon"] = write(tmp_path / "semi.csv", semi.getvalue())
    tab = io.StringIO()
    csv.writer(tab, delimiter="\t").writerows([header, *rows])
    variants["tsv"] = write(tmp_path / "tab.tsv", tab.getvalue())
    wb = openpyxl.Workbook()
    sh = wb.active
    sh.append(header)
    for r in rows:
        sh.append(r)
    wb.save(tmp_path / "x.xlsx")
    variants["xlsx"] = tmp_path / "x.xlsx"
    pq.write_table(pa.table({h: [r[i] for r in rows] for i, h in enumerate(header)}),
                   tmp_path / "p.parquet")
    variants["parquet"] = tmp_path / "p.parquet"
    with (tmp_path / "j.jsonl").open("w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(dict(zip(header, r, strict=True)), ensure_ascii=False) + "\n")
    variants["jsonl"] = tmp_path / "j.jsonl"
    results = {}
    for name, path in variants.items():
        w2 = Workspace.init(tmp_path / f"ws-{name}")
        run_import(w2, "employees", [write(tmp_path / "e.csv", "employee_id\nE01\nE02\n")])
        run_import(w2, "customers", [write(tmp_path / "c.csv", CUSTOMERS, "gbk")])
        rep = run_import(w2, "transactions", [path])
        assert rep.read == rep.loaded + rep.rejected == len(rows), name
        t = w2.warehouse.read("transactions").to_pylist()
        results[name] = sorted((r["transaction_id"], r["amount"], r["transaction_time"])
                               for r in t)
        rejected_rows = {r["row"] for r in visible_rejects(w2.warehouse, rep.import_id)
                         .to_pylist()}
        # text and Excel count the header as row 1; Parquet and JSONL count records from 1
        offset = 0 if name in ("bom", "semicolon", "tsv", "xlsx") else 1
        assert rejected_rows == {r - offset for r in TX_REJECTS}, name
    first = next(iter(results.values()))
    assert all(v == first for v in results.values())
    assert len(first) == len(rows) - len(TX_REJECTS)


def test_incremental_files_append(ws: Workspace, tmp_path: Path) -> None:
    run_import(ws, "customers", [write(tmp_path / "c.csv", CUSTOMERS, "gbk")])
    a = write(tmp_path / "a.csv", "交易流水号,客户编号,交易时间,金额\nA1,C001,2024-01-01,10\n")
    b = write(tmp_path / "b.csv", "交易流水号,客户编号,交易时间,金额\nB1,C002,2024-01-02,20\n"
              "B2,C002,2024-01-03,30\n")
    run_import(ws, "transactions", [a])
    rep = run_import(ws, "transactions", [b])
    assert (rep.inserted, rep.updated, rep.unchanged) == (2, 0, 0)
    assert ws.warehouse.count("transactions") == 3
    assert len(completed_imports(ws.warehouse)) == 4  # employees, customers, a, b


def test_duplicate_keys_in_one_import_keep_the_last(ws: Workspace, tmp_path: Path) -> None:
    a = write(tmp_path / "a.csv", "customer_id,name\nK1,first\nK2,x\nK1,second\n")
    b = write(tmp_path / "b.csv", "customer_id,name\nK1,third\n")
    rep = run_import(ws, "customers", [a, b])
    assert rep.read == 4 and rep.loaded == 2 and rep.rejected == 2
    names = {r["customer_id"]: r["name"] for r in ws.warehouse.read("customers").to_pylist()}
    assert names == {"K1": "third", "K2": "x"}
    rej = visible_rejects(ws.warehouse, rep.import_id).to_pylist()
    assert sorted((r["file"], r["row"]) for r in rej) == [("a.csv", 2), ("a.csv", 4)]
    assert {r["reason_code"] for r in rej} == {"duplicate_key"}


def test_references_need_their_entity(tmp_path: Path) -> None:
    w = Workspace.init(tmp_path / "w")
    src = write(tmp_path / "t.csv", TRANSACTIONS)
    with pytest.raises(KehuInputError, match="no customers have been imported yet"):
        run_import(w, "transactions", [src])
    assert not w.warehouse.exists("transactions")


def test_unmappable_file_stops_with_a_clear_message(ws: Workspace, tmp_path: Path) -> None:
    src = write(tmp_path / "odd.csv", "foo,bar\n1,2\n")
    with pytest.raises(MappingError) as exc:
        run_import(ws, "transactions", [src])
    msg = str(exc.value)
    assert "odd.csv" in msg and "transaction_id" in msg and "foo, bar" in msg
    assert "--mapping" in msg


def test_blank_lines_are_not_rows(ws: Workspace, tmp_path: Path) -> None:
    src = write(tmp_path / "c.csv", "customer_id,name\nA,a\n\n,\nB,b\n")
    rep = run_import(ws, "customers", [src])
    assert (rep.read, rep.loaded, rep.rejected, rep.blank_lines) == (2, 2, 0, 2)


def test_undecodable_bytes_reject_only_their_row(ws: Workspace, tmp_path: Path) -> None:
    data = "customer_id,name\nA,张三\n".encode() + b"B,\xff\xfe\xfd\n" + "C,李四\n".encode()
    src = tmp_path / "c.csv"
    src.write_bytes(data)
    rep = run_import(ws, "customers", [src])
    assert (rep.read, rep.loaded, rep.rejected) == (3, 2, 1)
    (r,) = visible_rejects(ws.warehouse, rep.import_id).to_pylist()
    assert r["row"] == 3 and r["reason_code"] == "bad_bytes"


def test_cdnow_bundled_dataset_imports_through_the_public_importer(tmp_path: Path) -> None:
    from kehu.datasets import DATASETS, load

    w = Workspace.init(tmp_path / "cd")
    rep = load(w, "cdnow")
    lines = [ln for ln in DATASETS["cdnow"].path.read_text().splitlines()[1:] if ln.strip()]
    assert rep.read == len(lines) == 69659 and rep.rejected == 0
    assert rep.created_customers == len({ln.split()[0] for ln in lines}) == 23570
    total = sum(float(ln.split()[3]) for ln in lines)
    got = w.warehouse.read("transactions", ["amount"]).column(0).to_pylist()
    assert sum(got) == pytest.approx(total, rel=1e-12)
    again = load(w, "cdnow")
    assert again.inserted == again.updated == 0 and again.unchanged == 69659


def test_manifest_loads_in_reference_order(tmp_path: Path) -> None:
    from kehu.ingest.manifest import load_manifest

    w = Workspace.init(tmp_path / "w")
    src = tmp_path / "src"
    src.mkdir()
    write(src / "tx-1.csv", "交易流水号,客户编号,交易时间,金额\nA1,C001,2024-01-01,10\n")
    write(src / "tx-2.csv", "交易流水号,客户编号,交易时间,金额\nB1,C002,2024-01-02,20\n")
    write(src / "c.csv", CUSTOMERS, "gbk")
    write(src / "e.csv", "employee_id\nE01\nE02\n")
    (src / "manifest.yaml").write_text(
        "sources:\n"
        "  - {entity: transactions, files: ['tx-*.csv']}\n"
        "  - {entity: customers, files: [c.csv]}\n"
        "  - {entity: employees, files: [e.csv]}\n", encoding="utf-8")
    reports = load_manifest(w, src / "manifest.yaml")
    assert [r.entity for r in reports] == ["employees", "customers", "transactions"]
    assert reports[2].loaded == 2 and len(reports[2].files) == 2
