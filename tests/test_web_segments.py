"""The segments pages and API (issue: "Segments: rule builder with a live count and value
preview, save, compare, export"): previews against pandas over the warehouse tables, saving
into the same app-store definitions ``kehu segment save`` writes, overlap against set
intersections, exports with Chinese headers, roles, CSRF, audit and zh_CN — on one demo
workspace (3,000 customers, one analysis run), through the real app and real sign-in."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from datetime import timedelta
from html import unescape
from typing import Any

import openpyxl
import pandas as pd
import pytest
import yaml
from fastapi import FastAPI
from fastapi.testclient import TestClient

from kehu.analytics.run import SCORES_TABLE
from kehu.segments import SegmentSpec, evaluate
from kehu.segments.builder import Builder, from_yaml
from kehu.segments.saved import get_saved, list_saved
from kehu.settings import WebSection
from kehu.store import services as sv
from kehu.web import create_app
from kehu.workspace import Workspace
from web_support import SECRET, assert_problem, bearer, csrf, demo_workspace, signed_in, web_app

ROW_INPUTS = ("kind", "field", "op", "value", "target", "item", "days", "channel")


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    w = demo_workspace(tmp_path_factory.mktemp("websegments"))
    yield w
    w.close()


@pytest.fixture(scope="module")
def app(ws: Workspace) -> Iterator[FastAPI]:
    web_app(ws)  # the users of every role
    settings = ws.settings.model_copy(update={"web": WebSection(
        secret_key=SECRET, cookie_secure=False, login_max_failures=1000,
        warm_on_start=False)})
    application = create_app(settings, ws)
    with TestClient(application):
        yield application


@pytest.fixture(scope="module")
def ann(app: FastAPI) -> TestClient:
    return signed_in(app, "ann")


@pytest.fixture(scope="module")
def frame(ws: Workspace) -> pd.DataFrame:
    """Customers with the latest run's scores: what a segment is evaluated against."""
    cust = ws.warehouse.read("customers").to_pandas()
    sc = ws.warehouse.read(SCORES_TABLE).to_pandas()
    sc = sc[sc.run_id == sc.run_id.max()]
    sc = sc[[c for c in sc.columns if c == "customer_id" or c not in cust.columns]]
    return cust.merge(sc, on="customer_id", how="left").set_index("customer_id")


@pytest.fixture(scope="module")
def as_of(ws: Workspace) -> pd.Timestamp:
    tx = ws.warehouse.read("transactions").to_pandas()
    return pd.Timestamp(tx.transaction_time.max()).normalize()


def buyers(ws: Workspace, as_of: pd.Timestamp, category: str, days: int) -> set[str]:
    r = ws.warehouse.read
    tx, prods = r("transactions").to_pandas(), r("products").to_pandas()
    in_cat = set(prods[(prods.category == category) | (prods.subcategory == category)
                       | (prods.category3 == category)].product_id)
    day = tx.transaction_time.dt.normalize()
    return set(tx[(day > as_of - timedelta(days=days)) & (day <= as_of)
                  & tx.product_id.isin(in_cat)].customer_id)


def contacted(ws: Workspace, as_of: pd.Timestamp, days: int) -> set[str]:
    r = ws.warehouse.read
    it, cc = r("interactions").to_pandas(), r("campaign_contacts").to_pandas()
    iday, cday = it.interaction_time.dt.normalize(), cc.contact_time.dt.normalize()
    since = as_of - timedelta(days=days)
    return set(it[(iday > since) & (iday <= as_of)].customer_id) | set(
        cc[(cday > since) & (cday <= as_of) & (cc.group == "treatment")].customer_id)


def expected(frame: pd.DataFrame, mask: Any) -> dict[str, Any]:
    m = frame[pd.Series(mask, index=frame.index).fillna(False).astype(bool)]
    return {"size": len(m), "share": len(m) / len(frame),
            "revenue": float(m.monetary_total.sum()), "clv": float(m.clv.sum())}


def form(rows: list[dict[str, str]], combine: str = "all", name: str = "", **extra: str
         ) -> dict[str, Any]:
    """The builder form's fields for ``rows`` (parallel lists, as the browser posts them)."""
    data: dict[str, Any] = {k: [r.get(k, "") for r in rows] for k in ROW_INPUTS}
    data.update(combine=combine, name=name, description="", source="rules", yaml="")
    data.update(extra)
    return data


def post(c: TestClient, path: str, data: dict[str, Any], **kw: Any) -> Any:
    return c.post(path, data={**data, "csrf_token": csrf(c, "/segments/new")}, **kw)


def count_of(html: str) -> int:
    m = re.search(r'id="preview-count" data-count="(\d+)"', html)
    assert m, html[:2000]
    return int(m.group(1))


def attr(html: str, name: str) -> float:
    m = re.search(rf'data-{name}="([^"]*)"', html)
    assert m, name
    return float(m.group(1))


# -- preview against pandas ----------------------------------------------------------------


def cases(frame: pd.DataFrame, ws: Workspace, as_of: pd.Timestamp
          ) -> list[tuple[list[dict[str, str]], str, pd.Series]]:
    f = frame
    return [
        ([{"kind": "field", "field": "city", "op": "=", "value": "上海"}], "all",
         f.city == "上海"),
        ([{"kind": "field", "field": "city", "op": "in", "value": "北京，广州"}], "all",
         f.city.isin(["北京", "广州"])),
        ([{"kind": "field", "field": "clv", "op": ">=", "value": "200"},
          {"kind": "field", "field": "tier", "op": "in", "value": "gold, diamond"}], "all",
         (f.clv >= 200) & f.tier.isin(["gold", "diamond"])),
        ([{"kind": "field", "field": "rfm_class", "op": "=", "value": "important_value"},
          {"kind": "field", "field": "p_alive", "op": "<", "value": "0.2"}], "any",
         (f.rfm_class == "important_value") | (f.p_alive < 0.2).fillna(False)),
        ([{"kind": "field", "field": "attr_是否实名", "op": "=", "value": "true"},
          {"kind": "field", "field": "attr_月收入", "op": "between", "value": "5000, 12000"}],
         "all", (f["attr_是否实名"] == True) & f["attr_月收入"].between(5000, 12000)),  # noqa: E712
        ([{"kind": "bought", "target": "category", "item": "母婴", "days": "180"},
          {"kind": "no_contact", "days": "60"}], "all",
         f.index.isin(buyers(ws, as_of, "母婴", 180))
         & ~f.index.isin(contacted(ws, as_of, 60))),
    ]


def test_preview_count_and_value_equal_pandas(ann: TestClient, ws: Workspace,
                                              frame: pd.DataFrame, as_of: pd.Timestamp
                                              ) -> None:
    for rows, combine, mask in cases(frame, ws, as_of):
        want = expected(frame, mask)
        assert 0 < want["size"] < len(frame), rows  # each case selects some, not all
        r = post(ann, "/segments/preview", form(rows, combine), headers={"HX-Request": "true"})
        assert r.status_code == 200, (rows, r.text[:500])
        assert count_of(r.text) == want["size"], rows
        assert attr(r.text, "share") == pytest.approx(want["share"])
        assert attr(r.text, "revenue") == pytest.approx(want["revenue"])
        assert attr(r.text, "clv") == pytest.approx(want["clv"])
        # the API, given the YAML the preview wrote back into the textarea, agrees
        m = re.search(r'<textarea name="yaml" id="segment-yaml"[^>]*hx-swap-oob="true">(.*?)'
                      r"</textarea>", r.text, re.S)
        assert m, "the preview updates the YAML"
        spec = yaml.safe_load(unescape(m.group(1)))
        j = ann.post("/api/v1/segments/preview", json={"rule": spec["rule"]},
                     headers={"X-CSRF-Token": csrf(ann, "/segments/new")})
        assert j.status_code == 200, j.text
        assert j.json()["size"] == want["size"]
        assert j.json()["revenue"] == pytest.approx(want["revenue"])


def test_preview_breakdown_by_tier_and_rfm_class(ann: TestClient, frame: pd.DataFrame) -> None:
    rows = [{"kind": "field", "field": "clv", "op": ">", "value": "100"}]
    r = post(ann, "/segments/preview", form(rows))
    m = frame[frame.clv > 100]
    for col in ("tier", "rfm_class"):
        table = re.search(rf'<table class="data" data-breakdown="{col}">(.*?)</table>', r.text,
                          re.S)
        assert table, col
        got = {k: int(n) for k, n in re.findall(
            r'<tr data-key="([^"]*)">.*?data-customers="(\d+)"', table.group(1), re.S)}
        assert got == m[col].value_counts().to_dict()
    assert 'data-echarts="seg-chart-tier"' in r.text and 'data-echarts="seg-chart-rfm_class"' \
        in r.text
    body = ann.post("/api/v1/segments/preview", headers={"X-CSRF-Token": csrf(ann, "/segments")},
                    json={"rule": {"field": "clv", "op": ">", "value": 100}}).json()
    assert {g["key"]: g["customers"] for g in body["breakdown"]["tier"]} == \
        m.tier.value_counts().to_dict()
    rev = m.groupby("tier").monetary_total.sum()
    for g in body["breakdown"]["tier"]:
        assert g["revenue"] == pytest.approx(rev[g["key"]])


def test_rows_and_yaml_give_the_same_spec(ann: TestClient, ws: Workspace) -> None:
    rows = [{"kind": "field", "field": "city", "op": "in", "value": "上海, 杭州"},
            {"kind": "field", "field": "clv", "op": ">=", "value": "150.5"},
            {"kind": "not_bought", "target": "category", "item": "数码", "days": "90"},
            {"kind": "no_contact", "days": "30", "channel": "sms"}]
    written = """
name: 两种写法
rule:
  any:
    - {field: city, op: in, value: [上海, 杭州]}
    - {field: clv, op: ">=", value: 150.5}
    - not_bought: {category: 数码, within_days: 90}
    - no_contact: {within_days: 30, channel: sms}
"""
    r1 = post(ann, "/segments/save", form(rows, "any", name="两种写法"), follow_redirects=False)
    assert r1.status_code == 303, r1.text[:1000]
    by_rows = get_saved(ws.store, "两种写法").parsed()
    r2 = post(ann, "/segments/save", form([], name="", source="yaml",
                                          yaml=written.replace("两种写法", "两种写法-yaml")),
              follow_redirects=False)
    assert r2.status_code == 303, r2.text[:1000]
    by_yaml = get_saved(ws.store, "两种写法-yaml").parsed()
    assert by_rows.model_copy(update={"name": "x"}) == by_yaml.model_copy(update={"name": "x"})
    assert by_rows == from_yaml(written)
    # a YAML edit that the rows can show comes back as rows (out of band)
    r = post(ann, "/segments/preview", form([], source="yaml", yaml=written))
    assert r.status_code == 200
    assert 'id="segment-rules" hx-swap-oob="true"' in r.text
    assert re.search(r'name="value" id="rule-value-0"[^>]*value="上海, 杭州"', r.text)
    assert 'id="segment-name" value="两种写法"' in r.text
    assert Builder.from_spec(by_rows) is not None
    # a nested rule cannot be shown as rows: the page says so and keeps the YAML
    nested = "name: n\nrule:\n  all:\n    - not: {field: city, op: '=', value: 上海}\n"
    r = post(ann, "/segments/preview", form([], source="yaml", yaml=nested))
    assert r.status_code == 200 and 'id="segment-complex"' in r.text


def test_bad_rules_are_422_naming_the_field(ann: TestClient, ws: Workspace) -> None:
    rows = [{"kind": "field", "field": "city", "op": "=", "value": "上海"},
            {"kind": "field", "field": "clv", "op": ">=", "value": "lots"}]
    r = post(ann, "/segments/preview", form(rows))
    assert r.status_code == 422 and r.headers["X-Segment-Valid"] == "false"
    # HTMX's live requests get the same messages with a 200 (no console error while typing)
    live = post(ann, "/segments/preview", form(rows), headers={"HX-Request": "true"})
    assert live.status_code == 200 and live.headers["X-Segment-Valid"] == "false"
    assert live.text == r.text
    err = re.search(r'id="row-error-1"[^>]*>([^<]*)<', r.text)
    assert err and "clv" in err.group(1) and "lots" in unescape(err.group(1))
    assert re.search(r'id="row-error-0"[^>]*></span>', r.text), "the good row has no message"
    # saving it re-renders the form (not an error page) with the message beside the row
    r = post(ann, "/segments/save", form(rows, name="坏规则"))
    assert r.status_code == 422 and 'id="segment-form"' in r.text
    assert re.search(r'id="row-error-1"[^>]*>[^<]*clv', r.text)
    assert "坏规则" not in [s.name for s in list_saved(ws.store)]
    # bought without a number of days; a YAML with a typo
    r = post(ann, "/segments/preview", form([{"kind": "bought", "item": "母婴", "days": "x"}]))
    assert r.status_code == 422 and "days" in r.text
    r = post(ann, "/segments/preview", form([], source="yaml",
                                            yaml="name: t\nrule: {feild: city, op: '=', value: a}"))
    assert r.status_code == 422 and "rule needs one of the keys" in r.text
    # the API: an unknown field, a wrong type, an unknown operator
    h = {"X-CSRF-Token": csrf(ann, "/segments")}
    for rule, names in [({"field": "nope", "op": "=", "value": 1}, "nope"),
                        ({"field": "signup_date", "op": ">", "value": "soon"}, "signup_date"),
                        ({"field": "city", "op": "~", "value": "a"}, "op")]:
        body = assert_problem(ann.post("/api/v1/segments/preview", json={"rule": rule},
                                       headers=h), 422)
        assert names in body["detail"]
    body = assert_problem(ann.put("/api/v1/segments/bad", headers=h, json={
        "rule": {"bought": {"category": "母婴", "within_days": 10**9}}}), 422)
    assert "within_days" in body["detail"]


# -- save, list, overwrite -------------------------------------------------------------------


def test_save_lists_it_in_the_page_and_the_service(ann: TestClient, ws: Workspace,
                                                   frame: pd.DataFrame) -> None:
    rows = [{"kind": "field", "field": "city", "op": "=", "value": "深圳"}]
    r = post(ann, "/segments/save", form(rows, name="深圳客户"), follow_redirects=False)
    assert r.status_code == 303
    page = ann.get(r.headers["location"])
    assert page.status_code == 200 and 'id="segment-saved"' in page.text
    assert count_of(page.text) == int((frame.city == "深圳").sum())
    listing = ann.get("/segments").text
    m = re.search(r'data-segment="深圳客户">.*?data-size="(\d+)"', listing, re.S)
    assert m and int(m.group(1)) == int((frame.city == "深圳").sum())
    # the app-store definition kehu segment save writes, which campaigns read
    d = sv.get_definition(ws.store, "segment", "深圳客户")
    assert evaluate(ws, SegmentSpec.parse(d.spec)).size == int((frame.city == "深圳").sum())
    assert "深圳客户" in [s.name for s in list_saved(ws.store)]
    audit = [(a.actor, a.action, a.object_id) for a in sv.audit_log(ws.store, limit=50)]
    assert ("ann", "create", "深圳客户") in audit


def test_overwrite_needs_confirmation_and_names_are_checked(ann: TestClient,
                                                            ws: Workspace) -> None:
    rows = [{"kind": "field", "field": "city", "op": "=", "value": "成都"}]
    assert post(ann, "/segments/save", form(rows, name="成都"),
                follow_redirects=False).status_code == 303
    other = [{"kind": "field", "field": "city", "op": "=", "value": "重庆"}]
    r = post(ann, "/segments/save", form(other, name="成都"), follow_redirects=False)
    assert r.status_code == 409 and 'id="segment-overwrite"' in r.text
    assert get_saved(ws.store, "成都").version == 1
    r = post(ann, "/segments/save", form(other, name="成都", overwrite="1"),
             follow_redirects=False)
    assert r.status_code == 303
    saved = get_saved(ws.store, "成都")
    assert saved.version == 2 and saved.parsed().rule.all[0].value == "重庆"  # type: ignore[union-attr]
    # editing a segment saves a new version without asking
    r = post(ann, "/segments/save", form(rows, name="成都", editing="成都"),
             follow_redirects=False)
    assert r.status_code == 303 and get_saved(ws.store, "成都").version == 3
    assert ("ann", "update", "成都") in [(a.actor, a.action, a.object_id)
                                          for a in sv.audit_log(ws.store, limit=20)]
    # a YAML without a name is not saved under a placeholder
    r = post(ann, "/segments/save", form([], source="yaml", yaml="rule: {field: city, op: '=', "
                                                                 "value: 成都}"))
    assert r.status_code == 422 and "needs a name" in r.text
    # "copy into a new segment" starts from the saved rules, without the name
    copy = ann.get("/segments/new", params={"from": "成都"}).text
    assert 'id="segment-name" value=""' in copy
    assert re.search(r'id="rule-value-0"[^>]*value="成都"', copy)
    for bad, says in [("", "needs a name"), ("new", "reserved"), ("a/b", "'/'")]:
        r = post(ann, "/segments/save", form(rows, name=bad))
        assert r.status_code == 422 and 'id="segment-name-error"' in r.text, bad
        assert says in unescape(r.text)


# -- compare and export ----------------------------------------------------------------------


def test_compare_matrix_equals_set_intersections(ann: TestClient, ws: Workspace,
                                                 frame: pd.DataFrame) -> None:
    h = bearer(ws, "ann")
    specs = {"cmp-上海": ({"field": "city", "op": "=", "value": "上海"}, frame.city == "上海"),
             "cmp-高价值": ({"field": "clv", "op": ">=", "value": 150}, frame.clv >= 150),
             "cmp-金卡": ({"field": "tier", "op": "in", "value": ["gold", "diamond"]},
                        frame.tier.isin(["gold", "diamond"]))}
    for name, (rule, _mask) in specs.items():
        r = ann.put(f"/api/v1/segments/{name}", json={"rule": rule}, headers=h)
        assert r.status_code == 201, r.text
    names = list(specs)
    r = ann.get("/segments/compare", params={"names": names})
    assert r.status_code == 200
    table = re.search(r'<table class="data" id="overlap-matrix">(.*?)</table>', r.text, re.S)
    assert table
    cells = [[int(v) for v in re.findall(r'data-both="(\d+)"', row)]
             for row in re.findall(r"<tr><th scope=\"row\">.*?</tr>", table.group(1), re.S)]
    sets = {n: set(frame.index[m.fillna(False).astype(bool)]) for n, (_r, m) in specs.items()}
    assert cells == [[len(sets[a] & sets[b]) for b in names] for a in names]
    assert 'data-echarts="seg-overlap-chart"' in r.text and '"heatmap"' in r.text
    # each segment's size and CLV, and its customers by tier, against pandas
    values = re.search(r'<table class="data" id="segment-values">(.*?)</table>', r.text, re.S)
    assert values
    for name in names:
        members = frame.loc[sorted(sets[name])]
        row = re.search(rf'<tr data-segment="{name}">(.*?)</tr>', values.group(1), re.S)
        assert row, name
        nums = re.findall(r'<td class="num">([^<]*)</td>', row.group(1))
        assert nums[0] == f"{len(members):,}"
        assert nums[3] == f"¥{members.clv.sum():,.0f}"
    mix = re.search(r'<table class="data" data-mix="tier">(.*?)</table>', r.text, re.S)
    assert mix
    heads = re.findall(r'<th scope="col" class="num">([^<]*)</th>', mix.group(1))
    tier_names = {"diamond": "Diamond", "gold": "Gold", "silver": "Silver",
                  "regular": "Regular"}
    got_rows = re.findall(r'<tr><th scope="row">([^<]*)</th>(.*?)</tr>', mix.group(1), re.S)
    assert [n for n, _ in got_rows] == names
    for name, cells in got_rows:
        counts = frame.loc[sorted(sets[name])].tier.value_counts()
        got = dict(zip(heads, (int(v.replace(",", "")) for v in
                               re.findall(r'<td class="num">([\d,]+)', cells)), strict=True))
        assert got == {tier_names[t]: int(counts.get(t, 0)) for t in tier_names
                       if tier_names[t] in heads}, name
        assert sum(got.values()) == len(sets[name])
    assert 'data-echarts="seg-mix-tier"' in r.text and 'data-mix="rfm_class"' in r.text
    # fewer than two: a form to pick them
    r = ann.get("/segments/compare", params={"names": names[:1]})
    assert r.status_code == 200 and "overlap-matrix" not in r.text
    assert ann.get("/segments/compare", params={"names": ["cmp-上海", "无此细分"]}).status_code \
        == 404


def test_export_csv_and_xlsx_with_chinese_headers(ann: TestClient, ws: Workspace,
                                                  frame: pd.DataFrame) -> None:
    h = bearer(ws, "ann")
    assert ann.put("/api/v1/segments/导出测试", headers=h, json={
        "rule": {"field": "city", "op": "=", "value": "广州"}}).status_code in (200, 201)
    want = set(frame.index[frame.city == "广州"])
    r = ann.get("/segments/导出测试/export", params={"format": "csv"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert "filename*=UTF-8''%E5%AF%BC" in r.headers["content-disposition"]
    assert r.content.startswith(b"\xef\xbb\xbf")
    df = pd.read_csv(io.BytesIO(r.content), encoding="utf-8-sig", dtype=str)
    assert {"客户编号", "姓名", "手机号码", "城市", "价值等级", "客户终身价值"} <= set(df.columns)
    assert set(df["客户编号"]) == want and set(df["城市"]) == {"广州"}
    r = ann.get("/segments/导出测试/export", params={"format": "xlsx"})
    assert r.status_code == 200
    sheet = openpyxl.load_workbook(io.BytesIO(r.content)).active
    got = list(sheet.iter_rows(values_only=True))
    assert got[0][0] == "客户编号" and {str(row[0]) for row in got[1:]} == want
    exports = [a for a in sv.audit_log(ws.store, limit=20)
               if a.action == "export" and a.object_id == "导出测试"]
    assert len(exports) == 2 and exports[0].actor == "ann"
    assert {e.details["format"] for e in exports} == {"csv", "xlsx"}  # type: ignore[index]
    assert all(e.details["rows"] == len(want) for e in exports)  # type: ignore[index]
    assert ann.get("/segments/导出测试/export", params={"format": "pdf"}).status_code == 422


# -- the API ---------------------------------------------------------------------------------


def test_api_get_list_members_and_delete(app: FastAPI, ws: Workspace,
                                         frame: pd.DataFrame) -> None:
    c = TestClient(app)
    h = bearer(ws, "ann")
    rule = {"all": [{"field": "city", "op": "=", "value": "北京"},
                    {"field": "clv", "op": ">", "value": 50}]}
    r = c.put("/api/v1/segments/api-北京", json={"rule": rule, "description": "d"}, headers=h)
    assert r.status_code == 201 and r.json() == {"name": "api-北京", "version": 1,
                                                 "created": True}
    r = c.put("/api/v1/segments/api-北京", json={"rule": rule, "name": "api-北京"}, headers=h)
    assert r.status_code == 200 and r.json()["version"] == 2
    assert_problem(c.put("/api/v1/segments/api-北京", json={"rule": rule, "name": "x"},
                         headers=h), 422)
    mask = (frame.city == "北京") & (frame.clv > 50)
    one = c.get("/api/v1/segments/api-北京", headers=h).json()
    assert one["spec"]["rule"] == rule and one["value"]["size"] == int(mask.sum())
    assert one["value"]["clv"] == pytest.approx(frame[mask].clv.sum())
    listing = c.get("/api/v1/segments", params={"page_size": 100}, headers=h).json()
    assert "api-北京" in [x["name"] for x in listing["rows"]]
    assert listing["total"] == len(list_saved(ws.store))
    ids: list[str] = []
    page = 1
    while True:
        p = c.get("/api/v1/segments/api-北京/members",
                  params={"page": page, "page_size": 40}, headers=h).json()
        assert p["total"] == int(mask.sum())
        ids += p["customer_ids"]
        if page >= p["pages"]:
            break
        page += 1
    assert ids == sorted(frame.index[mask])
    assert c.get("/api/v1/segments/api-北京/members", params={"page": 10**6},
                 headers=h).json()["customer_ids"] == []
    assert_problem(c.get("/api/v1/segments/无此细分", headers=h), 404)
    # deleting: refused while a campaign names it as its audience, then audited
    sv.save_definition(ws.store, sv.DefinitionIn(kind="campaign", name="用它的活动", spec={
        "audience": {"segment": "api-北京"}}), "test")
    body = assert_problem(c.delete("/api/v1/segments/api-北京", headers=h), 409)
    assert "用它的活动" in body["detail"]
    sv.save_definition(ws.store, sv.DefinitionIn(kind="campaign", name="用它的活动", spec={
        "audience": {"segment": "别的"}}), "test")
    assert c.delete("/api/v1/segments/api-北京", headers=h).status_code == 204
    assert_problem(c.get("/api/v1/segments/api-北京", headers=h), 404)
    assert_problem(c.delete("/api/v1/segments/api-北京", headers=h), 404)
    assert ("ann (token)", "delete", "api-北京") in [
        (a.actor, a.action, a.object_id) for a in sv.audit_log(ws.store, limit=20)]


def test_api_refuses_out_of_range_input_without_server_errors(app: FastAPI,
                                                               ws: Workspace) -> None:
    c = TestClient(app)
    h = bearer(ws, "ann")
    for body in [{"rule": {"no_contact": {"within_days": 5}}, "as_of": "0001-01-02"},
                 {"rule": {"field": "attr_月收入", "op": "=", "value": 10**30}},
                 {"rule": {"field": "clv", "op": "=", "value": 10**400}},
                 {"rule": {"field": "city", "op": "contains", "value": "a\x00b"}},
                 {"rule": {}}, {"rule": {"field": "city", "op": "in", "value": "x"}}]:
        assert_problem(c.post("/api/v1/segments/preview", json=body, headers=h), 422)
    for page in (0, 10**10):
        assert_problem(c.get("/api/v1/segments", params={"page": page}, headers=h), 422)


# -- roles, CSRF, language ------------------------------------------------------------------


def test_roles(app: FastAPI, ws: Workspace) -> None:
    rule = {"rule": {"field": "city", "op": "=", "value": "上海"}}
    assert TestClient(app).put("/api/v1/segments/角色", json=rule,
                               headers=bearer(ws, "ada")).status_code == 201
    pages = ["/segments", "/segments/new", "/segments/角色", "/segments/compare",
             "/segments/角色/export"]
    for user in ("ada", "ann", "max"):
        c = signed_in(app, user)
        for p in pages:
            assert c.get(p).status_code == 200, (user, p)
        r = post(c, "/segments/preview", form([{"field": "city", "op": "=", "value": "上海"}]))
        assert r.status_code == 200, user
        api = bearer(ws, user)
        assert c.get("/api/v1/segments", headers=api).status_code == 200
        assert c.post("/api/v1/segments/preview", json=rule, headers=api).status_code == 200
        assert c.get("/api/v1/segments/角色/members", headers=api).status_code == 200
    max_ = signed_in(app, "max")
    assert 'id="segment-save"' not in max_.get("/segments/new").text
    assert 'id="segment-save"' in signed_in(app, "ann").get("/segments/new").text
    assert_problem(max_.put("/api/v1/segments/角色2", json=rule, headers=bearer(ws, "max")), 403)
    assert_problem(max_.delete("/api/v1/segments/角色", headers=bearer(ws, "max")), 403)
    r = post(max_, "/segments/save", form([{"field": "city", "op": "=", "value": "上海"}],
                                          name="经理的"))
    assert r.status_code == 403
    assert post(max_, "/segments/角色/delete", {}).status_code == 403
    for user in ("amy", "vic"):
        c = signed_in(app, user)
        for p in pages:
            assert c.get(p).status_code == 403, (user, p)
        assert post(c, "/segments/preview", form([])).status_code == 403
        api = bearer(ws, user)
        assert_problem(c.get("/api/v1/segments", headers=api), 403)
        assert_problem(c.post("/api/v1/segments/preview", json=rule, headers=api), 403)
        assert_problem(c.get("/api/v1/segments/角色", headers=api), 403)
        assert_problem(c.get("/api/v1/segments/角色/members", headers=api), 403)
    anon = TestClient(app)
    for p in pages:
        r = anon.get(p, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/login"), p
    assert_problem(anon.get("/api/v1/segments"), 401)
    assert_problem(anon.get("/api/v1/segments/角色/members"), 401)
    assert "角色" in [s.name for s in list_saved(ws.store)]


def test_writes_need_the_csrf_token(app: FastAPI, ws: Workspace) -> None:
    c = signed_in(app, "ann")
    data = form([{"field": "city", "op": "=", "value": "上海"}], name="无令牌")
    for path in ("/segments/preview", "/segments/save"):
        assert c.post(path, data=data).status_code == 403, path
    assert c.put("/api/v1/segments/无令牌", json={
        "rule": {"field": "city", "op": "=", "value": "上海"}}).status_code == 403
    assert "无令牌" not in [s.name for s in list_saved(ws.store)]
    # a bearer token needs none
    assert c.put("/api/v1/segments/有令牌", headers=bearer(ws, "ann"), json={
        "rule": {"field": "city", "op": "=", "value": "上海"}}).status_code == 201


def test_delete_page_is_audited(ann: TestClient, ws: Workspace) -> None:
    assert post(ann, "/segments/save", form([{"field": "city", "op": "=", "value": "西安"}],
                                            name="待删除"), follow_redirects=False
                ).status_code == 303
    page = ann.get("/segments/待删除").text
    assert 'id="segment-delete"' in page and 'class="inline seg-delete"' in page
    r = post(ann, "/segments/待删除/delete", {}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/segments?deleted=")
    assert "待删除" not in [s.name for s in list_saved(ws.store)]
    assert ("ann", "delete", "待删除") in [(a.actor, a.action, a.object_id)
                                          for a in sv.audit_log(ws.store, limit=20)]


def test_zh_cn_pages(ann: TestClient, ws: Workspace, frame: pd.DataFrame) -> None:
    h = bearer(ws, "ann")
    ann.put("/api/v1/segments/中文页面", headers=h,
            json={"rule": {"field": "city", "op": "=", "value": "上海"}})
    size = int((frame.city == "上海").sum())
    for path in ("/segments", "/segments/中文页面", "/segments/new"):
        r = ann.get(path, params={"lang": "zh_CN"})
        assert r.status_code == 200, path
        assert '<html lang="zh-CN">' in r.text
    listing = ann.get("/segments", params={"lang": "zh_CN"}).text
    assert "客户终身价值" in listing and "收入" in listing  # CLV and Revenue, translated
    assert f">{size:,}<" in listing and "中文页面" in listing
