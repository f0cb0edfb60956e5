"""Campaign pages and the campaigns API: the policy check against ``launch.plan`` and an
independent pandas count of the audience, the approval workflow (forbidden steps, the author
approving their own campaign), launch with its holdout, results against ``measure.measure``
and the warehouse, roles, CSRF, audit and Chinese — on one demo workspace (3,000 customers,
one analysis run, three past campaigns with responses)."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import pandas as pd
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from scipy import stats as sps
from sqlalchemy import select

from kehu.analytics.summary import last_transaction_day
from kehu.campaigns import launch as launching
from kehu.campaigns.measure import NOT_A_RESPONSE, list_campaigns, measure
from kehu.campaigns.spec import CampaignSpec
from kehu.errors import KehuInputError
from kehu.i18n import catalogue
from kehu.segments.spec import SegmentSpec
from kehu.store import services as sv
from kehu.store.models import AuditEntry, User
from kehu.web.i18n import money, number
from kehu.workspace import Workspace
from web_support import assert_problem, bearer, csrf, demo_workspace, signed_in, web_app

SEGMENT = "金卡及以上"
TIERS = ["gold", "diamond"]


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    w = demo_workspace(tmp_path_factory.mktemp("webcampaigns"))
    seg = SegmentSpec.parse({"name": SEGMENT, "description": "gold and diamond",
                             "rule": {"field": "tier", "op": "in", "value": TIERS}})
    sv.save_definition(w.store, sv.DefinitionIn(
        kind="segment", name=seg.name, description=seg.description,
        spec=seg.model_dump(mode="json", by_alias=True, exclude_none=True)), "test")
    yield w
    w.close()


@pytest.fixture(scope="module")
def app(ws: Workspace) -> FastAPI:
    return web_app(ws)


@pytest.fixture(scope="module")
def clients(app: FastAPI) -> dict[str, TestClient]:
    return {u: signed_in(app, u) for u in ("ada", "ann", "max", "amy", "vic")}


@pytest.fixture(scope="module")
def tokens(ws: Workspace, clients: dict[str, TestClient]) -> dict[str, dict[str, str]]:
    return {u: bearer(ws, u) for u in ("ada", "ann", "max", "amy", "vic")}


@pytest.fixture(scope="module")
def api(app: FastAPI) -> TestClient:
    return TestClient(app)


def _start(ws: Workspace, days: int) -> date:
    """A start after the data (distinct offsets keep the contact caps of one campaign out of
    another's way)."""
    return last_transaction_day(ws.engine) + timedelta(days=days)


def _spec(ws: Workspace, cid: str, days: int, **kw: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": cid, "name": f"测试 {cid}", "goal": "cross_sell", "channel": "sms",
        "audience": {"segment": SEGMENT}, "offers": {"default": {"text": "满200减30"}},
        "schedule": {"start": _start(ws, days).isoformat()}, "cost_per_contact": 0.1,
        "holdout": {"fraction": 0.2}, "expected_effect": 0.03}
    data.update(kw)
    return data


def _form(ws: Workspace, cid: str, days: int, **kw: str) -> dict[str, str]:
    """The new-campaign form for the same campaign as :func:`_spec`."""
    return {"campaign_id": cid, "name": f"测试 {cid}", "goal": "cross_sell", "channel": "sms",
            "segment": SEGMENT, "offer_text": "满200减30", "start": _start(ws, days).isoformat(),
            "cost_per_contact": "0.1", "holdout": "20", "expected_effect": "3", **kw}


def cells(page: str) -> dict[str, str]:
    """Text of every ``<td data-key=...>`` of a page, tags stripped, spaces collapsed."""
    out = {}
    for key, body in re.findall(r'<td[^>]*data-key="([^"]+)"[^>]*>(.*?)</td>', page, re.S):
        out[key] = " ".join(html.unescape(re.sub(r"<[^>]+>", "", body)).split())
    return out


def _audit(ws: Workspace, cid: str) -> list[tuple[str, str]]:
    with ws.store.session() as s:
        rows = s.scalars(select(AuditEntry).where(AuditEntry.object_type == "campaign",
                                                  AuditEntry.object_id == cid)
                         .order_by(AuditEntry.id))
        return [(r.actor, r.action) for r in rows]


def _pandas_audience(ws: Workspace) -> pd.DataFrame:
    """The segment's members by pandas: customers whose tier in the latest run is gold or
    diamond."""
    scores = ws.warehouse.read("customer_scores").to_pandas()
    latest = scores[scores.run_id == scores.run_id.max()]
    customers = ws.warehouse.read("customers").to_pandas()[["customer_id", "phone"]]
    m = customers.merge(latest[["customer_id", "tier"]], on="customer_id")
    return m[m.tier.isin(TIERS)]


# -- the policy check ------------------------------------------------------------------------

def test_check_equals_plan_and_a_pandas_count(ws: Workspace, clients: dict[str, TestClient],
                                              api: TestClient,
                                              tokens: dict[str, dict[str, str]]) -> None:
    audience = _pandas_audience(ws)
    opted = sorted(audience.customer_id)[:3]
    for c in opted:  # three opt-outs: the policy must suppress exactly them
        launching.add_opt_out(ws, c, "test", reason="test", since=date(2000, 1, 1))
    spec = CampaignSpec.parse(_spec(ws, "CHK", 40))
    p = launching.plan(ws, spec)
    # the service against pandas
    assert p.eligible == len(audience) > 100
    assert p.suppressed_by_rule.get("opt_out") == 3
    no_phone = audience[~audience.customer_id.isin(opted)].phone.fillna("").str.strip() == ""
    assert p.suppressed_by_rule.get("no_address", 0) == int(no_phone.sum())
    assert p.contactable == len(audience) - p.suppressed
    assert p.control == round(0.2 * p.contactable) and p.treatment + p.control == p.contactable
    by_tier = {r["tier"]: r["eligible"] for r in p.by_tier}
    assert by_tier == audience.tier.value_counts().to_dict()
    # the page (HTMX partial) against the service
    ann = clients["ann"]
    r = ann.post("/campaigns/new", data={**_form(ws, "CHK", 40), "action": "check"},
                 headers={"HX-Request": "true", "X-CSRF-Token": csrf(ann, "/campaigns/new")})
    assert r.status_code == 200 and "<html" not in r.text
    got = cells(r.text)
    for key in ("eligible", "suppressed", "contactable", "treatment", "control"):
        assert got[key] == f"{getattr(p, key):,}", key
    assert got["suppressed_opt_out"] == "3"
    assert got["mde"] == f"{100 * p.power['mde']:.2f} points"
    assert got["power"] == number(p.power["power"], "en", percent=True)
    expected_holdout = p.power["suggested_holdout"]
    assert got["suggested_holdout"] == (number(expected_holdout, "en", percent=True, digits=1)
                                        if expected_holdout is not None else "none up to 50 %")
    chart = json.loads(re.search(r'id="chart-plan-suppressed">(.*?)</script>', r.text,
                                 re.S).group(1))  # type: ignore[union-attr]
    assert chart["series"][0]["data"][0] == 3  # opt_out first, as in the table
    # the API against the service: every number
    r = api.post("/api/v1/campaigns/plan", json=_spec(ws, "CHK", 40), headers=tokens["max"])
    assert r.status_code == 200, r.text
    body = r.json()
    for key in ("eligible", "contactable", "suppressed", "suppressed_by_rule", "treatment",
                "control", "cost", "base_rate", "base_rate_source"):
        assert body[key] == getattr(p, key), key
    assert body["power"]["mde"] == pytest.approx(p.power["mde"], rel=1e-12)
    assert body["power"]["power"] == pytest.approx(p.power["power"], rel=1e-12)
    # nothing was written by a check
    assert not any(row["campaign_id"] == "CHK" for row in list_campaigns(ws))
    assert _audit(ws, "CHK") == []


def test_bad_input_is_named_on_the_form(ws: Workspace, clients: dict[str, TestClient],
                                       api: TestClient,
                                       tokens: dict[str, dict[str, str]]) -> None:
    ann = clients["ann"]
    token = csrf(ann, "/campaigns/new")
    r = ann.post("/campaigns/new", data={**_form(ws, "BAD", 40, holdout="lots"),
                                         "action": "save", "csrf_token": token})
    assert r.status_code == 422 and "<form" in r.text  # the form again, filled in
    assert "Holdout (% of the audience): expected a number, got &#39;lots&#39;" in r.text
    assert 'value="BAD"' in r.text
    r = ann.post("/campaigns/new", data={**_form(ws, "BAD", 40, holdout="80"),
                                         "action": "check"},
                 headers={"HX-Request": "true", "X-CSRF-Token": token})
    assert r.status_code == 422 and "holdout.fraction" in r.text and "<html" not in r.text
    r = ann.post("/campaigns/new", data={**_form(ws, "BAD", 40, segment="没有这个"),
                                         "action": "check", "csrf_token": token})
    assert r.status_code == 422 and "No segment named" in r.text
    r = ann.post("/campaigns/new", data={**_form(ws, "BAD", 40), "spec_yaml": "id: [",
                                         "action": "check", "csrf_token": token})
    assert r.status_code == 422 and "not valid YAML" in r.text
    body = assert_problem(api.post("/api/v1/campaigns/plan", json={
        **_spec(ws, "BAD", 40), "holdout": {"fraction": 0.9}}, headers=tokens["ann"]), 422)
    assert "holdout.fraction" in body["detail"]
    body = assert_problem(api.post("/api/v1/campaigns", json={
        **_spec(ws, "BAD", 40), "audience": {"segment": "没有这个"}}, headers=tokens["ann"]), 422)
    assert "没有这个" in body["detail"]
    assert_problem(api.post("/api/v1/campaigns", json={**_spec(ws, "CMP1", 40)},
                            headers=tokens["ann"]), 409)  # a past campaign's id
    assert_problem(api.get("/api/v1/campaigns/bad id!", headers=tokens["ann"]), 422)


# -- the approval workflow -------------------------------------------------------------------

def test_workflow_state_machine_audit_and_launch(ws: Workspace, api: TestClient,
                                                 tokens: dict[str, dict[str, str]]) -> None:
    ann, mx = tokens["ann"], tokens["max"]
    cid = "FLOW"
    r = api.post("/api/v1/campaigns", json=_spec(ws, cid, 60), headers=ann)
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "draft" and r.json()["allowed_actions"] == ["edit", "submit"]
    # forbidden steps: 409 (status), 403 (role)
    assert_problem(api.post(f"/api/v1/campaigns/{cid}/approve", headers=mx), 409)
    assert_problem(api.post(f"/api/v1/campaigns/{cid}/launch", headers=ann), 409)
    assert_problem(api.post(f"/api/v1/campaigns/{cid}/approve", headers=ann), 403)
    assert_problem(api.post("/api/v1/campaigns/NOPE/submit", headers=ann), 404)
    assert api.post(f"/api/v1/campaigns/{cid}/submit", headers=ann).json()["status"] == \
        "submitted"
    assert_problem(api.post(f"/api/v1/campaigns/{cid}/submit", headers=ann), 409)
    assert_problem(api.put(f"/api/v1/campaigns/{cid}", json=_spec(ws, cid, 60), headers=ann),
                   409)
    assert_problem(api.post(f"/api/v1/campaigns/{cid}/reject", json={"reason": " "},
                            headers=mx), 422)
    r = api.post(f"/api/v1/campaigns/{cid}/reject", json={"reason": "对照组太小"}, headers=mx)
    assert r.json()["status"] == "rejected"
    assert r.json()["workflow"]["decision_reason"] == "对照组太小"
    assert_problem(api.post(f"/api/v1/campaigns/{cid}/launch", headers=ann), 409)
    assert_problem(api.put(f"/api/v1/campaigns/{cid}", json=_spec(ws, "OTHER", 60),
                           headers=ann), 422)  # the id cannot change
    r = api.put(f"/api/v1/campaigns/{cid}",
                json=_spec(ws, cid, 60, holdout={"fraction": 0.3}), headers=ann)
    assert r.json()["status"] == "draft" and r.json()["workflow"]["version"] == 2
    api.post(f"/api/v1/campaigns/{cid}/submit", headers=ann)
    assert_problem(api.post(f"/api/v1/campaigns/{cid}/launch", headers=ann), 409)
    r = api.post(f"/api/v1/campaigns/{cid}/approve", headers=mx)
    assert r.json()["status"] == "approved" and r.json()["allowed_actions"] == ["launch"]
    assert_problem(api.post(f"/api/v1/campaigns/{cid}/launch", headers=mx), 403)
    assert_problem(api.get(f"/api/v1/campaigns/{cid}/results", headers=ann), 409)
    expected = launching.plan(ws, CampaignSpec.parse(_spec(ws, cid, 60,
                                                           holdout={"fraction": 0.3})))
    r = api.post(f"/api/v1/campaigns/{cid}/launch", headers=ann)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["status"] == "launched"
    assert out["treatment"] + out["control"] == expected.contactable
    assert out["queued"] == out["treatment"]
    assert_problem(api.post(f"/api/v1/campaigns/{cid}/launch", headers=ann), 409)
    # the warehouse: one contact per contactable customer, the holdout within its bounds
    k = ws.warehouse.read("campaign_contacts").to_pandas()
    k = k[k.campaign_id == cid]
    assert len(k) == expected.contactable and k.customer_id.is_unique
    n, control = len(k), int((k.group == "control").sum())
    assert control == out["control"]
    lo, hi = sps.binom.interval(0.999, n, 0.3)
    assert lo <= control <= hi
    tiers = _pandas_audience(ws).set_index("customer_id").tier
    per_tier = k.assign(tier=k.customer_id.map(tiers)).groupby("tier")
    for _tier, g in per_tier:  # stratified: within one of the exact share in every tier
        assert abs((g.group == "control").sum() - 0.3 * len(g)) < 1
    assert set(k.customer_id) <= set(tiers.index)
    # every transition audited, by who made it
    assert _audit(ws, cid) == [
        ("ann (token)", "create_draft"), ("ann (token)", "submit"),
        ("max (token)", "reject"), ("ann (token)", "update_draft"), ("ann (token)", "submit"),
        ("max (token)", "approve"), ("ann (token)", "create"), ("ann (token)", "launch")]
    r = api.get(f"/api/v1/campaigns/{cid}", headers=mx).json()
    assert [h["action"] for h in r["history"]] == [
        "create_draft", "submit", "reject", "update_draft", "submit", "approve", "launch"]
    r = api.get(f"/api/v1/campaigns/{cid}/results", headers=mx).json()
    assert r["has_responses"] is False and r["message"].startswith("No responses yet")
    assert (r["n_treatment"], r["n_control"]) == (out["treatment"], out["control"])


def test_author_may_not_approve_their_own_campaign(ws: Workspace, api: TestClient,
                                                   tokens: dict[str, dict[str, str]]) -> None:
    ann, ada = tokens["ann"], tokens["ada"]
    api.post("/api/v1/campaigns", json=_spec(ws, "OWN", 70), headers=ann)
    api.post("/api/v1/campaigns/OWN/submit", headers=ann)
    with ws.store.session() as s:  # ann is promoted to manager meanwhile
        s.scalars(select(User).where(User.username == "ann")).one().role = "manager"
    try:
        body = assert_problem(api.post("/api/v1/campaigns/OWN/approve", headers=ann), 403)
        assert "another approver" in body["detail"]
    finally:
        with ws.store.session() as s:
            s.scalars(select(User).where(User.username == "ann")).one().role = "analyst"
    assert api.get("/api/v1/campaigns/OWN", headers=ann).json()["status"] == "submitted"
    # an administrator may approve their own
    api.post("/api/v1/campaigns", json=_spec(ws, "ADMINS", 75), headers=ada)
    api.post("/api/v1/campaigns/ADMINS/submit", headers=ada)
    r = api.post("/api/v1/campaigns/ADMINS/approve", json={"reason": "ok"}, headers=ada)
    assert r.status_code == 200 and r.json()["status"] == "approved"


def test_launch_refused_when_launched_elsewhere(ws: Workspace, api: TestClient,
                                                tokens: dict[str, dict[str, str]]) -> None:
    ann, mx = tokens["ann"], tokens["max"]
    api.post("/api/v1/campaigns", json=_spec(ws, "TWICE", 80), headers=ann)
    api.post("/api/v1/campaigns/TWICE/submit", headers=ann)
    api.post("/api/v1/campaigns/TWICE/approve", headers=mx)
    launching.launch(ws, CampaignSpec.parse(_spec(ws, "TWICE", 80)), "cli")  # as the CLI does
    body = assert_problem(api.post("/api/v1/campaigns/TWICE/launch", headers=ann), 409)
    assert "already exists" in body["detail"]  # the launch service's own message


def test_pages_create_approve_launch_with_csrf(ws: Workspace,
                                               clients: dict[str, TestClient]) -> None:
    ann, mx = clients["ann"], clients["max"]
    token = csrf(ann, "/campaigns/new")
    form = {**_form(ws, "WEB", 90), "action": "save"}
    assert ann.post("/campaigns/new", data=form).status_code == 403  # no CSRF token
    r = ann.post("/campaigns/new", data={**form, "csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/campaigns/WEB"
    page = ann.get("/campaigns/WEB").text
    assert 'id="campaign-submit"' in page and 'data-status="draft"' in page
    p = launching.plan(ws, CampaignSpec.parse(_spec(ws, "WEB", 90)))
    assert cells(page)["contactable"] == f"{p.contactable:,}"
    r = ann.post("/campaigns/WEB/approve", data={"csrf_token": token})
    assert r.status_code == 403  # analysts do not approve
    r = ann.post("/campaigns/WEB/launch", data={"csrf_token": token})
    assert r.status_code == 409 and 'id="campaign-error"' in r.text  # not approved yet
    assert ann.post("/campaigns/WEB/submit", data={"csrf_token": token},
                    follow_redirects=False).status_code == 303
    page = ann.get("/campaigns/WEB").text
    assert 'id="campaign-approve"' not in page  # analysts see no approve button
    page = mx.get("/campaigns/WEB").text
    assert 'id="campaign-approve"' in page and 'id="campaign-reject"' in page
    assert 'id="campaign-launch"' not in page
    assert mx.post("/campaigns/WEB/approve", data={}).status_code == 403  # no CSRF token
    r = mx.post("/campaigns/WEB/approve", data={"csrf_token": csrf(mx, "/campaigns/WEB")},
                follow_redirects=False)
    assert r.status_code == 303
    page = ann.get("/campaigns/WEB").text
    assert 'id="campaign-launch"' in page and 'data-status="approved"' in page
    r = ann.post("/campaigns/WEB/launch", data={"csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303
    page = ann.get("/campaigns/WEB").text
    assert 'data-status="launched"' in page and 'id="campaign-no-responses"' in page
    k = ws.warehouse.read("campaign_contacts").to_pandas()
    k = k[k.campaign_id == "WEB"]
    assert cells(page)["n_treatment"] == f"{(k.group == 'treatment').sum():,}"
    assert cells(page)["n_control"] == f"{(k.group == 'control').sum():,}"
    assert [a for _who, a in _audit(ws, "WEB")] == [
        "create_draft", "submit", "approve", "create", "launch"]
    lst = ann.get("/campaigns").text
    row = re.search(r'<tr data-campaign="WEB">(.*?)</tr>', lst, re.S).group(1)  # type: ignore[union-attr]
    assert "Launched" in row and cells(row)["audience"] == f"{len(k):,}"


def test_edit_rejected_campaign_on_the_page(ws: Workspace,
                                            clients: dict[str, TestClient]) -> None:
    ann, mx = clients["ann"], clients["max"]
    token = csrf(ann, "/campaigns/new")
    ann.post("/campaigns/new", data={**_form(ws, "EDIT", 100), "action": "save",
                                     "csrf_token": token})
    ann.post("/campaigns/EDIT/submit", data={"csrf_token": token})
    r = mx.post("/campaigns/EDIT/reject", data={"csrf_token": csrf(mx, "/campaigns/EDIT"),
                                                "reason": "换一个优惠"}, follow_redirects=False)
    assert r.status_code == 303
    page = ann.get("/campaigns/EDIT").text
    assert "换一个优惠" in page and 'id="campaign-edit"' in page
    form = ann.get("/campaigns/EDIT/edit").text
    assert 'value="20"' in form and "cf-spec_yaml" in form  # the fields, YAML box empty
    assert re.search(r'<textarea id="cf-spec_yaml"[^>]*></textarea>', form)
    r = ann.post("/campaigns/EDIT/edit", data={**_form(ws, "EDIT", 100, offer_text="满300减50"),
                                               "action": "save", "csrf_token": token},
                 follow_redirects=False)
    assert r.status_code == 303
    d = ann.get("/api/v1/campaigns/EDIT").json()
    assert d["status"] == "draft" and d["spec"]["offers"]["default"]["text"] == "满300减50"


# -- results ---------------------------------------------------------------------------------

def _responders(ws: Workspace, cid: str) -> dict[str, int]:
    """Responders by group by pandas: a response of the campaign (not a decline, opt-out …)
    within the window after the contact."""
    camp = ws.warehouse.read("campaigns").to_pandas().set_index("campaign_id").loc[cid]
    window = (pd.Timestamp(camp.end_date) - pd.Timestamp(camp.start_date)).days
    k = ws.warehouse.read("campaign_contacts").to_pandas()
    k = k[k.campaign_id == cid]
    r = ws.warehouse.read("responses").to_pandas()
    r = r[(r.campaign_id == cid) & ~r.response_type.isin(NOT_A_RESPONSE)]
    j = k.merge(r[["customer_id", "response_time"]], on="customer_id")
    hit = j[(j.response_time >= j.contact_time)
            & (j.response_time <= j.contact_time + pd.Timedelta(days=window))]
    return {g: hit[hit.group == g].customer_id.nunique() for g in ("treatment", "control")}


def _ci(d: dict[str, Any]) -> str:
    return f"{money(d['estimate'], 'en', digits=0)} [{money(d['low'], 'en', digits=0)}, " \
           f"{money(d['high'], 'en', digits=0)}]"


@pytest.mark.parametrize("cid", ["CMP1", "CMP3"])
def test_results_page_and_api_equal_measure(ws: Workspace, clients: dict[str, TestClient],
                                            api: TestClient,
                                            tokens: dict[str, dict[str, str]],
                                            cid: str) -> None:
    res = measure(ws, cid)
    assert res.design == "randomised" and res.attribution == "responses"
    k = ws.warehouse.read("campaign_contacts").to_pandas()
    k = k[k.campaign_id == cid]
    # the service against pandas
    assert res.n_treatment == (k.group == "treatment").sum()
    assert res.n_control == (k.group == "control").sum()
    hits = _responders(ws, cid)
    assert (res.responders_treatment, res.responders_control) == (hits["treatment"],
                                                                   hits["control"])
    # the page against the service
    page = clients["max"].get(f"/campaigns/{cid}").text
    got = cells(page)
    assert got["n_treatment"] == f"{res.n_treatment:,}"
    assert got["responders_treatment"] == f"{res.responders_treatment:,}"
    assert got["rate_treatment"] == number(res.response_rate["mean_treat"], "en",
                                           percent=True, digits=2)
    assert got["rate_control"] == number(res.response_rate["mean_control"], "en",
                                         percent=True, digits=2)
    assert got["incremental_revenue"] == _ci(res.incremental_revenue)
    assert got["incremental_margin"] == _ci(res.incremental_margin)
    assert got["cost"] == money(res.cost, "en", digits=0)
    roi = res.roi
    assert got["roi"] == (f"{number(roi['estimate'], 'en', percent=True)} "
                          f"[{number(roi['low'], 'en', percent=True)}, "
                          f"{number(roi['high'], 'en', percent=True)}]")
    assert "Randomised control group" in page and "imported responses" in page
    charts = dict(re.findall(r'<script type="application/json" id="(chart-[\w-]+)">(.*?)'
                             r'</script>', page, re.S))
    for field, rows in res.uplift_by_segment.items():
        opt = json.loads(charts[f"chart-uplift-{field}"])
        assert opt["series"][0]["data"] == [None if r["uplift"] is None else
                                            round(100 * r["uplift"], 2) for r in rows]
        assert f'data-uplift="{field}"' in page
    assert set(res.uplift_by_segment) >= {"tier"}
    qini = json.loads(charts["chart-qini"])
    assert res.qini is not None
    assert qini["series"][0]["data"] == [round(g, 2) for g in res.qini["gain"]]
    assert qini["series"][0]["type"] == "line"
    assert "<script>" not in page and "onclick" not in page  # strict CSP: nothing inline
    # the API against the service
    body = api.get(f"/api/v1/campaigns/{cid}/results", headers=tokens["ann"]).json()
    assert body["has_responses"] is True and body["message"] is None
    want = res.to_dict()
    for key in ("n_treatment", "n_control", "responders_treatment", "responders_control",
                "cost", "significant", "design", "attribution"):
        assert body[key] == want[key], key
    for key in ("response_rate", "incremental_revenue", "incremental_margin", "roi"):
        for part in ("estimate", "low", "high"):
            assert body[key][part] == pytest.approx(want[key][part], rel=1e-9), (key, part)
    assert body["uplift_by_segment"].keys() == want["uplift_by_segment"].keys()


def test_results_without_a_control_group_are_labelled(
        ws: Workspace, clients: dict[str, TestClient], api: TestClient,
        tokens: dict[str, dict[str, str]]) -> None:
    start = last_transaction_day(ws.engine) - timedelta(days=90)  # purchases follow it
    spec = CampaignSpec.parse(_spec(ws, "NOHOLD", 0, holdout={"fraction": 0},
                                    audience={"score_band": {"score": "clv", "top": 300}},
                                    schedule={"start": start.isoformat()}))
    launching.launch(ws, spec, "cli")
    res = measure(ws, "NOHOLD")
    assert res.design == "difference_in_differences" and res.responders_treatment > 0
    page = clients["ann"].get("/campaigns/NOHOLD").text
    assert 'id="results-weaker"' in page and "Weaker evidence" in page
    assert "Difference-in-differences against a matched comparison group" in page
    assert cells(page)["incremental_revenue"] == _ci(res.incremental_revenue)
    assert cells(page)["n_control"] == f"{res.n_control:,}"  # the matched comparison group
    # nothing to measure (an empty audience was launched): the service's reason on the page
    spec = CampaignSpec.parse(_spec(ws, "EMPTY", 0, audience={"score_band": {
        "score": "clv", "min": 1e15}}, schedule={"start": start.isoformat()}))
    launching.launch(ws, spec, "cli")
    with pytest.raises(KehuInputError) as why:
        measure(ws, "EMPTY")
    r = clients["ann"].get("/campaigns/EMPTY")
    assert r.status_code == 200 and 'id="campaign-no-results"' in r.text
    assert html.escape(str(why.value), quote=True) in r.text
    body = api.get("/api/v1/campaigns/EMPTY/results", headers=tokens["ann"]).json()
    assert body["has_responses"] is False and body["message"] == str(why.value)


def test_campaign_list_page_and_api(ws: Workspace, clients: dict[str, TestClient],
                                    api: TestClient,
                                    tokens: dict[str, dict[str, str]]) -> None:
    past = {c["campaign_id"]: c for c in list_campaigns(ws)}
    page = clients["max"].get("/campaigns").text
    for cid in ("CMP1", "CMP2", "CMP3"):
        row = re.search(rf'<tr data-campaign="{cid}">(.*?)</tr>', page, re.S).group(1)  # type: ignore[union-attr]
        assert "Launched" in row
        assert cells(row)["audience"] == f"{past[cid]['treatment'] + past[cid]['control']:,}"
    assert 'id="campaign-new"' not in page  # managers do not create campaigns
    assert 'id="campaign-new"' in clients["ann"].get("/campaigns").text
    body = api.get("/api/v1/campaigns", params={"page_size": 2},
                   headers=tokens["ann"]).json()
    assert body["total"] >= 3 and len(body["rows"]) == 2 and body["pages"] >= 2
    launched = api.get("/api/v1/campaigns", params={"status": "launched", "page_size": 200},
                       headers=tokens["ann"]).json()
    assert {r["campaign_id"] for r in launched["rows"]} == set(past)
    assert_problem(api.get("/api/v1/campaigns", params={"status": "gone"},
                           headers=tokens["ann"]), 422)
    assert_problem(api.get("/api/v1/campaigns", params={"page": 0},
                           headers=tokens["ann"]), 422)
    d = api.get("/api/v1/campaigns/CMP2", headers=tokens["ann"]).json()
    assert d["status"] == "launched" and d["workflow"] is None and d["allowed_actions"] == []


# -- roles, anonymous, Chinese ---------------------------------------------------------------

def test_roles(app: FastAPI, clients: dict[str, TestClient], api: TestClient,
               tokens: dict[str, dict[str, str]], ws: Workspace) -> None:
    pages = ["/campaigns", "/campaigns/CMP1", "/campaigns/new"]
    for user in ("amy", "vic"):
        for path in pages:
            assert clients[user].get(path).status_code == 403, (user, path)
        for path in ("/api/v1/campaigns", "/api/v1/campaigns/CMP1",
                     "/api/v1/campaigns/CMP1/results"):
            assert_problem(api.get(path, headers=tokens[user]), 403)
        assert_problem(api.post("/api/v1/campaigns/plan", json=_spec(ws, "R", 40),
                                headers=tokens[user]), 403)
        assert_problem(api.post("/api/v1/campaigns", json=_spec(ws, "R", 40),
                                headers=tokens[user]), 403)
    for path in ("/campaigns", "/campaigns/CMP1"):
        assert clients["max"].get(path).status_code == 200
    assert clients["max"].get("/campaigns/new").status_code == 403  # managers approve only
    assert clients["ada"].get("/campaigns/new").status_code == 200
    assert_problem(api.post("/api/v1/campaigns", json=_spec(ws, "R", 40),
                            headers=tokens["max"]), 403)
    anon = TestClient(app)
    r = anon.get("/campaigns/CMP1", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login?next=")
    assert_problem(anon.get("/api/v1/campaigns"), 401)
    assert clients["ann"].get("/campaigns/NOPE").status_code == 404


def test_pages_in_chinese(clients: dict[str, TestClient]) -> None:
    zh = catalogue("zh_CN")  # the translations the pages must show
    ann = clients["ann"]
    page = ann.get("/campaigns/CMP1?lang=zh_CN").text
    assert 'lang="zh-CN"' in page and "营销活动" in page
    for english in ("Treatment against control", "Incremental revenue", "Uplift by tier",
                    "Estimates with their 95 % intervals", "Randomised control group"):
        assert english not in page and zh[english] in page, english
    assert "增量收入" in page and "对照组" in page
    form = ann.get("/campaigns/new?lang=zh_CN").text
    for english in ("Saved segment", "Holdout (% of the audience)", "Check", "Save as draft"):
        assert zh[english] in form, english
    lst = ann.get("/campaigns?lang=zh_CN").text
    assert zh["Launched"] in lst
