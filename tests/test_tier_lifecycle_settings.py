"""The workspace's tier scheme and lifecycle rules (saved definitions, Settings): a saved
scheme and saved rules change what the analysis run gives customers, checked against an
independent pandas computation on the warehouse's own rows; validation names the field."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kehu.analytics.lifecycle import LifecycleRules
from kehu.analytics.run import RUNS_TABLE, SCORES_TABLE, analysis_run
from kehu.analytics.schemes import (
    get_lifecycle_rules,
    get_tier_scheme,
    lifecycle_rules,
    parse_lifecycle_rules,
    parse_tier_scheme,
    save_lifecycle_rules,
    save_tier_scheme,
    tier_scheme,
)
from kehu.analytics.tiers import TierScheme
from kehu.errors import KehuInputError
from kehu.store.models import AuditEntry
from kehu.workspace import Workspace
from web_support import demo_workspace


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    w = demo_workspace(tmp_path_factory.mktemp("schemes"), customers=600, seed=5)
    yield w
    w.close()


def _run_scores(ws: Workspace, run_id: str) -> pd.DataFrame:
    sc = ws.engine.table(SCORES_TABLE)
    return sc.filter(sc.run_id == run_id).to_pandas().set_index("customer_id")


def _spend(ws: Workspace, as_of: date, days: int) -> pd.Series:
    """Trailing spend by hand: every transaction line (refunds included, negative) dated in
    (as_of - days, as_of], for every customer (0 without any)."""
    tx = ws.warehouse.read("transactions").to_pandas()
    cust = ws.warehouse.read("customers").to_pandas()
    day = pd.to_datetime(tx.transaction_time).dt.date
    lo = as_of - timedelta(days=days)
    w = tx[(day <= as_of) & (day > lo)]
    return w.groupby("customer_id").amount.sum().reindex(cust.customer_id, fill_value=0.0)


def test_defaults_until_saved(tmp_path: Path) -> None:
    from kehu.store.db import AppStore

    store = AppStore(f"sqlite:///{tmp_path / 'app.db'}")
    store.upgrade()
    assert get_tier_scheme(store) == (TierScheme(), None)
    assert get_lifecycle_rules(store) == (LifecycleRules(), None)
    assert tier_scheme() == TierScheme() and lifecycle_rules() == LifecycleRules()


def test_validation_names_the_field() -> None:
    base = TierScheme().model_dump()
    cases = {
        "tiers.cut": [{**t, "cut": c} for t, c in zip(base["tiers"], (100, 500, 50, 0),
                                                       strict=True)],
        "unique": [*base["tiers"][:3], {**base["tiers"][3], "code": "silver"}],
        "tiers.code": [{**t, "code": t["code"] + "x"} for t in base["tiers"]],
        "name_en": [{**base["tiers"][0], "name_en": ""}, *base["tiers"][1:]],
        "colour": [{**base["tiers"][0], "colour": "red"}, *base["tiers"][1:]],
    }
    for named, tiers in cases.items():
        with pytest.raises(KehuInputError, match=named):
            parse_tier_scheme({**base, "tiers": tiers})
    with pytest.raises(KehuInputError, match="method"):
        parse_tier_scheme({**base, "method": "vibes"})
    with pytest.raises(KehuInputError, match=r"dormant_days .* must be greater than active_days"):
        parse_lifecycle_rules({"active_days": 200, "dormant_days": 150})
    with pytest.raises(KehuInputError, match="new_days"):
        parse_lifecycle_rules({"new_days": 0})
    with pytest.raises(KehuInputError, match="dormant_dayz"):
        parse_lifecycle_rules({"dormant_dayz": 100})


def test_a_saved_tier_scheme_drives_the_run(ws: Workspace) -> None:
    default = tier_scheme(ws)
    first = analysis_run(ws)
    before = _run_scores(ws, first.run_id)
    spend = _spend(ws, first.as_of, 365)
    # gold at a much higher spend: the 90th percentile of the positive spends
    cuts = [float(np.quantile(spend[spend > 0], q)) for q in (0.97, 0.9, 0.5)]
    cuts = [round(c, 2) for c in cuts] + [0.0]
    data = default.model_dump()
    for t, c in zip(data["tiers"], cuts, strict=True):
        t["cut"] = c
    data["tiers"][1]["name_en"] = "Gold Plus"
    save_tier_scheme(ws, parse_tier_scheme(data), actor="test")
    assert tier_scheme(ws).tiers[1].cut == cuts[1] > default.tiers[1].cut
    with ws.store.session() as s:
        assert s.query(AuditEntry).filter(AuditEntry.object_type == "tier_scheme").count() == 1

    second = analysis_run(ws)
    after = _run_scores(ws, second.run_id)
    runs = ws.warehouse.read(RUNS_TABLE).to_pandas().set_index("run_id")
    details = json.loads(runs.details[second.run_id])
    assert details["tier_scheme"]["version"] == 1
    assert details["tier_scheme"]["tiers"][1]["cut"] == cuts[1]
    assert json.loads(runs.details[first.run_id])["tier_scheme"]["version"] is None
    codes = [t.code for t in default.tiers]
    expected = pd.Series(np.select([spend >= c for c in cuts[:-1]], codes[:-1], codes[-1]),
                         index=spend.index)
    assert (after.tier == expected.loc[after.index]).all()
    assert after.tier.value_counts().get("gold", 0) > 0
    assert (after.tier != before.loc[after.index].tier).sum() > 0  # the scheme mattered
    # the names the pages and services show are the saved ones
    from kehu.accounts.service_levels import tier_name

    assert tier_name("gold", tier_scheme(ws)) == "Gold Plus"
    # … and the explorer's, on its page and in its export
    from web_support import signed_in, web_app

    ann = signed_in(web_app(ws), "ann")
    page = ann.get("/explorer", params={"m": "revenue", "rows": "tier"})
    assert page.status_code == 200, page.text
    assert ">Gold Plus<" in page.text and ">Gold<" not in page.text
    csv = ann.get("/explorer/export", params={"m": "revenue", "rows": "tier"}).text
    assert "Gold Plus" in csv


def test_saved_lifecycle_rules_drive_the_run(ws: Workspace) -> None:
    rules = LifecycleRules(active_days=30, dormant_days=60)
    before = _run_scores(ws, analysis_run(ws).run_id).lifecycle_stage
    save_lifecycle_rules(ws, rules, actor="test")
    assert get_lifecycle_rules(ws) == (rules, 1)
    run = analysis_run(ws)
    got = _run_scores(ws, run.run_id).lifecycle_stage
    as_of = run.as_of
    tx = ws.warehouse.read("transactions").to_pandas()
    tx = tx[tx.kind.isna() | (tx.kind != "refund")]
    day = pd.to_datetime(tx.transaction_time).dt.date
    last = day[day <= as_of].groupby(tx.customer_id).max()
    recency = last.map(lambda d: (as_of - d).days)
    churn = ws.warehouse.read("churn_events").to_pandas()
    churned = set(churn[pd.to_datetime(churn.churn_date).dt.date <= as_of].customer_id)
    plain = recency[~recency.index.isin(churned)]
    # the first rules that apply, by recency alone: past 60 days churned, past 30 dormant
    expect = pd.Series(np.where(plain > 60, "churned",
                                np.where(plain > 30, "dormant", "")), index=plain.index)
    expect = expect[expect != ""]
    assert len(expect[expect == "dormant"]) >= 5 and len(expect[expect == "churned"]) >= 5
    assert (got.loc[expect.index] == expect).all()
    # the built-in rules (dormant past 90 days) had those 31–60 days away not dormant
    between = plain[(plain > 30) & (plain <= 60)].index
    assert len(between) > 0 and (got.loc[between] == "dormant").all()
    assert (before.loc[between] != "dormant").all()


def test_cli_show_and_set(tmp_path: Path) -> None:
    import yaml
    from typer.testing import CliRunner

    from kehu.cli.main import app

    w = Workspace.init(tmp_path / "ws")
    w.close()
    run, root, env = CliRunner().invoke, str(tmp_path / "ws"), {"KEHU_LANG": "en"}
    res = run(app, ["tierscheme", "show", "--json", "-w", root], env=env)
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout) == {"version": None, **TierScheme().model_dump(mode="json")}
    spec = TierScheme().model_dump(mode="json")
    spec["tiers"][0]["cut"] = 30_000
    (tmp_path / "tiers.yaml").write_text(yaml.safe_dump(spec, allow_unicode=True))
    res = run(app, ["tierscheme", "set", str(tmp_path / "tiers.yaml"), "-w", root], env=env)
    assert res.exit_code == 0 and "version 1" in res.stdout, res.output
    (tmp_path / "rules.yaml").write_text("active_days: 120\ndormant_days: 100\n")
    res = run(app, ["lifecyclerules", "set", str(tmp_path / "rules.yaml"), "-w", root],
              env=env)
    assert res.exit_code != 0 and "dormant_days" in res.output + str(res.exception)
    (tmp_path / "rules.yaml").write_text("dormant_days: 200\n")
    res = run(app, ["lifecyclerules", "set", str(tmp_path / "rules.yaml"), "--json",
                    "-w", root], env=env)
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["dormant_days"] == 200
    w = Workspace.open(tmp_path / "ws")
    assert tier_scheme(w).tiers[0].cut == 30_000 and lifecycle_rules(w).dormant_days == 200
    w.close()


def test_a_save_by_another_process_is_seen_within_a_second(tmp_path: Path) -> None:
    """The scheme in force is reused for DEFINITION_MEMO_SECONDS (the customer pages read it
    on every request): a save through another store object — another web worker, the CLI —
    is seen once that time has passed; a save through the same one at once."""
    import time

    from kehu.store.db import AppStore
    from kehu.store.services import DEFINITION_MEMO_SECONDS

    w = Workspace.init(tmp_path / "ws")
    here, elsewhere = w.store, AppStore(w.store_url)
    assert tier_scheme(here).tiers[1].name_en == "Gold"
    data = TierScheme().model_dump()
    data["tiers"][1]["name_en"] = "Gold Plus"
    save_tier_scheme(elsewhere, parse_tier_scheme(data), actor="test")
    time.sleep(DEFINITION_MEMO_SECONDS + 0.05)
    assert tier_scheme(here).tiers[1].name_en == "Gold Plus"
    data["tiers"][1]["name_en"] = "Gold Max"
    save_tier_scheme(here, parse_tier_scheme(data), actor="test")
    assert tier_scheme(here).tiers[1].name_en == "Gold Max"
    w.close()
