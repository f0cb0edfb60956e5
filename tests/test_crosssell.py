"""Association rules equal mlxtend's on the same baskets; offers respect what customers hold;
on a time hold-out, kehu's offers are bought more often than the most popular products."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta

import ibis
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mlxtend.frequent_patterns import apriori
from mlxtend.frequent_patterns import association_rules as mlx_rules
from typer.testing import CliRunner

from kehu import Workspace
from kehu.analytics.basket import ITEM_SEPARATOR, association_rules
from kehu.cli.main import app
from kehu.demo import generate
from kehu.errors import KehuInputError
from kehu.ingest.manifest import load_manifest
from kehu.models.crosssell import evaluate_holdout, next_best_offers, rising_products

METRICS = {"support": "support", "confidence": "confidence", "lift": "lift",
           "conviction": "conviction", "leverage": "leverage",
           "antecedent_support": "antecedent support", "consequent_support": "consequent support"}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Workspace, object]:
    base = tmp_path_factory.mktemp("crosssell")
    s = generate("retail", 2500, seed=23, out=base / "src")
    w = Workspace.init(base / "ws")
    load_manifest(w, s.manifest)
    return w, base / "src"


@pytest.fixture(scope="module")
def tx(demo: tuple[Workspace, object]) -> pd.DataFrame:
    t = demo[0].warehouse.read("transactions").to_pandas()
    t = t[t.product_id.notna() & (t.kind.isna() | (t.kind != "refund"))].copy()
    t["basket"] = t.order_id.fillna(t.transaction_id)
    t["day"] = t.transaction_time.dt.normalize()
    return t


def _mlxtend(baskets: pd.DataFrame, min_support: float, max_len: int = 2) -> pd.DataFrame:
    """Rules with a one-item consequent from mlxtend on the one-hot basket matrix."""
    onehot = pd.crosstab(baskets.basket, baskets["item"]).gt(0)
    freq = apriori(onehot, min_support=min_support, use_colnames=True, max_len=max_len)
    ref = mlx_rules(freq, num_itemsets=len(onehot), metric="confidence", min_threshold=0.0)
    ref = ref[ref.consequents.map(len) == 1].copy()
    ref["antecedent"] = ref.antecedents.map(lambda s: ITEM_SEPARATOR.join(sorted(s)))
    ref["consequent"] = ref.consequents.map(lambda s: next(iter(s)))
    return ref


def _assert_same_rules(got: pd.DataFrame, ref: pd.DataFrame) -> None:
    m = got.merge(ref, on=["antecedent", "consequent"], how="outer", indicator=True)
    assert (m._merge == "both").all(), m[m._merge != "both"][["antecedent", "consequent"]]
    assert len(m) > 0
    for ours, theirs in METRICS.items():
        a = m[ours if ours in got.columns and ours not in ref.columns else f"{ours}_x"] \
            if f"{ours}_x" in m.columns else m[ours]
        b = m[f"{theirs}_y"] if f"{theirs}_y" in m.columns else m[theirs]
        a, b = a.to_numpy(float), b.to_numpy(float)
        assert (np.isinf(a) == np.isinf(b)).all(), ours
        fin = np.isfinite(b)
        np.testing.assert_allclose(a[fin], b[fin], rtol=0, atol=1e-9, err_msg=ours)


@pytest.mark.parametrize("level,min_support", [("product", 0.002), ("category", 0.01)])
def test_rules_equal_mlxtend_on_the_demo(demo: tuple[Workspace, object], tx: pd.DataFrame,
                                         level: str, min_support: float) -> None:
    ws = demo[0]
    got = association_rules(ws.engine.table("transactions"), ws.engine.table("products"),
                            level=level, min_support=min_support).to_pandas()
    b = tx.assign(item=tx.product_id)
    if level == "category":
        cat = ws.warehouse.read("products", ["product_id", "category"]).to_pandas()
        b = tx.merge(cat, on="product_id").rename(columns={"category": "item"})
    _assert_same_rules(got, _mlxtend(b, min_support))
    # counts are whole baskets: support × N
    n = b.basket.nunique()
    np.testing.assert_allclose(got.baskets, got.support * n, atol=1e-6)


def _random_baskets(seed: int, n: int = 400) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        k = rng.integers(1, 6)
        items = rng.choice(list("abcdefgh"), size=k, p=[.25, .2, .15, .12, .1, .08, .06, .04])
        if "a" in items and rng.random() < 0.6:
            items = [*items, "b", "c"]
        rows += [(f"o{i}", str(x)) for x in items]   # duplicates within a basket on purpose
    return pd.DataFrame(rows, columns=["basket", "item"])


def _as_tx(b: pd.DataFrame) -> ibis.Table:
    n = len(b)
    return ibis.memtable(pd.DataFrame({
        "transaction_id": [str(i) for i in range(n)], "order_id": b.basket,
        "customer_id": "c", "transaction_time": datetime(2024, 1, 1), "product_id": b["item"],
        "kind": pd.Series([None] * n, dtype=object)}))


def test_triples_equal_mlxtend_and_duplicates_count_once() -> None:
    b = _random_baskets(3)
    got = association_rules(_as_tx(b), min_support=0.03, max_items=3).to_pandas()
    assert got.antecedent.str.contains(ITEM_SEPARATOR, regex=False).any()
    _assert_same_rules(got, _mlxtend(b, 0.03, max_len=3))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), s1=st.floats(0.01, 0.3), s2=st.floats(0.01, 0.3))
def test_min_support_prunes_and_never_adds_rules(seed: int, s1: float, s2: float) -> None:
    lo, hi = sorted((s1, s2))
    t = _as_tx(_random_baskets(seed, 150))
    r_lo = association_rules(t, min_support=lo).to_pandas()
    r_hi = association_rules(t, min_support=hi).to_pandas()
    for r, s in ((r_lo, lo), (r_hi, hi)):
        assert (r.support >= s - 1e-12).all()
        assert (r.antecedent_support >= s - 1e-12).all()
    assert set(zip(r_hi.antecedent, r_hi.consequent, strict=True)) <= set(
        zip(r_lo.antecedent, r_lo.consequent, strict=True))


def test_planted_pairs_lead_by_lift(demo: tuple[Workspace, object]) -> None:
    ws, src = demo
    pairs = pd.read_parquet(src / "truth" / "affinity_pairs.parquet")  # type: ignore[operator]
    got = association_rules(ws.engine.table("transactions"), min_support=0.001).to_pandas()
    top = got.head(2 * len(pairs))
    found = {frozenset(p) for p in zip(top.antecedent, top.consequent, strict=True)}
    for a, b in zip(pairs.product_a, pairs.product_b, strict=True):
        assert frozenset((a, b)) in found, (a, b)
    assert (top.lift > 5).all()


def test_bad_parameters_say_what_to_do() -> None:
    t = _as_tx(_random_baskets(1, 10))
    with pytest.raises(KehuInputError, match="'min_support' parameter must be a share"):
        association_rules(t, min_support=0)
    with pytest.raises(KehuInputError, match="'level' parameter must be one of"):
        association_rules(t, level="brand")
    with pytest.raises(KehuInputError, match="'max_items' parameter must be 2"):
        association_rules(t, max_items=4)


def _held(ws: Workspace, tx: pd.DataFrame, as_of: date, lookback: int = 365) -> set:
    d = pd.Timestamp(as_of)
    w = tx[(tx.day <= d) & (tx.day > d - pd.Timedelta(days=lookback))]
    held = set(zip(w.customer_id, w.product_id, strict=True))
    c = ws.warehouse.read("contracts").to_pandas()
    act = c[(pd.to_datetime(c.start_date) <= d) & c.status.isin(["active", "renewed"])
            & (c.end_date.isna() | (pd.to_datetime(c.end_date) >= d)
               | (c.status == "renewed"))]
    return held | set(zip(act.customer_id, act.product_id, strict=True))


def test_offers_skip_held_products_and_rank_by_expected_margin(
        demo: tuple[Workspace, object], tx: pd.DataFrame) -> None:
    ws = demo[0]
    as_of = tx.day.max().date()
    offers = next_best_offers(ws.engine, as_of, k=5).to_pandas()
    held = _held(ws, tx, as_of)
    assert not any((c, p) in held for c, p in zip(offers.customer_id, offers.product_id,
                                                   strict=True))
    # k offers to everyone with at least k products not held
    catalogue = set(ws.warehouse.read("products", ["product_id"]).to_pandas().product_id)
    cust = ws.warehouse.read("customers", ["customer_id"]).to_pandas().customer_id
    free = {c: len(catalogue - {p for cc, p in held if cc == c}) for c in cust}
    n = offers.groupby("customer_id").size()
    assert all(n.get(c, 0) == min(5, f) for c, f in free.items())
    # ranks 1..k, expected margin = propensity × (unit price − unit cost), non-increasing
    p = ws.warehouse.read("products", ["product_id", "unit_price", "unit_cost"]).to_pandas()
    m = offers.merge(p, on="product_id")
    np.testing.assert_allclose(m.expected_margin,
                               m.propensity * (m.unit_price - m.unit_cost), rtol=1e-9)
    assert ((m.propensity >= 0) & (m.propensity <= 1)).all()
    o = offers.sort_values(["customer_id", "rank"])
    assert (o.groupby("customer_id")["rank"].apply(lambda r: list(r) == list(
        range(1, len(r) + 1)))).all()
    assert (o.groupby("customer_id").expected_margin.diff().dropna() <= 1e-12).all()
    # an offer driven by a rule names an antecedent the customer holds
    why = o[o.reason.notna()]
    assert len(why) > 0
    assert all((c, a) in held for c, a in zip(why.customer_id, why.reason, strict=True))
    one = next_best_offers(ws.engine, as_of, k=3, customers=[o.customer_id.iloc[0]])
    assert one.num_rows == 3 and set(one.column("customer_id").to_pylist()) == {
        o.customer_id.iloc[0]}


def test_holdout_hit_rate_beats_popularity(demo: tuple[Workspace, object],
                                           tx: pd.DataFrame) -> None:
    ws = demo[0]
    as_of = tx.day.max().date()
    cutoff = as_of - timedelta(days=90)
    res = evaluate_holdout(ws.engine, as_of, holdout_days=90, k=5)
    # recomputed here from the hold-out purchases
    held = _held(ws, tx, cutoff)
    h = tx[(tx.day > pd.Timestamp(cutoff)) & (tx.day <= pd.Timestamp(as_of))]
    new = {(c, p) for c, p in zip(h.customer_id, h.product_id, strict=True)
           if (c, p) not in held}
    # customers who had signed up by the cut-off (later ones get no offers then)
    cust = ws.warehouse.read("customers", ["customer_id", "signup_date"]).to_pandas()
    known = set(cust[cust.signup_date.isna() | (pd.to_datetime(cust.signup_date)
                                                 <= pd.Timestamp(cutoff))].customer_id)
    new = {(c, p) for c, p in new if c in known}
    buyers = {c for c, _ in new}
    offers = next_best_offers(ws.engine, cutoff, k=5).to_pandas()
    look = tx[(tx.day <= pd.Timestamp(cutoff))
              & (tx.day > pd.Timestamp(cutoff) - pd.Timedelta(days=365))]
    pop = look.groupby("product_id").customer_id.nunique().reset_index()
    ranked = list(pop.sort_values(["customer_id", "product_id"],
                                  ascending=[False, True]).product_id)
    by_c = offers.groupby("customer_id").product_id.apply(set).to_dict()

    def baseline(c: str) -> set:
        return set([p for p in ranked if (c, p) not in held][:5])

    kehu_hit = np.mean([bool({(c, p) for p in by_c.get(c, ())} & new) for c in buyers])
    base_hit = np.mean([bool({(c, p) for p in baseline(c)} & new) for c in buyers])
    print(f"hit rate@5: kehu {kehu_hit:.4f}, popularity {base_hit:.4f}, "
          f"customers {len(buyers)}")
    assert res["customers"] == len(buyers) > 300
    assert res["kehu"]["hit_rate"] == pytest.approx(kehu_hit, abs=1e-12)
    assert res["popularity"]["hit_rate"] == pytest.approx(base_hit, abs=1e-12)
    assert kehu_hit > base_hit
    assert res["lift_over_baseline"] == pytest.approx(kehu_hit / base_hit)
    hits = sum(len({(c, p) for p in by_c.get(c, ())} & new) for c in buyers)
    assert res["kehu"]["recall"] == pytest.approx(hits / len(new))


def test_rising_products_rates(demo: tuple[Workspace, object], tx: pd.DataFrame) -> None:
    ws = demo[0]
    as_of = tx.day.max().date()
    got = rising_products(ws.engine, as_of, by="none", window_days=60, min_buyers=1).to_pandas()
    d = pd.Timestamp(as_of)
    n = ws.warehouse.count("customers")
    recent = tx[(tx.day > d - pd.Timedelta(days=60)) & (tx.day <= d)]
    prior = tx[(tx.day > d - pd.Timedelta(days=120)) & (tx.day <= d - pd.Timedelta(days=60))]
    r = recent.groupby("product_id").customer_id.nunique() / n
    p = prior.groupby("product_id").customer_id.nunique() / n
    g = got.set_index("product_id")
    np.testing.assert_allclose(g.rate_recent, r.loc[g.index], rtol=1e-12)
    np.testing.assert_allclose(g.ratio, (r / p).loc[g.index], rtol=1e-12)
    assert list(g.ratio) == sorted(g.ratio, reverse=True)


def test_cli_json(demo: tuple[Workspace, object]) -> None:
    root = str(demo[0].root)
    runner = CliRunner()
    res = runner.invoke(app, ["crosssell", "rules", "--top", "4", "--json", "-w", root],
                        env={"KEHU_LANG": "en"})
    assert res.exit_code == 0, res.output
    assert len(json.loads(res.stdout)["rules"]) == 4
    res = runner.invoke(app, ["crosssell", "offers", "--customer", "C00000001", "--k", "2",
                              "--json", "-w", root], env={"KEHU_LANG": "en"})
    assert res.exit_code == 0, res.output
    assert [o["rank"] for o in json.loads(res.stdout)["offers"]] == [1, 2]
    res = runner.invoke(app, ["crosssell", "rules", "--min-support", "0", "-w", root],
                        env={"KEHU_LANG": "en"})
    assert isinstance(res.exception, KehuInputError) and "min_support" in str(res.exception)


def test_cli_evaluation_is_kept_in_the_registry(demo: tuple[Workspace, object]) -> None:
    from kehu.models import registry

    ws = demo[0]
    res = CliRunner().invoke(app, ["crosssell", "evaluate", "--k", "3", "--json", "-w",
                                   str(ws.root)], env={"KEHU_LANG": "en"})
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    rec = registry.get(ws, out["model_id"])
    assert rec.kind == "crosssell" and rec.details["params"]["k"] == 3
    assert rec.details["holdout"]["kehu"]["hit_rate"] == out["kehu"]["hit_rate"]
    assert rec.details["holdout"]["popularity"]["hits"] == out["popularity"]["hits"]
