"""CLV models against the outside world: Fader, Hardie & Lee (2005)'s published estimates on
CDNOW, and the ``lifetimes`` library's predictions at the same parameters."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kehu import Workspace
from kehu.analytics import customer_summary
from kehu.datasets import DATASETS
from kehu.ingest import Importer, plan_import
from kehu.models.base import NotFittedError
from kehu.models.clv import BetaGeo, GammaGamma, customer_lifetime_value

lifetimes = pytest.importorskip("lifetimes")  # a test dependency (pyproject [test])
CAL_END = date(1997, 9, 30)  # end of week 39


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    """The CDNOW 1/10 sample imported through the public importer, summarised in weeks."""
    ws = Workspace.init(tmp_path_factory.mktemp("clv") / "ws")
    d = DATASETS["cdnow_sample"]
    plans = plan_import(ws, "transactions", [d.path], mapping_file=d.mapping_path)
    Importer(ws, add_unknown_customers=True).run(plans)
    s = customer_summary(ws.engine.table("transactions"), CAL_END, "W").to_pandas()
    s["ID"] = s.customer_id.astype(int)
    return s.set_index("ID").sort_index()


def test_summary_equals_lifetimes_published_cdnow_summary(sample: pd.DataFrame) -> None:
    from lifetimes.datasets import load_cdnow_summary

    ref = load_cdnow_summary(index_col=[0]).sort_index()
    assert len(sample) == len(ref) == 2357
    assert (sample.frequency.values == ref.frequency.values).all()
    assert np.allclose(sample.recency.values, ref.recency.values, atol=0.006)
    assert np.allclose(sample["T"].values, ref["T"].values, atol=0.006)


def test_bgnbd_reproduces_fader_hardie_lee_2005(sample: pd.DataFrame) -> None:
    m = BetaGeo().fit(sample.frequency, sample.recency, sample["T"])
    p = m.params_
    assert (round(p["r"], 3), round(p["alpha"], 3), round(p["a"], 3), round(p["b"], 3)) == \
        (0.243, 4.414, 0.793, 2.426)
    assert m.log_likelihood_ == pytest.approx(-9582.4, abs=0.05)
    assert m.n_distinct_ < m.n_customers_ == 2357  # fitted on sufficient statistics
    # the same fit from per-customer rows or from the distinct triples with counts
    x, tx, t = (sample[c].values for c in ("frequency", "recency", "T"))
    uniq, counts = np.unique(np.column_stack([x, tx, t]), axis=0, return_counts=True)
    m2 = BetaGeo().fit(uniq[:, 0], uniq[:, 1], uniq[:, 2], weights=counts)
    assert m2.log_likelihood_ == pytest.approx(m.log_likelihood_, rel=1e-12)


def test_standard_errors_match_lifetimes(sample: pd.DataFrame) -> None:
    ref = lifetimes.BetaGeoFitter().fit(sample.frequency, sample.recency, sample["T"])
    ours = BetaGeo().fit(sample.frequency, sample.recency, sample["T"])
    se = ref.summary["se(coef)"]
    for k in ("r", "alpha", "a", "b"):
        assert ours.standard_errors_[k] == pytest.approx(se[k], rel=2e-3)
        assert ours.params_[k] == pytest.approx(ref.params_[k], rel=1e-3)


def test_predictions_equal_lifetimes_at_the_same_parameters(sample: pd.DataFrame) -> None:
    ours = BetaGeo().fit(sample.frequency, sample.recency, sample["T"])
    ref = lifetimes.BetaGeoFitter()
    ref.params_ = pd.Series(ours.params_)
    x, tx, t = sample.frequency.values, sample.recency.values, sample["T"].values
    for horizon in (1.0, 39.0, 52.0):
        np.testing.assert_allclose(
            ours.expected_purchases(horizon, x, tx, t),
            ref.conditional_expected_number_of_purchases_up_to_time(horizon, x, tx, t),
            rtol=1e-6)
    np.testing.assert_allclose(ours.probability_alive(x, tx, t),
                               ref.conditional_probability_alive(x, tx, t), rtol=1e-6)
    np.testing.assert_allclose(ours.expected_purchases_new(np.array([10.0, 39.0])),
                               ref.expected_number_of_purchases_up_to_time(
                                   np.array([10.0, 39.0])), rtol=1e-6)


def test_gamma_gamma_reproduces_published_and_lifetimes(sample: pd.DataFrame) -> None:
    ours = GammaGamma().fit(sample.frequency, sample.monetary_value)
    p = ours.params_
    assert (round(p["p"], 2), round(p["q"], 2), round(p["gamma"], 2)) == (6.25, 3.74, 15.44)
    ref = lifetimes.GammaGammaFitter()
    ref.params_ = pd.Series({"p": p["p"], "q": p["q"], "v": p["gamma"]})
    rep = sample[sample.frequency > 0]
    np.testing.assert_allclose(
        ours.expected_spend(rep.frequency.values, rep.monetary_value.values),
        ref.conditional_expected_average_profit(rep.frequency, rep.monetary_value),
        rtol=1e-9)
    # discounted CLV equals lifetimes' at the same models (monthly rate 1 %, weeks)
    bg = BetaGeo().fit(sample.frequency, sample.recency, sample["T"])
    bgf = lifetimes.BetaGeoFitter()
    bgf.params_ = pd.Series(bg.params_)
    bgf.predict = bgf.conditional_expected_number_of_purchases_up_to_time  # as fit() sets it
    clv = customer_lifetime_value(bg, ours, rep.frequency.values, rep.recency.values,
                                  rep["T"].values, rep.monetary_value.values, months=12,
                                  annual_discount_rate=1.01 ** 12 - 1, periods_per_month=4.345)
    ref_clv = ref.customer_lifetime_value(bgf, rep.frequency, rep.recency, rep["T"],
                                          rep.monetary_value, time=12, discount_rate=0.01,
                                          freq="W")
    np.testing.assert_allclose(clv, ref_clv.values, rtol=1e-6)


def test_unfitted_and_bad_input() -> None:
    with pytest.raises(NotFittedError, match="BetaGeo is not fitted yet"):
        BetaGeo().probability_alive(np.array([1]), np.array([1.0]), np.array([2.0]))
    with pytest.raises(ValueError, match="recency must be between 0 and T"):
        BetaGeo().fit(np.array([1]), np.array([5.0]), np.array([2.0]))


def test_cli_fit_json_keys(tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "kehu.cli.main", "clv", "fit", "--file",
                        str(DATASETS["cdnow"].path), "--date-col", "date", "--amount-col",
                        "dollar_value", "--date-format", "%Y%m%d", "--calibration-end",
                        "1997-09-30", "--freq", "W", "--json"], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert {"r", "alpha", "a", "b", "ll", "p", "q", "gamma"} <= set(out)
    assert out["customers"] == 23570
