"""The explorer (OLAP) page, its export and the cube API (issue 6), on one demo workspace
(3,000 customers, one analysis run): pivot cells and totals against pandas over the
warehouse tables, drill down and back up, exports equal to the table, problem+json errors,
roles, the audit log and the Chinese page."""

from __future__ import annotations

import csv
import html
import io
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import numpy as np
import openpyxl
import pandas as pd
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from kehu.analytics.cube import DIMENSIONS, CubeQuery, Filter, cube
from kehu.analytics.run import SCORES_TABLE
from kehu.explorer import ExplorerView
from kehu.explorer.labels import MEASURES
from kehu.i18n import catalogue
from kehu.store.services import audit_log
from kehu.workspace import Workspace
from web_support import assert_problem, bearer, csrf, demo_workspace, signed_in, web_app

# -- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    w = demo_workspace(tmp_path_factory.mktemp("explorer"))
    yield w
    w.close()


@pytest.fixture(scope="module")
def app(ws: Workspace) -> Iterator[FastAPI]:
    application = web_app(ws)
    with TestClient(application):  # runs the lifespan once for the module
        yield application


@pytest.fixture(scope="module")
def ann(app: FastAPI) -> TestClient:
    return signed_in(app, "ann")


@pytest.fixture(scope="module")
def token(ws: Workspace, app: FastAPI) -> dict[str, str]:
    return bearer(ws, "ann")


@pytest.fixture(scope="module")
def facts(ws: Workspace) -> pd.DataFrame:
    """Every transaction line with its customer's region and tier (latest run) and its
    product's category — built with pandas, independently of the cube."""
    r = ws.warehouse.read
    tx = r("transactions").to_pandas()
    cust = r("customers", ["customer_id", "region"]).to_pandas()
    sc = r(SCORES_TABLE).to_pandas()
    sc = sc[sc.run_id == sc.run_id.max()][["customer_id", "tier"]]
    prods = r("products", ["product_id", "category", "subcategory"]).to_pandas()
    df = tx.merge(cust, on="customer_id", how="left", suffixes=("_tx", "")) \
        .merge(sc, on="customer_id", how="left").merge(prods, on="product_id", how="left")
    ts = df.transaction_time
    df["year"] = ts.dt.year.astype(str)
    df["quarter"] = df.year + "-Q" + ts.dt.quarter.astype(str)
    df["month"] = ts.dt.strftime("%Y-%m")
    return df


@pytest.fixture(scope="module")
def scores(ws: Workspace) -> pd.DataFrame:
    sc = ws.warehouse.read(SCORES_TABLE).to_pandas()
    return sc[sc.run_id == sc.run_id.max()]


# -- reading the page ---------------------------------------------------------------------------

Cell = float | None


def _num(v: str) -> Cell:
    return None if v == "" else float(v)


def pivot_table(page: str) -> dict[str, Any]:
    """The pivot table of a page: column keys, row keys, cells by (row, col), the totals
    column by row, the totals row by column and the grand total (raw values, ``data-v``)."""
    m = re.search(r'<table class="data pivot".*?</table>', page, re.S)
    assert m, "no pivot table"
    table = m.group(0)
    head = re.search(r"<thead>(.*?)</thead>", table, re.S).group(1)  # type: ignore[union-attr]
    cols = re.findall(r'<th scope="col" class="num" data-key="([^"]*)"', head)
    cols = [html.unescape(c) for c in cols]
    body = re.search(r"<tbody>(.*?)</tbody>", table, re.S).group(1)  # type: ignore[union-attr]
    rows, cells, row_totals = [], {}, {}
    for tr in re.findall(r"<tr>(.*?)</tr>", body, re.S):
        key = re.search(r'<th scope="row" data-key="([^"]*)"', tr)
        if not key:
            continue
        rk = html.unescape(key.group(1))
        rows.append(rk)
        values = [_num(v) for v in re.findall(r'data-v="([^"]*)"', tr)]
        if cols:
            cells.update({(rk, c): v for c, v in zip(cols, values[:-1], strict=True)})
            row_totals[rk] = values[-1]
        else:
            cells.update({(rk, i): v for i, v in enumerate(values)})
    foot = re.search(r"<tfoot>(.*?)</tfoot>", table, re.S)
    totals = [_num(v) for v in re.findall(r'data-v="([^"]*)"', foot.group(1))] if foot else []
    return {"cols": cols, "rows": rows, "cells": cells, "row_totals": row_totals,
            "col_totals": dict(zip(cols, totals[:-1], strict=False)) if cols else {},
            "grand": totals[-1] if totals else None, "totals": totals}


def row_links(page: str) -> dict[str, str]:
    """Row key -> the drill-down URL of its heading."""
    found = re.findall(r'<th scope="row" data-key="([^"]*)"><a href="([^"]+)"', page)
    return {html.unescape(k): html.unescape(h) for k, h in found}


def crumb_links(page: str) -> list[tuple[str, str]]:
    nav = re.search(r'<nav class="crumbs".*?</nav>', page, re.S)
    if not nav:
        return []
    return [(html.unescape(h), html.unescape(t))
            for h, t in re.findall(r'<a href="([^"]+)">([^<]+)</a>', nav.group(0))]


def query_of(url: str) -> list[tuple[str, str]]:
    return parse_qsl(urlsplit(url).query)


# -- pivot cells equal pandas -------------------------------------------------------------------


def test_revenue_by_year_and_region_equals_pandas(ann: TestClient, facts: pd.DataFrame) -> None:
    r = ann.get("/explorer", params={"m": "revenue", "rows": "year", "cols": "region"})
    assert r.status_code == 200, r.text
    t = pivot_table(r.text)
    exp = facts.groupby(["year", "region"]).amount.sum()
    assert t["rows"] == sorted(facts.year.unique())  # time in order
    assert set(t["cols"]) == set(facts.region.dropna().unique())
    for (y, reg), v in exp.items():
        np.testing.assert_allclose(t["cells"][(y, reg)], v, rtol=1e-9)
    for y, v in facts.groupby("year").amount.sum().items():
        np.testing.assert_allclose(t["row_totals"][y], v, rtol=1e-9)
    for reg, v in facts.groupby("region").amount.sum().items():
        np.testing.assert_allclose(t["col_totals"][reg], v, rtol=1e-9)
    np.testing.assert_allclose(t["grand"], facts.amount.sum(), rtol=1e-9)


def test_buyers_by_tier_and_channel_totals_are_distinct_counts(ann: TestClient,
                                                               facts: pd.DataFrame) -> None:
    """Buyers do not add up across channels: the totals are the cube's own distinct counts."""
    r = ann.get("/explorer", params=[("m", "revenue"), ("m", "buyers"), ("rows", "tier"),
                                     ("cols", "channel"), ("show", "buyers")])
    assert r.status_code == 200, r.text
    t = pivot_table(r.text)
    assert t["rows"][:4] == ["diamond", "gold", "silver", "regular"]  # the scheme's order
    exp = facts.groupby(["tier", "channel"]).customer_id.nunique()
    assert {k: int(v) for k, v in exp.items()} == \
        {k: int(v) for k, v in t["cells"].items() if v is not None}
    by_tier = facts.groupby("tier").customer_id.nunique()
    assert {k: int(v) for k, v in t["row_totals"].items()} == by_tier.to_dict()
    assert {k: int(v) for k, v in t["col_totals"].items()} == \
        facts.groupby("channel").customer_id.nunique().to_dict()
    assert t["grand"] == facts.customer_id.nunique() < sum(t["col_totals"].values())
    assert '"type": "heatmap"' in r.text  # a distinct count is not stacked


def test_customer_measures_by_lifecycle_stage(ann: TestClient, scores: pd.DataFrame) -> None:
    r = ann.get("/explorer", params=[("m", "customers"), ("m", "clv"),
                                     ("rows", "lifecycle_stage")])
    assert r.status_code == 200, r.text
    t = pivot_table(r.text)
    n = scores.groupby("lifecycle_stage").customer_id.count()
    clv = scores.groupby("lifecycle_stage").clv.sum(min_count=1)
    assert set(t["rows"]) == set(n.index)
    for stage in n.index:
        assert t["cells"][(stage, 0)] == n[stage]
        if pd.notna(clv[stage]):
            np.testing.assert_allclose(t["cells"][(stage, 1)], clv[stage], rtol=1e-9)
    assert t["totals"][0] == len(scores)
    assert '"type": "bar"' in r.text and 'data-echarts="explorer-chart"' in r.text


def test_date_range_filters_transactions(ann: TestClient, facts: pd.DataFrame) -> None:
    r = ann.get("/explorer", params={"m": "margin", "rows": "category", "from": "2024-03-01",
                                     "to": "2024-08-31"})
    t = pivot_table(r.text)
    day = facts.transaction_time.dt.strftime("%Y-%m-%d")
    f = facts[(day >= "2024-03-01") & (day <= "2024-08-31")]
    exp = (f.amount - f.cost.fillna(0)).groupby(f.category).sum()
    for cat, v in exp.items():
        np.testing.assert_allclose(t["cells"][(cat, 0)], v, rtol=1e-9)
    ordered = [t["cells"][(c, 0)] for c in t["rows"]]
    assert ordered == sorted(ordered, reverse=True)  # non-time dimensions: largest first


# -- drill down and up --------------------------------------------------------------------------


def test_drill_down_adds_the_filter_and_moves_to_the_next_level(ann: TestClient,
                                                                facts: pd.DataFrame) -> None:
    page = ann.get("/explorer", params={"m": "revenue", "rows": "year"}).text
    assert crumb_links(page) == []
    year = sorted(facts.year.unique())[1]
    down = row_links(page)[year]
    assert ("rows", "quarter") in query_of(down) and ("f", f"year={year}") in query_of(down)

    page = ann.get(down).text
    t = pivot_table(page)
    in_year = facts[facts.year == year]
    assert t["rows"] == sorted(in_year.quarter.unique())
    for q, v in in_year.groupby("quarter").amount.sum().items():
        np.testing.assert_allclose(t["cells"][(q, 0)], v, rtol=1e-9)
    np.testing.assert_allclose(t["totals"][0], in_year.amount.sum(), rtol=1e-9)

    quarter = t["rows"][1]
    page = ann.get(row_links(page)[quarter]).text
    t = pivot_table(page)
    in_q = facts[facts.quarter == quarter]
    assert t["rows"] == sorted(in_q.month.unique()) and len(t["rows"]) == 3
    assert row_links(page) == {}  # months are the bottom of the hierarchy
    crumbs = crumb_links(page)
    assert [label for _h, label in crumbs] == ["Year: All", f"Year: {year}",
                                               f"Quarter: {quarter}"]
    # back up one level: quarters of the year, the quarter filter gone
    up = query_of(crumbs[1][0])
    assert ("rows", "quarter") in up and ("f", f"year={year}") in up
    assert not any(v.startswith("quarter=") for _k, v in up)
    # back to the top: every year, no time filter
    top = ann.get(crumbs[0][0]).text
    assert pivot_table(top)["rows"] == sorted(facts.year.unique())
    assert 'name="f"' not in top


def test_drill_on_the_columns_and_htmx_partial(ann: TestClient, facts: pd.DataFrame) -> None:
    r = ann.get("/explorer", params={"m": "revenue", "rows": "tier", "cols": "category"},
                headers={"HX-Request": "true"})
    assert r.status_code == 200 and "<html" not in r.text and "<form" in r.text
    assert r.headers["HX-Push-Url"] == "/explorer?m=revenue&rows=tier&cols=category"
    heads = dict(re.findall(r'<th scope="col" class="num" data-key="([^"]*)"><a href="([^"]+)"',
                            r.text))
    cat = sorted(heads)[0]
    q = query_of(html.unescape(heads[cat]))
    assert ("cols", "subcategory") in q and ("f", f"category={cat}") in q
    t = pivot_table(ann.get(html.unescape(heads[cat])).text)
    sub = facts[facts.category == cat]
    assert set(t["cols"]) == set(sub.subcategory.unique())
    np.testing.assert_allclose(t["grand"], sub.amount.sum(), rtol=1e-9)


def test_filters_from_the_form_add_and_remove(ann: TestClient, facts: pd.DataFrame) -> None:
    # choosing a dimension lists its values; choosing a value adds the filter
    page = ann.get("/explorer", params={"m": "revenue", "rows": "year", "fd": "region"}).text
    values = re.findall(r'<select name="fv">(.*?)</select>', page, re.S)[0]
    region = sorted(facts.region.dropna().unique())[0]
    assert f'<option value="{region}">' in values
    r = ann.get("/explorer", params={"m": "revenue", "rows": "year", "fd": "region",
                                     "fv": region}, headers={"HX-Request": "true"})
    assert r.headers["HX-Push-Url"] == "/explorer?" + urlencode(
        [("m", "revenue"), ("rows", "year"), ("f", f"region={region}")])
    assert f'name="f" value="region={region}" checked' in r.text
    t = pivot_table(r.text)
    exp = facts[facts.region == region].groupby("year").amount.sum()
    for y, v in exp.items():
        np.testing.assert_allclose(t["cells"][(y, 0)], v, rtol=1e-9)


def test_bad_views_rerender_the_form_with_a_422(ann: TestClient) -> None:
    r = ann.get("/explorer", params={"m": "bogus", "rows": "year"})
    assert r.status_code == 422
    assert "bogus" in r.text and "avg_order_value" in r.text and "<form" in r.text
    r = ann.get("/explorer", params={"m": "clv", "rows": "month"},
                headers={"HX-Request": "true"})
    assert r.status_code == 422 and "<html" not in r.text
    assert re.search(r'class="error" role="alert">[^<]*month', r.text)
    assert 'value="clv" checked' in r.text  # the form keeps what was asked
    for params in ({"rows": "year", "cols": "year"}, {"rows": "nowhere"},
                   {"from": "2024-13-01"}, {"from": "2024-06-01", "to": "2024-01-01"},
                   {"f": "region"}, {"f": "region=\x01"}):
        r = ann.get("/explorer", params=params)
        assert r.status_code == 422, params
        assert 'class="error" role="alert"' in r.text


def test_page_has_no_inline_script(ann: TestClient) -> None:
    r = ann.get("/explorer")
    page = r.text
    assert "onclick" not in page and "<script>" not in page
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert re.search(r'<script src="[^"]*/static/explorer.js" defer>', page)
    assert "htmx:beforeSwap" in ann.get("/static/explorer.js").text
    assert ann.get("/static/explorer.css").status_code == 200


# -- export -------------------------------------------------------------------------------------

VIEW = [("m", "revenue"), ("m", "buyers"), ("rows", "tier"), ("cols", "channel"),
        ("show", "buyers"), ("f", "year=2024")]


def _csv(body: bytes) -> list[list[str]]:
    assert body.startswith(b"\xef\xbb\xbf")
    return list(csv.reader(io.StringIO(body[3:].decode("utf-8"))))


def test_csv_export_equals_the_table_and_is_audited(ann: TestClient, ws: Workspace) -> None:
    t = pivot_table(ann.get("/explorer", params=VIEW).text)
    r = ann.get("/explorer/export", params=[*VIEW, ("format", "csv")])
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    rows = _csv(r.content)
    assert rows[0][0] == "Tier \\ Channel" and rows[0][-1] == "Total"
    assert len(rows) == len(t["rows"]) + 2 and len(rows[0]) == len(t["cols"]) + 2
    for i, rk in enumerate(t["rows"], start=1):
        got = [float(v) if v else None for v in rows[i][1:]]
        assert got == [t["cells"][(rk, c)] for c in t["cols"]] + [t["row_totals"][rk]]
    assert [float(v) for v in rows[-1][1:]] == t["totals"]
    entry = audit_log(ws.store, limit=1)[0]
    assert (entry.actor, entry.action, entry.object_type) == ("ann", "export", "cube")
    assert entry.details and entry.details["format"] == "csv"
    assert entry.details["view"]["where"] == {"year": ["2024"]}


def test_csv_export_has_chinese_headers_in_zh_cn(ann: TestClient) -> None:
    zh = catalogue("zh_CN")
    rows = _csv(ann.get("/explorer/export", params=[("m", "revenue"), ("m", "margin"),
                                                    ("rows", "region"), ("format", "csv"),
                                                    ("lang", "zh_CN")]).content)
    assert rows[0] == [zh["Region"], zh["Revenue"], zh["Margin"]] == ["地区", "收入", "毛利"]
    assert rows[-1][0] == zh["Total"] == "合计"


def test_xlsx_export_equals_the_csv(ann: TestClient, ws: Workspace) -> None:
    before = len(audit_log(ws.store, limit=1000))
    r = ann.get("/explorer/export", params=[*VIEW, ("format", "xlsx")])
    assert r.status_code == 200 and r.headers["content-type"].startswith(
        "application/vnd.openxmlformats")
    sheet = openpyxl.load_workbook(io.BytesIO(r.content)).active
    assert sheet is not None
    got = [["" if v is None else v for v in row] for row in sheet.iter_rows(values_only=True)]
    want = _csv(ann.get("/explorer/export", params=[*VIEW, ("format", "csv")]).content)
    assert [[str(v) for v in row] for row in got] == want
    assert len(audit_log(ws.store, limit=1000)) == before + 2
    assert ann.get("/explorer/export", params=[*VIEW, ("format", "pdf")]).status_code == 422


# -- the API ------------------------------------------------------------------------------------


def test_api_cube_equals_the_cube_service_and_pandas(ann: TestClient, token: dict[str, str],
                                                     ws: Workspace, facts: pd.DataFrame) -> None:
    body = {"measures": ["revenue", "orders"], "by": ["year", "category"],
            "where": [{"dimension": "tier", "values": ["gold", "diamond"]}]}
    r = ann.post("/api/v1/cube", json=body, headers=token)
    assert r.status_code == 200, r.text
    out = r.json()
    assert [c["name"] for c in out["columns"]] == ["year", "category", "revenue", "orders"]
    assert [c["role"] for c in out["columns"]] == ["dimension"] * 2 + ["measure"] * 2
    assert out["truncated"] is False
    service = cube(ws.engine, CubeQuery(measures=["revenue", "orders"], by=["year", "category"],
                                        where=[Filter(dimension="tier",
                                                      values=["gold", "diamond"])]))
    assert out["rows"] == [list(r.values()) for r in service.to_pyarrow().to_pylist()]
    f = facts[facts.tier.isin(["gold", "diamond"])]
    exp = f.groupby(["year", "category"]).amount.sum()
    got = {(y, c): v for y, c, v, _o in out["rows"]}
    for k, v in exp.items():
        np.testing.assert_allclose(got[k], v, rtol=1e-9)
    capped = ann.post("/api/v1/cube?limit=5", json=body, headers=token).json()
    assert capped["rows"] == out["rows"][:5] and capped["truncated"] is True


def test_api_errors_are_problems_naming_the_field(ann: TestClient,
                                                  token: dict[str, str]) -> None:
    def post(body: dict[str, Any], **kw: Any) -> Any:
        return ann.post("/api/v1/cube", json=body, headers=token, **kw)

    p = assert_problem(post({"measures": ["revenue", "bogus"]}), 422)
    assert p["errors"][0]["loc"] == ["body", "measures", 1]
    assert "bogus" in p["detail"] and "avg_order_value" in p["detail"]
    p = assert_problem(post({"measures": ["revenue"], "by": ["planet"]}), 422)
    assert p["errors"][0]["loc"][:2] == ["body", "by"] and "customer_type" in p["detail"]
    p = assert_problem(post({"measures": ["revenue"],
                             "where": [{"dimension": "colour", "values": ["red"]}]}), 422)
    assert "where" in p["detail"] and "colour" in p["detail"]
    p = assert_problem(post({"measures": ["clv"], "by": ["month"]}), 422)
    assert "month" in p["detail"] and "clv" in p["detail"]
    p = assert_problem(post({"measures": ["revenue", "clv"]}), 422)
    assert "revenue" in p["detail"] and "clv" in p["detail"]
    p = assert_problem(post({"measures": ["revenue"],
                             "where": [{"dimension": "region", "values": ["a\x00b"]}]}), 422)
    assert "where" in p["detail"]
    assert_problem(post({"measures": ["revenue"], "by": ["year", "year"]}), 422)
    assert_problem(post({"measures": []}), 422)
    assert_problem(post({"measures": ["revenue"], "extra": 1}), 422)
    assert_problem(post({"measures": ["revenue"]}, params={"limit": 10**6}), 422)


def test_api_schema_in_chinese(ann: TestClient, token: dict[str, str]) -> None:
    r = ann.get("/api/v1/cube/schema", params={"lang": "zh_CN"}, headers=token)
    assert r.status_code == 200
    s = r.json()
    assert [m["name"] for m in s["measures"]] == list(MEASURES)
    assert {m["name"]: m["label"] for m in s["measures"]}["revenue"] == "收入"
    assert [d["name"] for d in s["dimensions"]] == list(DIMENSIONS)
    dims = {d["name"]: d for d in s["dimensions"]}
    assert dims["region"]["label"] == "地区" and dims["region"]["child"] == "city"
    assert dims["city"]["parent"] == "region"
    assert ["year", "quarter", "month"] in [h["levels"] for h in s["hierarchies"]]
    assert {m["name"]: m["additive"] for m in s["measures"]}["buyers"] is False


def test_api_post_with_a_session_needs_the_csrf_token(app: FastAPI) -> None:
    c = signed_in(app, "ann")
    assert c.post("/api/v1/cube", json={"measures": ["revenue"]}).status_code == 403
    r = c.post("/api/v1/cube", json={"measures": ["revenue"]},
               headers={"X-CSRF-Token": csrf(c, "/explorer")})
    assert r.status_code == 200 and len(r.json()["rows"]) == 1


# -- roles --------------------------------------------------------------------------------------


@pytest.mark.parametrize("user,allowed", [("ada", True), ("ann", True), ("max", True),
                                          ("vic", True), ("amy", False)])
def test_roles(app: FastAPI, ws: Workspace, user: str, allowed: bool) -> None:
    c = signed_in(app, user)
    h = bearer(ws, user)
    page = c.get("/explorer")
    export = c.get("/explorer/export", params={"m": "revenue", "rows": "year"})
    api = c.post("/api/v1/cube", json={"measures": ["revenue"], "by": ["year"]}, headers=h)
    schema = c.get("/api/v1/cube/schema", headers=h)
    if allowed:
        assert [x.status_code for x in (page, export, api, schema)] == [200] * 4
    else:
        assert page.status_code == 403 and export.status_code == 403
        assert_problem(api, 403)
        assert_problem(schema, 403)
        assert 'class="data pivot"' not in page.text


def test_anonymous_is_sent_to_login(app: FastAPI) -> None:
    c = TestClient(app)
    r = c.get("/explorer?m=revenue&rows=year", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login?next=/explorer")
    assert c.get("/explorer/export", follow_redirects=False).status_code == 303
    assert_problem(c.post("/api/v1/cube", json={"measures": ["revenue"]},
                          headers={"Authorization": "Bearer not-a-token"}), 401)
    assert_problem(c.get("/api/v1/cube/schema"), 401)


# -- Chinese ------------------------------------------------------------------------------------


def test_page_in_chinese(ann: TestClient) -> None:
    page = ann.get("/explorer", params={"m": "revenue", "rows": "tier", "cols": "region",
                                        "lang": "zh_CN"}).text
    assert 'lang="zh-CN"' in page
    for word in ("收入", "等级", "地区", "合计", "钻石卡", "金卡"):
        assert word in page, word
    assert ">Revenue<" not in page and ">Diamond<" not in page


# -- the view as a URL --------------------------------------------------------------------------

NAMES = st.sampled_from(sorted(DIMENSIONS))


@st.composite
def views(draw: st.DrawFn) -> ExplorerView:
    measures = draw(st.lists(st.sampled_from(MEASURES), min_size=1, max_size=3, unique=True))
    rows = draw(st.none() | NAMES)
    cols = draw(st.none() | NAMES.filter(lambda d: d != rows)) if rows else None
    where = draw(st.dictionaries(NAMES, st.lists(st.text(
        st.characters(codec="utf-8", exclude_categories=("C", "Z")), min_size=1, max_size=12),
        min_size=1, max_size=3, unique=True), max_size=3))
    return ExplorerView(measures=measures, rows=rows, cols=cols,
                        show=draw(st.sampled_from(measures)) if cols else None, where=where)


@given(views())
@settings(max_examples=60, deadline=None)
def test_a_view_round_trips_through_its_url(view: ExplorerView) -> None:
    assert ExplorerView.from_params(view.to_params()) == view
    for axis in ("rows", "cols"):
        for crumb in view.crumbs(axis):  # type: ignore[arg-type]
            assert crumb.view.axis(axis) is not None  # type: ignore[arg-type]
        down = view.drilled(axis, "x")  # type: ignore[arg-type]
        if down is not None:
            assert down.where[str(view.axis(axis))] == ["x"]  # type: ignore[arg-type]


def test_bare_page_shows_revenue_by_year(ann: TestClient, facts: pd.DataFrame) -> None:
    t = pivot_table(ann.get("/explorer").text)
    assert t["rows"] == sorted(facts.year.unique())
    np.testing.assert_allclose(t["totals"][0], facts.amount.sum(), rtol=1e-9)
