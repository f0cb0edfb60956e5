"""The customer list service (issue 6) against an independent pandas computation over the
same warehouse tables and app store: every filter, search kind and sort, pagination, the
account manager's scope, and the customer index's reuse and rebuild."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from kehu import Workspace
from kehu.analytics.run import SCORES_TABLE, analysis_run
from kehu.customers import CustomerQuery, Scope, ensure_index, get_visible, search
from kehu.customers.search import _WARM
from kehu.demo import generate
from kehu.errors import KehuInputError, NotFoundError
from kehu.ingest.manifest import load_manifest
from kehu.store import services as sv

ALL = Scope()


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    base = tmp_path_factory.mktemp("custws")
    s = generate("retail", 5_000, seed=21, out=base / "src")
    w = Workspace.init(base / "ws")
    load_manifest(w, s.manifest)
    analysis_run(w)
    return w


# -- the independent reference --------------------------------------------------------------


def _managers(ws: Workspace, cust: pd.DataFrame) -> pd.Series:
    """Today's manager per customer: current store assignment, else none when the store
    tracked the customer, else the warehouse column."""
    from sqlalchemy import select

    from kehu.store.models import Assignment as A

    with ws.store.session() as s:
        rows = s.execute(select(A.id, A.customer_id, A.employee_id, A.valid_from,
                                A.valid_to)).all()
    a = pd.DataFrame(rows, columns=["id", "customer_id", "employee_id", "valid_from",
                                    "valid_to"])
    mgr = cust.set_index("customer_id").account_manager_id.replace("", None).copy()
    today = date.today()
    started = a[a.valid_from <= today]
    for cid in set(started.customer_id):
        mgr[cid] = None
    cur = started[started.valid_to.isna() | started.valid_to.map(
        lambda d: d is not None and not pd.isna(d) and d > today)]
    for _, r in cur.sort_values(["valid_from", "id"]).iterrows():
        mgr[r.customer_id] = r.employee_id   # the latest one wins
    return mgr


def _expected(ws: Workspace) -> pd.DataFrame:
    cust = ws.warehouse.read("customers").to_pandas()
    sc = ws.warehouse.read(SCORES_TABLE).to_pandas()
    last = sc[["as_of", "run_id"]].drop_duplicates().sort_values(["as_of", "run_id"]).iloc[-1]
    sc = sc[sc.run_id == last.run_id]
    df = cust[["customer_id", "name", "phone", "city"]].merge(
        sc[["customer_id", "tier", "rfm_class", "lifecycle_stage", "churn_risk", "clv",
            "total_value", "current_value"]], on="customer_id", how="left")
    df["account_manager_id"] = df.customer_id.map(_managers(ws, cust))
    return df


def _ordered(df: pd.DataFrame, sort: str = "total_value", desc: bool = True) -> list[str]:
    if sort == "customer_id":
        return list(df.sort_values("customer_id", ascending=not desc).customer_id)
    # missing values last in both directions, ties by customer id
    d = df.assign(_null=df[sort].isna())
    out = d.sort_values(["_null", "customer_id"])
    out = out.sort_values(["_null", sort], ascending=[True, not desc], kind="stable")
    return list(out.customer_id)


def _all_ids(ws: Workspace, scope: Scope = ALL, **kw: Any) -> tuple[int, list[str]]:
    ids: list[str] = []
    page, total = 1, None
    while True:
        p = search(ws, CustomerQuery(page=page, page_size=200, **kw), scope)
        total = p.total
        ids += [r["customer_id"] for r in p.rows]
        if not p.rows:
            return total, ids
        page += 1


def _national(phone: str | None) -> str:
    """Stored phone -> national digits, written independently of the service's helper."""
    d = "".join(c for c in (phone or "") if c.isdigit())
    if d.startswith("0086"):
        return d[4:]
    return d[2:] if len(d) == 13 and d.startswith("86") else d


def _matches(df: pd.DataFrame, q: str, digits: str | None) -> pd.Series:
    """``digits``: the phone digits the query stands for (None: not a phone query)."""
    m = df.customer_id.str.upper().str.startswith(q.upper()) \
        | df.name.fillna("").str.lower().str.contains(q.lower(), regex=False)
    if digits:
        phones = df.phone.map(_national)
        m |= phones.str.startswith(digits) | phones.str.endswith(digits)
    return m


# -- filters, searches and sorts ---------------------------------------------------------------

FILTERS: dict[str, tuple[dict[str, Any], Callable[[pd.DataFrame], pd.Series]]] = {
    "none": ({}, lambda d: d.customer_id.notna()),
    "tiers": ({"tiers": ["gold", "diamond"]}, lambda d: d.tier.isin(["gold", "diamond"])),
    "lifecycle": ({"lifecycle_stages": ["declining", "dormant"]},
                  lambda d: d.lifecycle_stage.isin(["declining", "dormant"])),
    "rfm": ({"rfm_classes": ["important_value"]}, lambda d: d.rfm_class == "important_value"),
    "risk range": ({"min_risk": 0.1, "max_risk": 0.5},
                   lambda d: (d.churn_risk >= 0.1) & (d.churn_risk <= 0.5)),
    "min risk": ({"min_risk": 0.3}, lambda d: d.churn_risk >= 0.3),
    "manager": ({"manager": "E0002"}, lambda d: d.account_manager_id == "E0002"),
    "tier + risk": ({"tiers": ["silver"], "min_risk": 0.05},
                    lambda d: (d.tier == "silver") & (d.churn_risk >= 0.05)),
}


@pytest.mark.parametrize("name", list(FILTERS))
def test_filters_match_pandas(ws: Workspace, name: str) -> None:
    kw, pred = FILTERS[name]
    exp = _expected(ws)
    want = exp[pred(exp).fillna(False).astype(bool)]
    assert len(want) > 0, name
    page = search(ws, CustomerQuery(page_size=200, sort="customer_id", desc=False, **kw), ALL)
    assert page.total == len(want)
    assert [r["customer_id"] for r in page.rows] == _ordered(want, "customer_id", False)[:200]


@pytest.mark.parametrize("sort", ["total_value", "current_value", "clv", "churn_risk",
                                  "customer_id", "name"])
@pytest.mark.parametrize("desc", [True, False])
def test_sorts_match_pandas(ws: Workspace, sort: str, desc: bool) -> None:
    exp = _expected(ws)
    want = _ordered(exp, sort, desc)
    first = search(ws, CustomerQuery(sort=sort, desc=desc, page_size=200), ALL)
    assert [r["customer_id"] for r in first.rows] == want[:200]
    # a page in the middle, where ties and missing values sit for some columns
    mid = len(want) // 2 // 50 + 1
    p = search(ws, CustomerQuery(sort=sort, desc=desc, page=mid, page_size=50), ALL)
    assert [r["customer_id"] for r in p.rows] == want[(mid - 1) * 50:mid * 50]


def test_filtered_pages_in_every_order_match_pandas(ws: Workspace) -> None:
    """Filtered pages read copies sorted in the page's order (more orders than are kept, so
    copies are dropped and made again): every page equals pandas' sort of the matches."""
    exp = _expected(ws)
    for kw, pred in (FILTERS["tier + risk"], FILTERS["lifecycle"], FILTERS["risk range"]):
        want_all = exp[pred(exp).fillna(False).astype(bool)]
        for sort in ("total_value", "current_value", "clv", "churn_risk", "customer_id",
                     "name"):
            for desc in (True, False):
                want = _ordered(want_all, sort, desc)
                for page in (1, max(1, len(want) // 2 // 20), len(want) // 20 + 1):
                    got = search(ws, CustomerQuery(sort=sort, desc=desc, page=page,
                                                   page_size=20, **kw), ALL)
                    assert got.total == len(want)
                    assert [r["customer_id"] for r in got.rows] == \
                        want[(page - 1) * 20:page * 20], (kw, sort, desc, page)


def test_rows_carry_the_runs_scores(ws: Workspace) -> None:
    exp = _expected(ws).set_index("customer_id")
    page = search(ws, CustomerQuery(tiers=["diamond"], page_size=20), ALL)
    run = ws.warehouse.read("_runs").to_pylist()[-1]
    assert (page.run_id, page.as_of) == (run["run_id"], run["as_of"])
    for r in page.rows:
        e = exp.loc[r["customer_id"]]
        assert (r["name"], r["phone"], r["city"], r["tier"]) == \
            (e["name"], e.phone, e.city, e.tier)
        for k in ("clv", "total_value", "current_value"):
            assert r[k] == pytest.approx(e[k])
        assert r["churn_risk"] is None if pd.isna(e.churn_risk) else \
            r["churn_risk"] == pytest.approx(e.churn_risk)


def _search_cases(exp: pd.DataFrame) -> dict[str, tuple[str, str | None]]:
    rng = np.random.default_rng(5)
    names = exp.name.dropna()
    two = names[names.str.len() >= 3].iloc[int(rng.integers(0, 500))]
    phone = _national(exp.phone.dropna().iloc[int(rng.integers(0, 500))])
    return {
        "id prefix, lower case": ("c000012", None),
        "full id": (exp.customer_id.iloc[1234], None),
        "Chinese character": (names.iloc[7][-1], None),
        "Chinese two characters": (two[1:3], None),
        "Chinese full name": (names.iloc[42], None),
        "phone +86 with dashes": (f"+86 {phone[:3]}-{phone[3:7]}-{phone[7:]}", phone),
        "phone 0086 spaced": (f"0086 {phone[:3]} {phone[3:7]} {phone[7:]}", phone),
        "phone 86 prefixed": (f"86{phone}", phone),
        "phone tail": (phone[-4:], phone[-4:]),
        "phone prefix": (phone[:7], phone[:7]),
        "+86 prefix only": (f"+86 {phone[:5]}", phone[:5]),
        "(+86) prefix only": (f"(+86) {phone[:3]} {phone[3:6]}", phone[:6]),
        "nothing": ("不存在的客户", None),
    }


def test_search_kinds_match_pandas(ws: Workspace) -> None:
    exp = _expected(ws)
    for kind, (q, digits) in _search_cases(exp).items():
        want = exp[_matches(exp, q, digits)]
        total, ids = _all_ids(ws, q=q, sort="customer_id", desc=False)
        assert total == len(want), (kind, q)
        assert ids == _ordered(want, "customer_id", False), (kind, q)
        if kind != "nothing":
            assert total > 0, (kind, q)
    # the customer behind a phone is found by its usual spellings
    phone = _national(exp.phone.dropna().iloc[0])
    cid = exp[exp.phone.map(_national) == phone].customer_id.iloc[0]
    for q in (f"+86 {phone[:3]}-{phone[3:7]}-{phone[7:]}", f"86{phone}", phone[-4:]):
        assert cid in _all_ids(ws, q=q)[1], q


def test_search_combines_with_filters(ws: Workspace) -> None:
    exp = _expected(ws)
    q = exp.name.dropna().iloc[3][0]   # a common surname
    want = exp[_matches(exp, q, None) & exp.tier.isin(["silver", "gold"])
               & (exp.churn_risk <= 0.2).fillna(False)]
    p = search(ws, CustomerQuery(q=q, tiers=["silver", "gold"], max_risk=0.2, sort="clv",
                                 page_size=200), ALL)
    assert p.total == len(want) > 0
    assert [r["customer_id"] for r in p.rows] == _ordered(want, "clv", True)[:200]


def test_pagination_totals(ws: Workspace) -> None:
    exp = _expected(ws)
    want = _ordered(exp[exp.tier == "silver"], "total_value", True)
    pages = [search(ws, CustomerQuery(tiers=["silver"], page=i, page_size=137), ALL)
             for i in range(1, len(want) // 137 + 2)]
    assert all(p.total == len(want) for p in pages)
    assert pages[0].pages == len(pages)
    assert [r["customer_id"] for p in pages for r in p.rows] == want
    past = search(ws, CustomerQuery(tiers=["silver"], page=len(pages) + 5, page_size=137), ALL)
    assert past.rows == [] and past.total == len(want)


def test_saved_segment_filter(ws: Workspace) -> None:
    exp = _expected(ws)
    spec = {"name": "上海金卡", "rule": {"all": [
        {"field": "city", "op": "=", "value": "上海"},
        {"field": "tier", "op": "in", "value": ["gold", "diamond", "silver"]}]}}
    sv.save_definition(ws.store, sv.DefinitionIn(kind="segment", name="上海金卡", spec=spec),
                       "test")
    want = exp[(exp.city == "上海") & exp.tier.isin(["gold", "diamond", "silver"])]
    total, ids = _all_ids(ws, segment="上海金卡", sort="customer_id", desc=False)
    assert total == len(want) > 0
    assert ids == _ordered(want, "customer_id", False)
    # a new version of the definition is picked up
    spec["rule"]["all"][1]["value"] = ["diamond"]   # type: ignore[index]
    sv.save_definition(ws.store, sv.DefinitionIn(kind="segment", name="上海金卡", spec=spec),
                       "test")
    total, _ = _all_ids(ws, segment="上海金卡", tiers=["diamond", "gold"])
    assert total == ((exp.city == "上海") & (exp.tier == "diamond")).sum()
    with pytest.raises(KehuInputError, match="'segment' parameter names no saved segment"):
        search(ws, CustomerQuery(segment="没有这个分群"), ALL)


def test_viewer_sees_masked_phones(ws: Workspace) -> None:
    p = search(ws, CustomerQuery(page_size=5), Scope.for_role("viewer"))
    full = search(ws, CustomerQuery(page_size=5), Scope.for_role("analyst"))
    for masked, r in zip(p.rows, full.rows, strict=True):
        d = _national(r["phone"])
        assert masked["phone"] == d[:3] + "****" + d[-4:]
    assert "*" not in "".join(r["phone"] for r in full.rows)


# -- the account manager's scope ------------------------------------------------------------


def test_account_manager_sees_only_their_portfolio(ws: Workspace) -> None:
    from kehu.accounts.portfolio import managers_on

    exp = _expected(ws)
    mine = exp[exp.account_manager_id == "E0001"].customer_id
    other = exp[exp.account_manager_id == "E0002"].customer_id
    moved, ended = other.iloc[0], mine.iloc[0]
    # the store overrides the warehouse column: one customer moves to E0001, one leaves
    sv.assign(ws.store, moved, "E0001", "test", since=date.today() - timedelta(days=3))
    sv.unassign(ws.store, ended, "test", until=date.today())
    sv.assign(ws.store, ended, "E0001", "test", since=date.today() - timedelta(days=30))
    sv.unassign(ws.store, ended, "test", until=date.today() - timedelta(days=1))

    exp = _expected(ws)
    want = set(exp[exp.account_manager_id == "E0001"].customer_id)
    assert moved in want and ended not in want
    scope = Scope(employee_id="E0001")
    total, ids = _all_ids(ws, scope)
    assert total == len(ids) == len(want) and set(ids) == want
    m = managers_on(ws, date.today()).to_pandas()
    assert set(m[m.employee_id == "E0001"].customer_id) == want
    assert set(sv.portfolio(ws.store, "E0001")) <= want   # the store's part of it
    # filters and search stay inside the scope
    _, ids = _all_ids(ws, scope, tiers=["gold", "diamond"])
    assert set(ids) == want & set(exp[exp.tier.isin(["gold", "diamond"])].customer_id)
    assert _all_ids(ws, scope, manager="E0002") == (0, [])
    assert _all_ids(ws, scope, q=other.iloc[1])[0] == 0
    # one customer's page: theirs yes, anyone else's is "not found", like an unknown id
    assert get_visible(ws, moved, scope)["account_manager_id"] == "E0001"
    assert get_visible(ws, moved, ALL)["customer_id"] == moved
    for cid in (other.iloc[1], ended, "C99999999"):
        with pytest.raises(NotFoundError, match=f"No customer with id '{cid}'"):
            get_visible(ws, cid, scope)
    with pytest.raises(NotFoundError):
        get_visible(ws, "C99999999", ALL)
    # the manager column of the rows follows the store too
    assert search(ws, CustomerQuery(q=moved), ALL).rows[0]["account_manager_id"] == "E0001"


def test_scope_for_roles() -> None:
    assert Scope.for_role("admin") == Scope()
    assert Scope.for_role("account_manager", "E7") == Scope(employee_id="E7")
    with pytest.raises(KehuInputError, match="employee id"):
        Scope.for_role("account_manager")


# -- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(("data", "param"), [
    ({"page_size": 0}, "page_size"), ({"page_size": 201}, "page_size"), ({"page": 0}, "page"),
    ({"sort": "age"}, "sort"), ({"min_risk": 1.5}, "min_risk"),
    ({"lifecycle_stages": ["asleep"]}, "lifecycle_stages"), ({"colour": "red"}, "colour"),
    ({"as_of": "yesterday"}, "as_of"), ({"q": "x" * 101}, "q"),
])
def test_validation_errors_name_the_parameter(data: dict[str, Any], param: str) -> None:
    with pytest.raises(KehuInputError, match=rf"invalid customer query: {param}:"):
        CustomerQuery.parse(data)


def test_risk_bounds_must_be_ordered() -> None:
    with pytest.raises(KehuInputError, match=r"min_risk \(0.6\) must not exceed max_risk"):
        CustomerQuery.parse({"min_risk": 0.6, "max_risk": 0.2})


# -- the index: reused while nothing changed, rebuilt after a run or an import -------------------


def test_index_is_reused_then_rebuilt(ws: Workspace) -> None:
    first = ensure_index(ws)
    again = ensure_index(ws)
    assert not again.built and again.path == first.path
    assert again.rows == ws.warehouse.count("customers")
    search(ws, CustomerQuery(), ALL)
    warm = dict(_WARM)
    search(ws, CustomerQuery(tiers=["gold"]), ALL)
    assert {k: id(v) for k, v in _WARM.items()} == \
        {k: id(v) for k, v in warm.items()}

    # a new run (its scores appended as the analysis run does): a new index, its scores
    sc = ws.warehouse.read(SCORES_TABLE).to_pandas()
    old_run = first.run_id
    new = sc[sc.run_id == old_run].copy()
    new["run_id"] = "29990101T000000-abcdef"
    new["as_of"] = first.as_of + timedelta(days=1)   # type: ignore[operator]
    new["tier"] = np.where(new.tier == "regular", "diamond", new.tier)
    ws.warehouse.append(SCORES_TABLE, pa.Table.from_pandas(new, preserve_index=False,
                                                           schema=ws.warehouse.schema(
                                                               SCORES_TABLE)))
    rebuilt = ensure_index(ws)
    assert rebuilt.built and rebuilt.path != first.path
    assert rebuilt.run_id == "29990101T000000-abcdef"
    p = search(ws, CustomerQuery(tiers=["diamond"]), ALL)
    assert p.run_id == rebuilt.run_id and p.total == new.tier.eq("diamond").sum()
    # an as-of query still reads the earlier run
    old = search(ws, CustomerQuery(tiers=["diamond"], as_of=first.as_of), ALL)
    assert old.run_id == old_run and old.total == (sc.tier == "diamond").sum()
    assert not ensure_index(ws).built

    # an import changing the customers table: rebuilt again, the new name is searchable
    c = ws.warehouse.read("customers")
    names = c.column("name").to_pylist()
    names[0] = "欧阳娜娜"
    ws.warehouse.overwrite("customers", c.set_column(c.schema.get_field_index("name"), "name",
                                                     pa.array(names, pa.string())))
    after = ensure_index(ws)
    assert after.built and after.path != rebuilt.path
    hit = search(ws, CustomerQuery(q="欧阳娜"), ALL)
    assert [r["customer_id"] for r in hit.rows] == [c.column("customer_id")[0].as_py()]
