"""The data, models and settings pages and their API (/data, /models, /settings,
/api/v1/imports, /api/v1/models, /api/v1/scores): numbers compared with the warehouse's own
tables read directly (the import journal and rejects, the model registry, the scores), a
hand-computed population stability index, spec edits validated and audited, roles, zh_CN.

One demo workspace (3,000 customers, one analysis run) plus a deliberately bad products
import: 5 rows, 3 rejected (a price that is not a number, a missing id, a negative price)."""

from __future__ import annotations

import io
import json
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from fastapi import FastAPI
from fastapi.testclient import TestClient
from markupsafe import escape
from sqlalchemy import select

from kehu.alerts import AlertRules, rules_in_force
from kehu.analytics.lifecycle import LifecycleRules
from kehu.analytics.schemes import (
    get_lifecycle_rules,
    get_tier_scheme,
    lifecycle_rules,
    save_lifecycle_rules,
    save_tier_scheme,
    tier_scheme,
)
from kehu.analytics.tiers import TierScheme
from kehu.campaigns.launch import get_policy
from kehu.ingest import Importer, plan_import, require_complete
from kehu.models import registry
from kehu.models.cards import model_cards
from kehu.quality import build_report
from kehu.settings import WebSection
from kehu.store.models import AuditEntry
from kehu.web import create_app
from kehu.workspace import Workspace
from web_support import (
    SECRET,
    assert_problem,
    busiest_manager,
    demo_workspace,
    signed_in,
    web_app,
)

BAD_PRODUCTS = ("产品编号,产品名称,类别,单价\n"
                "Z001,测试甲,食品,10.5\n"
                "Z002,测试乙,食品,abc\n"       # row 3: not a number
                ",测试丙,食品,3.0\n"           # row 4: no product id
                "Z004,测试丁,食品,-5\n"        # row 5: below the minimum 0
                "Z005,测试戊,食品,7\n")
PAGES = ("/data", "/data/quality", "/models", "/settings")


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    base = tmp_path_factory.mktemp("adminpages")
    w = demo_workspace(base)
    src = base / "bad_products.csv"
    src.write_text(BAD_PRODUCTS, encoding="utf-8")
    plans = plan_import(w, "products", [src])
    require_complete(plans)
    Importer(w).run(plans)
    yield w
    w.close()


@pytest.fixture(scope="module")
def app(ws: Workspace) -> Iterator[FastAPI]:
    web_app(ws)  # the users of every role; no dashboard warming thread (it would query the
    # workspace's DuckDB connection while the tests do)
    settings = ws.settings.model_copy(update={"web": WebSection(  # type: ignore[call-arg]
        secret_key=SECRET, cookie_secure=False, login_max_failures=1000,
        warm_on_start=False)})
    application = create_app(settings, ws)
    with TestClient(application):
        yield application


@pytest.fixture(scope="module")
def clients(app: FastAPI) -> dict[str, TestClient]:
    return {u: signed_in(app, u) for u in ("ada", "ann", "max", "amy", "vic")}


@pytest.fixture(scope="module")
def journal(ws: Workspace) -> pd.DataFrame:
    return ws.warehouse.read("_imports").to_pandas()


@pytest.fixture(scope="module")
def bad_import(journal: pd.DataFrame) -> str:
    rows = journal[journal.files.str.contains("bad_products.csv")]
    assert len(rows) == 1
    return str(rows.import_id.iloc[0])


def _token(c: TestClient, path: str = "/settings") -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', c.get(path).text)
    assert m
    return m.group(1)


def _num(v: float) -> str:
    return f"{int(v):,}"


# -- data -----------------------------------------------------------------------------------


def test_import_history_equals_the_journal(clients: dict[str, TestClient],
                                           journal: pd.DataFrame) -> None:
    html = clients["ann"].get("/data").text
    assert (journal.read == journal.loaded + journal.rejected).all()
    assert len(journal) == 14  # 13 demo tables + the bad products file
    for r in journal.itertuples():
        row = re.search(rf'<tr data-import="{r.import_id}">(.*?)</tr>', html, re.S)
        assert row, r.import_id
        nums = re.findall(r'<td class="num">(?:<a [^>]*>)?([\d,]+)', row.group(1))
        assert nums[:3] == [_num(r.read), _num(r.loaded), _num(r.rejected)], r.entity
        assert f"<td>{r.entity}</td>" in row.group(1)
    body = clients["ann"].get("/api/v1/imports", params={"page_size": 5}).json()
    assert body["total"] == len(journal) and body["pages"] == 3 and len(body["rows"]) == 5
    got = []
    for page in (1, 2, 3):
        got += clients["ann"].get("/api/v1/imports", params={"page_size": 5,
                                                             "page": page}).json()["rows"]
    by_id = journal.set_index("import_id")
    assert {g["import_id"] for g in got} == set(journal.import_id)
    for g in got:
        j = by_id.loc[g["import_id"]]
        assert (g["read"], g["loaded"], g["rejected"]) == (j.read, j.loaded, j.rejected)
        assert g["read"] == g["loaded"] + g["rejected"]
        assert g["files"] == [Path(f).name for f in json.loads(j.files)]
    finished = [g["finished_at"] for g in got]
    assert finished == sorted(finished, reverse=True)


def test_bad_import_shows_its_reasons(ws: Workspace, clients: dict[str, TestClient],
                                      bad_import: str) -> None:
    rejects = ws.warehouse.read("_rejects").to_pandas()
    mine = rejects[rejects.import_id == bad_import].sort_values("row")
    assert list(mine.row) == [3, 4, 5]
    assert list(mine.reason_code) == ["bad_number", "missing", "below_min"]
    c = clients["ann"]
    html = c.get(f"/data/imports/{bad_import}").text
    counts = dict(re.findall(r'data-count="(\w+)">([\d,]+)<', html))
    assert counts == {"read": "5", "loaded": "2", "rejected": "3"}
    table = html[html.index('class="data rejects"'):]
    for r in mine.itertuples():
        assert str(escape(r.reason)) in table and f'<td class="num">{r.row}</td>' in table
    assert "3 problems" in html
    # the API pages through the same rows
    body = c.get(f"/api/v1/imports/{bad_import}/rejects", params={"page_size": 2}).json()
    assert (body["total"], body["pages"], len(body["rows"])) == (3, 2, 2)
    rest = c.get(f"/api/v1/imports/{bad_import}/rejects",
                 params={"page_size": 2, "page": 2}).json()["rows"]
    got = body["rows"] + rest
    assert [(g["row"], g["column"], g["reason_code"], g["value"]) for g in got] == \
        list(zip(mine.row, mine.column, mine.reason_code,
                 [None if pd.isna(v) else v for v in mine.value], strict=True))
    assert_problem(c.get("/api/v1/imports/no-such-import/rejects"), 404)
    assert c.get("/data/imports/no-such-import").status_code == 404


def test_rejects_of_a_big_import_are_paged(ws: Workspace, clients: dict[str, TestClient],
                                           journal: pd.DataFrame) -> None:
    tx = str(journal[journal.entity == "transactions"].import_id.iloc[0])
    rejects = ws.warehouse.read("_rejects").to_pandas()
    want = rejects[rejects.import_id == tx]
    assert len(want) > 200
    c = clients["ada"]
    got: list[dict[str, Any]] = []
    page = 1
    while True:
        body = c.get(f"/api/v1/imports/{tx}/rejects", params={"page": page,
                                                              "page_size": 200}).json()
        got += body["rows"]
        if page == body["pages"]:
            break
        page += 1
    assert body["total"] == len(want) == len(got)
    key = ["file", "row", "column", "reason_code"]
    assert sorted(tuple(str(g[k]) for k in key) for g in got) == \
        sorted(tuple(str(v) for v in r) for r in want[key].itertuples(index=False))
    rows = [g["row"] for g in got]
    assert rows == sorted(rows)
    # the page: 50 a page, page 2 continues where page 1 stopped
    p2 = c.get(f"/data/imports/{tx}", params={"page": 2}, headers={"HX-Request": "true"}).text
    assert "<html" not in p2 and "Page 2 of" in p2
    assert re.findall(r'<td class="num">(\d+)</td>', p2)[0] == str(rows[50])
    assert c.get(f"/data/imports/{tx}", params={"page": "x"}).status_code == 400


def test_rejects_csv_is_an_audited_export(ws: Workspace, clients: dict[str, TestClient],
                                          bad_import: str) -> None:
    r = clients["ann"].get(f"/data/imports/{bad_import}/rejects.csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    assert r.content.startswith(b"\xef\xbb\xbf")
    df = pd.read_csv(io.BytesIO(r.content), encoding="utf-8-sig")
    assert list(df.reason_code) == ["bad_number", "missing", "below_min"]
    assert {"raw", "reason", "value"} <= set(df.columns)
    with ws.store.session() as s:
        entry = s.scalars(select(AuditEntry).where(AuditEntry.action == "export",
                                                   AuditEntry.object_type == "rejects")
                          .order_by(AuditEntry.id.desc())).first()
    assert entry is not None
    assert (entry.actor, entry.object_id, entry.details) == \
        ("ann", bad_import, {"rows": 3, "format": "csv"})


def test_quality_report(ws: Workspace, clients: dict[str, TestClient]) -> None:
    part = clients["ann"].get("/data/quality", headers={"HX-Request": "true"}).text
    assert "<html" not in part and 'data-echarts="chart-quality"' in part
    rep = build_report(ws)
    assert f'data-score="overall">{rep.overall_score:.1f}<' in part
    for e in rep.entities:
        rows = ws.warehouse.read(e.entity).num_rows  # the table itself, read directly
        row = re.search(rf'<tr data-entity="{e.entity}"><td>{e.entity}</td>'
                        r'<td class="num">([\d,]+)</td>', part)
        assert row and row.group(1) == _num(rows), e.entity
    products = re.search(r'<tr data-entity="products">.*?</tr>', part, re.S)
    assert products and '<td class="num">3</td>' in products.group(0)  # the bad import
    page = clients["ann"].get("/data/quality").text
    assert "<html" in page and "kehu.js" in page


# -- models ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def churn_record(ws: Workspace) -> dict[str, Any]:
    rows = ws.warehouse.read("_models").to_pylist()
    churn = [r for r in rows if r["kind"] == "churn"]
    assert len(churn) == 1
    return {**churn[0], "details": json.loads(churn[0]["details"])}


def test_models_page_metrics_equal_the_registry(clients: dict[str, TestClient],
                                                churn_record: dict[str, Any]) -> None:
    holdout = churn_record["details"]["holdout"]
    mid = churn_record["model_id"]
    html = clients["ann"].get("/models").text
    card = html[html.index(f'data-model="{mid}"'):]
    for key in ("auc", "pr_auc", "lift_top_decile", "lift_top_20"):
        m = re.search(rf'data-metric="{key}"><th scope="row">[^<]+</th><td class="num">'
                      r'([^<]+)<', card)
        assert m and m.group(1) == f"{holdout[key]:,.3f}", key
    m = re.search(r'data-metric="capture_top_decile">.*?<td class="num">([^<]+)<', card)
    assert m and m.group(1) == f"{holdout['capture_top_decile']:.1%}"
    cal = holdout["calibration"]
    start = card.index('class="data calibration"')
    table = card[start:card.index("</table>", start)]
    assert table.count("<tr><td>") == len(cal) == 10
    assert f'data-echarts="cal-{mid}"' in card and f'data-echarts="imp-{mid}"' in card
    for imp in churn_record["details"]["importance"][:5]:
        assert imp["feature"] in card
    body = clients["ann"].get("/api/v1/models").json()
    api = next(m for m in body if m["model_id"] == mid)
    assert api["metrics"] == {k: v for k, v in holdout.items()
                              if isinstance(v, float | int) and not isinstance(v, bool)}
    assert api["calibration"] == cal
    n = sum(b["n"] for b in cal)
    ece = sum(b["n"] * abs(b["predicted"] - b["observed"]) for b in cal) / n
    assert api["calibration_error"] == pytest.approx(ece, abs=1e-6)
    assert [i["feature"] for i in api["importance"]] == \
        [i["feature"] for i in churn_record["details"]["importance"]]
    assert clients["ann"].get(f"/api/v1/models/{mid}").json()["metrics"] == api["metrics"]
    assert any(m["kind"] == "clv" for m in body)  # the run's BG/NBD + Gamma-Gamma
    assert clients["ann"].get(f"/models/{mid}").status_code == 200
    assert clients["ann"].get("/models/no-such-model").status_code == 404
    assert_problem(clients["ann"].get("/api/v1/models/no-such-model"), 404)


def test_psi_by_hand() -> None:
    """Two deciles split at 0.5; a quarter of the new values above it."""
    ref = {"type": "number", "edges": [0.5], "shares": [0.5, 0.5], "missing": 0.0}
    # shares now 0.75 / 0.25; PSI = 0.25·ln(1.5) + (−0.25)·ln(0.5) (+ 0 for missing)
    by_hand = 0.25 * math.log(1.5) - 0.25 * math.log(0.5)
    assert registry.psi(ref, np.array([0.1, 0.2, 0.3, 0.9])) == pytest.approx(by_hand)
    assert round(by_hand, 6) == 0.274653


def test_score_drift_equals_a_hand_computed_psi(ws: Workspace, clients: dict[str, TestClient],
                                                churn_record: dict[str, Any]) -> None:
    ref = churn_record["details"]["score_reference"]["score"]
    runs = ws.warehouse.read("_runs").to_pandas()
    run = runs.sort_values(["as_of", "finished_at"]).iloc[-1]
    scores = ws.warehouse.read("customer_scores").to_pandas()
    risk = scores[(scores.run_id == run.run_id) & scores.churn_risk.notna()].churn_risk
    # bins [edge_i, edge_i+1): a score equal to an edge counts in the bin above it
    bins = pd.cut(risk, [-np.inf, *ref["edges"], np.inf], right=False)
    actual = bins.value_counts(sort=False).to_numpy() / len(risk)
    expected = np.asarray(ref["shares"])
    a, e = np.clip(actual, 1e-4, None), np.clip(expected, 1e-4, None)
    by_hand = float(np.sum((a - e) * np.log(a / e)))
    churn = next(c for c in model_cards(ws) if c.kind == "churn")
    assert churn.drift is not None and churn.drift.scored == len(risk)
    assert churn.drift.score_psi == pytest.approx(by_hand, abs=1e-4)
    recorded = json.loads(run.details)["churn"]["drift"]["psi"]["(score)"]
    assert recorded == pytest.approx(by_hand, abs=1e-4)
    html = clients["ann"].get("/models").text
    assert f": {churn.drift.score_psi:.4f}</p>" in html
    for feature in json.loads(run.details)["churn"]["drift"]["drifted"]:
        assert re.search(rf'data-feature="{feature}"><td>[^<]+</td><td class="num">'
                         r'<span class="badge warn">', html)


# -- scores API -----------------------------------------------------------------------------


def test_scores_api_is_scoped_like_customers(ws: Workspace, clients: dict[str, TestClient],
                                             app: FastAPI) -> None:
    scores = ws.warehouse.read("customer_scores").to_pandas()
    customers = ws.warehouse.read("customers").to_pandas()
    emp = busiest_manager(ws)
    own = str(customers[customers.account_manager_id == emp].customer_id.iloc[0])
    other = str(customers[customers.account_manager_id != emp].customer_id.iloc[0])
    for user, cid in (("ada", other), ("vic", other), ("amy", own)):
        r = clients[user].get(f"/api/v1/scores/{cid}")
        assert r.status_code == 200, (user, r.text)
        body = r.json()
        want = scores[scores.customer_id == cid].sort_values(["as_of", "run_id"]).iloc[-1]
        assert body["run_id"] == want.run_id and body["as_of"] == str(want.as_of)[:10]
        assert body["scores"]["tier"] == want.tier
        for col in ("clv", "churn_risk", "total_value"):
            v = want[col]
            assert body["scores"][col] == (None if pd.isna(v) else pytest.approx(float(v)))
        if isinstance(want.churn_reasons, str):
            assert body["churn_reasons"] == json.loads(want.churn_reasons)
            assert body["churn_model"] == "churn-v1"
    assert_problem(clients["amy"].get(f"/api/v1/scores/{other}"), 404)
    assert_problem(clients["ada"].get("/api/v1/scores/NO-SUCH"), 404)
    assert_problem(TestClient(app).get(f"/api/v1/scores/{own}"), 401)


# -- settings -------------------------------------------------------------------------------


def _entries(ws: Workspace, object_type: str, object_id: str) -> list[AuditEntry]:
    with ws.store.session() as s:
        return list(s.scalars(select(AuditEntry).where(AuditEntry.object_type == object_type,
                                                       AuditEntry.object_id == object_id)
                              .order_by(AuditEntry.id)))


def test_settings_show_the_specs_in_force(ws: Workspace,
                                          clients: dict[str, TestClient]) -> None:
    html = clients["ann"].get("/settings").text
    for key in ("tiers", "lifecycle", "contact_policy", "service_levels", "alert_rules"):
        assert f'id="{key}"' in html
    sec = {k: html[html.index(f'data-section="{k}"'):] for k in ("tiers", "alert_rules")}
    rules = rules_in_force(ws.store).rules
    assert sec["alert_rules"][:sec["alert_rules"].index("</table>")].count("<tr><td>") \
        == len(rules)
    assert "at most 4 contacts in 30 days" in html  # the default contact policy
    # the editable text is the spec in force, as YAML
    m = re.search(r'<textarea id="spec-contact_policy"[^>]*>(.*?)</textarea>', html, re.S)
    assert m and yaml.safe_load(m.group(1).replace("&#39;", "'")) == \
        get_policy(ws).model_dump(mode="json")
    for key, model in (("tiers", tier_scheme(ws)), ("lifecycle", lifecycle_rules(ws))):
        m = re.search(rf'<textarea id="spec-{key}"[^>]*>(.*?)</textarea>', html, re.S)
        assert m and yaml.safe_load(m.group(1).replace("&#39;", "'")) == \
            model.model_dump(mode="json")


def test_a_valid_policy_edit_is_saved_and_audited(ws: Workspace,
                                                  clients: dict[str, TestClient]) -> None:
    c = clients["ann"]
    before = get_policy(ws).model_dump(mode="json")
    text = "caps:\n  - max_contacts: 2\n    window_days: 14\n    channel: sms\nquiet_days: 3\n"
    r = c.post("/settings/contact_policy", data={"spec": text, "csrf_token": _token(c)},
               follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith(
        "/settings?saved=contact_policy")
    p = get_policy(ws)
    assert (p.caps[0].max_contacts, p.caps[0].window_days, p.caps[0].channel, p.quiet_days) \
        == (2, 14, "sms", 3)
    audit = _entries(ws, "settings", "contact_policy")[-1]
    assert audit.actor == "ann" and audit.action == "update"
    assert audit.details == {"before": before, "after": p.model_dump(mode="json")}
    page = c.get(r.headers["location"]).text
    assert "Saved." in page and "at most 2 contacts in 14 days" in page


def test_an_invalid_policy_edit_changes_nothing(ws: Workspace,
                                                clients: dict[str, TestClient]) -> None:
    c = clients["ann"]
    before = get_policy(ws)
    n_audit = len(_entries(ws, "settings", "contact_policy"))
    cases = {"quiet_days: -1\n": "quiet_days",
             "caps:\n  - max_contacts: zero\n    window_days: 30\n": "max_contacts",
             "caps: [\n": "line"}
    for text, named in cases.items():
        r = c.post("/settings/contact_policy", data={"spec": text, "csrf_token": _token(c)})
        assert r.status_code == 422, text
        err = re.search(r'<p class="error" role="alert" id="err-contact_policy">(.*?)</p>',
                        r.text, re.S)
        assert err and named in err.group(1), (text, r.text[:500])
        box = re.search(r'<textarea id="spec-contact_policy"[^>]*>(.*?)</textarea>', r.text,
                        re.S)
        assert box and box.group(1) == text  # what was sent, to fix
        assert get_policy(ws) == before
    assert len(_entries(ws, "settings", "contact_policy")) == n_audit


def test_service_levels_and_alert_rules_edits(ws: Workspace,
                                              clients: dict[str, TestClient]) -> None:
    from kehu.accounts.service_levels import ServiceLevels, load_service_levels

    c = clients["ada"]
    levels = ServiceLevels.default().model_dump(mode="json")
    levels["tiers"]["gold"]["max_discount"] = 0.15
    r = c.post("/settings/service_levels", data={"spec": yaml.safe_dump(levels),
                                                 "csrf_token": _token(c)},
               follow_redirects=False)
    assert r.status_code == 303 and load_service_levels(ws.store).tiers["gold"].max_discount \
        == 0.15
    del levels["tiers"]["silver"]
    r = c.post("/settings/service_levels", data={"spec": yaml.safe_dump(levels),
                                                 "csrf_token": _token(c)})
    assert r.status_code == 422 and "silver" in r.text
    assert "silver" in load_service_levels(ws.store).tiers

    rules = AlertRules.default().dump()
    rules[0]["enabled"] = False
    r = c.post("/settings/alert_rules", data={"spec": yaml.safe_dump(rules, allow_unicode=True),
                                              "csrf_token": _token(c)},
               follow_redirects=False)
    assert r.status_code == 303
    assert not rules_in_force(ws.store).rules[0].enabled
    assert _entries(ws, "settings", "alert_rules")[-1].details["after"][0]["enabled"] is False
    bad = [{**rules[1], "kind": "full_moon"}]
    r = c.post("/settings/alert_rules", data={"spec": yaml.safe_dump(bad),
                                              "csrf_token": _token(c)})
    assert r.status_code == 422 and "full_moon" in r.text
    assert rules_in_force(ws.store).rules[1].kind == rules[1]["kind"]
    # no such section
    assert c.post("/settings/moon", data={"spec": "x: 1", "csrf_token": _token(c)}) \
        .status_code == 404


def _box(html: str, key: str) -> Any:
    m = re.search(rf'<textarea id="spec-{key}"[^>]*>(.*?)</textarea>', html, re.S)
    assert m
    return yaml.safe_load(m.group(1).replace("&#39;", "'"))


def test_tier_scheme_and_lifecycle_rules_edits(ws: Workspace,
                                               clients: dict[str, TestClient]) -> None:
    c = clients["ada"]
    default = tier_scheme(ws).model_dump(mode="json")
    n_audit = len(_entries(ws, "settings", "tiers"))
    bad = {**default, "tiers": [{**t, "cut": c} for t, c in zip(
        default["tiers"], (100, 500, 50, 0), strict=True)]}
    for spec, named in ((bad, "strictly decreasing"),
                        ({**default, "window_days": 0}, "window_days"),
                        ({**default, "tiers": default["tiers"][:3]}, "tiers.code")):
        r = c.post("/settings/tiers", data={"spec": yaml.safe_dump(spec, allow_unicode=True),
                                            "csrf_token": _token(c)})
        err = re.search(r'<p class="error" role="alert" id="err-tiers">(.*?)</p>', r.text,
                        re.S)
        assert r.status_code == 422 and err and named in err.group(1), named
    assert get_tier_scheme(ws) == (TierScheme(), None)  # nothing saved
    assert len(_entries(ws, "settings", "tiers")) == n_audit

    good = {**default, "tiers": [{**t, "cut": c} for t, c in zip(
        default["tiers"], (50_000, 12_000, 2_000, 0), strict=True)]}
    good["tiers"][1]["name_en"] = "Gold Plus"
    r = c.post("/settings/tiers", data={"spec": yaml.safe_dump(good, allow_unicode=True),
                                        "csrf_token": _token(c)}, follow_redirects=False)
    assert r.status_code == 303
    assert get_tier_scheme(ws) == (TierScheme.model_validate(good), 1)
    audit = _entries(ws, "settings", "tiers")[-1]
    assert audit.actor == "ada" and audit.details == {"before": default, "after": good}
    page = c.get(r.headers["location"]).text
    assert _box(page, "tiers") == good and "Gold Plus" in page
    assert "kehu run" in page  # changes apply from the next run
    # the customer list offers the saved names
    assert ">Gold Plus</option>" in c.get("/customers").text

    rules = lifecycle_rules(ws).model_dump(mode="json")
    r = c.post("/settings/lifecycle", data={"spec": "active_days: 200\ndormant_days: 100\n",
                                            "csrf_token": _token(c)})
    assert r.status_code == 422 and "dormant_days" in r.text
    assert get_lifecycle_rules(ws)[1] is None
    new = {**rules, "dormant_days": 180}
    r = c.post("/settings/lifecycle", data={"spec": yaml.safe_dump(new),
                                            "csrf_token": _token(c)}, follow_redirects=False)
    assert r.status_code == 303 and lifecycle_rules(ws).dormant_days == 180
    assert _entries(ws, "settings", "lifecycle")[-1].details == {"before": rules, "after": new}
    assert _box(c.get("/settings").text, "lifecycle") == new
    # back to the built-in ones for the other tests
    save_tier_scheme(ws, TierScheme(), "test")
    save_lifecycle_rules(ws, LifecycleRules(), "test")


# -- roles, CSRF, language ------------------------------------------------------------------


def test_roles(app: FastAPI, clients: dict[str, TestClient], bad_import: str) -> None:
    gets = [*PAGES, f"/data/imports/{bad_import}", f"/data/imports/{bad_import}/rejects.csv",
            "/models/churn-v1"]
    apis = ["/api/v1/imports", f"/api/v1/imports/{bad_import}/rejects", "/api/v1/models",
            "/api/v1/models/churn-v1"]
    for user in ("ada", "ann"):
        for path in gets + apis:
            assert clients[user].get(path).status_code == 200, (user, path)
    for user in ("max", "amy", "vic"):
        for path in gets:
            assert clients[user].get(path).status_code == 403, (user, path)
        for path in apis:
            assert_problem(clients[user].get(path), 403)
        r = clients[user].post("/settings/contact_policy",
                               data={"spec": "quiet_days: 9", "csrf_token": _token(
                                   clients[user], "/")})
        assert r.status_code == 403
    anon = TestClient(app)
    for path in gets:
        r = anon.get(path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/login"), path
    for path in apis:
        assert_problem(anon.get(path), 401)
    # CSRF
    r = clients["ada"].post("/settings/contact_policy", data={"spec": "quiet_days: 9"})
    assert r.status_code == 403
    assert get_policy_quiet(clients) != 9


def get_policy_quiet(clients: dict[str, TestClient]) -> int:
    html = clients["ada"].get("/settings").text
    m = re.search(r"<td>Quiet days between contacts</td><td class=\"num\">(\d+)</td>", html)
    assert m
    return int(m.group(1))


def test_pages_in_chinese(clients: dict[str, TestClient], bad_import: str) -> None:
    c = clients["ann"]
    expect = {"/data": ("Imports", "Read", "Loaded"),
              f"/data/imports/{bad_import}": ("Rejected rows by reason", "Download as CSV"),
              "/data/quality": ("Data quality", "Overall score"),
              "/models": ("Hold-out metrics", "Calibration", "Drift since training"),
              "/settings": ("Contact policy", "Edit as YAML", "Check and save")}
    from kehu.i18n import catalogue

    for path, msgids in expect.items():
        html = c.get(path, params={"lang": "zh_CN"}).text
        assert '<html lang="zh-CN">' in html, path
        for msgid in msgids:
            zh = catalogue("zh_CN")[msgid]
            assert zh in html, (path, msgid)
            assert f">{msgid}<" not in html, (path, msgid)
    html = c.get("/models", params={"lang": "zh_CN"}).text
    assert "距今天数" in html or "天数" in html  # feature labels translated
