"""Campaign measurement numbers against outside references.

* Welch: :func:`scipy.stats.ttest_ind` (``equal_var=False``) and its ``confidence_interval``.
* Newcombe / z-test: statsmodels ``confint_proportions_2indep(method="newcomb")``,
  ``proportions_ztest`` and ``test_proportions_2indep(method="score", correction=False)``,
  plus Newcombe's published example.
* Power: statsmodels ``NormalIndPower`` and a simulation of the test at the MDE.
* Bootstrap: the analytic standard error of a mean, Welch on large samples, coverage.
* Size under the null: ~5 % false positives over 1000 seeded campaigns.
* Qini: scikit-uplift's ``qini_curve`` / ``qini_auc_score`` (skipped without ``sklift``) and a
  plain loop written here.
* DiD on a simulated panel with a common trend; matching against brute-force distances.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from kehu.campaigns.stats import (
    DID_LABEL,
    Difference,
    Interval,
    diff_in_diff,
    holdout_for_power,
    matched_comparison,
    matched_pairs,
    mean_difference,
    minimum_detectable_effect,
    minimum_detectable_mean_effect,
    plan_power,
    power_of_test,
    proportion_difference,
    qini_coefficient,
    qini_curve,
    roi,
    scale,
    uplift_by_group,
)
from kehu.errors import KehuInputError

sm_prop = pytest.importorskip("statsmodels.stats.proportion")
sm_power = pytest.importorskip("statsmodels.stats.power")


def _revenue(rng: np.random.Generator, n: int, rate: float, mean: float = 80.0) -> np.ndarray:
    """Per-customer revenue in a window: 0 for non-responders, a skewed amount otherwise."""
    return np.where(rng.random(n) < rate, rng.gamma(2.0, mean / 2.0, n), 0.0)


# -- Welch -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("n_t", "n_c", "level"), [(2, 2, 0.95), (7, 40, 0.9),
                                                   (5000, 600, 0.99), (300, 300, 0.8)])
def test_welch_matches_scipy(n_t: int, n_c: int, level: float) -> None:
    rng = np.random.default_rng(n_t + n_c)
    t, c = _revenue(rng, n_t, 0.3) + rng.normal(0, 1, n_t), rng.normal(5.0, 3.0, n_c)
    d = mean_difference(t, c, level=level)
    ref = stats.ttest_ind(t, c, equal_var=False)
    ci = ref.confidence_interval(confidence_level=level)
    assert d.estimate == pytest.approx(t.mean() - c.mean(), abs=1e-10)
    assert d.low == pytest.approx(ci.low, rel=1e-10, abs=1e-10)
    assert d.high == pytest.approx(ci.high, rel=1e-10, abs=1e-10)
    assert d.p_value == pytest.approx(ref.pvalue, rel=1e-10, abs=1e-12)
    assert d.se == pytest.approx(math.sqrt(t.var(ddof=1) / n_t + c.var(ddof=1) / n_c), rel=1e-12)
    assert (d.n_treat, d.n_control, d.method, d.level) == (n_t, n_c, "welch", level)
    assert d.to_dict()["p_value"] == d.p_value


def test_no_variance_at_all() -> None:
    same = mean_difference([0.0, 0.0, 0.0], [0.0, 0.0])
    assert (same.estimate, same.low, same.high, same.p_value) == (0.0, 0.0, 0.0, 1.0)
    apart = mean_difference([2.0, 2.0], [1.0, 1.0])
    assert (apart.low, apart.high, apart.p_value) == (1.0, 1.0, 0.0)


def test_errors_name_the_parameter() -> None:
    with pytest.raises(KehuInputError, match=r"'control' parameter must hold at least 2 values\. "
                                             r"Got 1 instead"):
        mean_difference([1.0, 2.0, 3.0], [4.0])
    with pytest.raises(KehuInputError, match=r"'treat' parameter must hold finite numbers only; "
                                             r"1 values"):
        mean_difference([1.0, float("nan"), 3.0], [4.0, 5.0])
    with pytest.raises(KehuInputError, match="'method' parameter must be 'welch' or 'bootstrap'"):
        mean_difference([1.0, 2.0], [4.0, 5.0], method="jackknife")  # type: ignore[arg-type]
    with pytest.raises(KehuInputError, match=r"'level' parameter must be a number in \(0.0, 1.0\)"):
        mean_difference([1.0, 2.0], [4.0, 5.0], level=95)
    with pytest.raises(KehuInputError, match="'x_c' parameter must be an int between 0 and 'n_c'"):
        proportion_difference(3, 10, 11, 10)
    with pytest.raises(KehuInputError, match="'pre_t' and 'post_t' parameters must have the same"):
        diff_in_diff([1.0, 2.0, 3.0], [1.0, 2.0], [1.0, 2.0], [1.0, 2.0])
    with pytest.raises(KehuInputError, match="'treated' parameter must contain both treated"):
        qini_curve([0.1, 0.2], [1, 1], [0, 1])
    with pytest.raises(KehuInputError, match="'treated' parameter must hold only 0/1"):
        qini_curve([0.1, 0.2], [1, 2], [0, 1])
    with pytest.raises(KehuInputError, match=r"'expected_effect' parameter must be a non-zero "
                                             r"lift that keeps the treated rate \(base rate"):
        holdout_for_power(1000, base_rate=0.9, expected_effect=0.2)
    with pytest.raises(KehuInputError, match="'holdout' parameter must be a number in"):
        minimum_detectable_effect(1000, 1.5, base_rate=0.1)
    with pytest.raises(KehuInputError, match=r"A holdout of 0\.0001 of 1000 customers leaves an "
                                             "empty group"):
        minimum_detectable_effect(1000, 0.0001, base_rate=0.1)
    with pytest.raises(KehuInputError, match="Column 'age' is missing from the 'pool' frame"):
        matched_comparison(pd.DataFrame({"age": [1.0]}), pd.DataFrame({"x": [1.0]}), ["age"])


# -- Newcombe and the z-test -----------------------------------------------------------------------


def test_newcombe_published_example() -> None:
    # Newcombe (1998), Statistics in Medicine 17:873-890, table II example (a): 56/70 − 48/80
    d = proportion_difference(56, 70, 48, 80)
    assert (round(d.low, 4), round(d.high, 4)) == (0.0524, 0.3339)


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")  # statsmodels' odds ratio
@pytest.mark.parametrize(("x_t", "n_t", "x_c", "n_c"), [
    (56, 70, 48, 80), (540, 9000, 45, 1000), (0, 10, 0, 20), (10, 10, 0, 20), (5, 56, 0, 29),
    (1, 3, 2, 3), (12_345, 200_000, 1_100, 20_000)])
@pytest.mark.parametrize("level", [0.95, 0.9])
def test_newcombe_and_z_test_match_statsmodels(x_t: int, n_t: int, x_c: int, n_c: int,
                                               level: float) -> None:
    d = proportion_difference(x_t, n_t, x_c, n_c, level=level)
    low, high = sm_prop.confint_proportions_2indep(x_t, n_t, x_c, n_c, method="newcomb",
                                                   compare="diff", alpha=1 - level)
    assert d.low == pytest.approx(low, abs=1e-10)
    assert d.high == pytest.approx(high, abs=1e-10)
    assert d.estimate == pytest.approx(x_t / n_t - x_c / n_c, abs=1e-15)
    if 0 < x_t + x_c < n_t + n_c:
        _z, p = sm_prop.proportions_ztest([x_t, x_c], [n_t, n_c])
        assert d.p_value == pytest.approx(p, rel=1e-10)
        score = sm_prop.test_proportions_2indep(x_t, n_t, x_c, n_c, method="score",
                                                correction=False)
        assert d.p_value == pytest.approx(score.pvalue, rel=1e-8)
    else:  # nobody (or everybody) responded: no evidence of a difference
        assert d.p_value == 1.0


# -- totals and ROI --------------------------------------------------------------------------------


def test_scale_and_roi() -> None:
    d = Difference(2.0, 0.5, 3.5, 0.75, 0.01, 9000, 1000, 5.0, 3.0, "welch")
    total = scale(d, 9000)
    assert (total.estimate, total.low, total.high, total.se) == (18_000, 4_500, 31_500, 6_750)
    r = roi(total, 9_000)
    assert (r.estimate, r.low, r.high) == pytest.approx((1.0, -0.5, 2.5))
    assert r.reason is None
    undefined = roi(total, 0)
    assert (undefined.estimate, undefined.low, undefined.high) == (None, None, None)
    assert undefined.reason == "The ROI is undefined when the campaign cost is 0."
    assert roi(Interval(None, None, None, reason="x"), 10).estimate is None
    with pytest.raises(KehuInputError, match="'cost' parameter must be a number >= 0"):
        roi(total, -1)
    with pytest.raises(KehuInputError, match="'n' parameter must be an int >= 0"):
        scale(d, -5)


# -- power -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "holdout", "p", "alpha", "power"), [
    (10_000, 0.10, 0.05, 0.05, 0.8), (250_000, 0.02, 0.012, 0.05, 0.9),
    (3_000, 0.5, 0.3, 0.01, 0.8), (40_000, 0.2, 0.5, 0.10, 0.95)])
def test_mde_matches_statsmodels(n: int, holdout: float, p: float, alpha: float,
                                 power: float) -> None:
    mde = minimum_detectable_effect(n, holdout, base_rate=p, alpha=alpha, power=power)
    n_c = round(n * holdout)
    n_t = n - n_c
    assert power_of_test(n_t, n_c, p, mde, alpha) == pytest.approx(power, abs=1e-10)
    # statsmodels' power of the pooled z-test of two proportions: sample 1 = treated with rate
    # p + diff, sample 2 = control with rate p, nobs2 = ratio * nobs1; pooled variance under
    # the null, unpooled under the alternative, both tails — the same test, so equal numbers.
    ref = sm_prop.power_proportions_2indep(mde, p, n_t, ratio=n_c / n_t, alpha=alpha)
    assert ref.power == pytest.approx(power, abs=1e-10)
    for effect in (0.5 * mde, -0.7 * mde, 2 * mde):
        assert power_of_test(n_t, n_c, p, effect, alpha) == pytest.approx(
            sm_prop.power_proportions_2indep(effect, p, n_t, ratio=n_c / n_t,
                                             alpha=alpha).power, abs=1e-12)
    # a mean: NormalIndPower's statistic is d * sqrt(n_t n_c / (n_t + n_c)) = d / sqrt(1/n_t +
    # 1/n_c); ours is delta / (sd sqrt(1/n_t + 1/n_c)): the same test with d = delta / sd.
    mean_mde = minimum_detectable_mean_effect(n, holdout, sd=35.0, alpha=alpha, power=power)
    ind = sm_power.NormalIndPower()
    assert ind.power(mean_mde / 35.0, n_t, alpha, ratio=n_c / n_t) == pytest.approx(power,
                                                                                abs=1e-10)
    d = ind.solve_power(effect_size=None, nobs1=n_t, ratio=n_c / n_t, alpha=alpha, power=power)
    assert mean_mde == pytest.approx(d * 35.0, rel=1e-4)  # solve_power stops at ~1e-5


def test_mde_unreachable_is_infinite() -> None:
    assert minimum_detectable_effect(40, 0.1, base_rate=0.5, alpha=0.001, power=0.99) == math.inf


def test_power_at_the_mde_by_simulation() -> None:
    """The pooled z-test run on simulated campaigns rejects at ~the planned rate."""
    rng = np.random.default_rng(7)
    n, holdout, p = 20_000, 0.1, 0.05
    mde = minimum_detectable_effect(n, holdout, base_rate=p)
    n_c = round(n * holdout)
    n_t = n - n_c
    x_t, x_c = rng.binomial(n_t, p + mde, 4000), rng.binomial(n_c, p, 4000)
    pool = (x_t + x_c) / n
    z = (x_t / n_t - x_c / n_c) / np.sqrt(pool * (1 - pool) * (1 / n_t + 1 / n_c))
    assert 0.76 < np.mean(2 * stats.norm.sf(np.abs(z)) < 0.05) < 0.84


def test_holdout_for_power_and_plan() -> None:
    n, p, effect = 10_000, 0.05, 0.02
    h = holdout_for_power(n, base_rate=p, expected_effect=effect)
    assert h is not None and 0.01 < h < 0.5

    def pw(frac: float) -> float:
        n_c = round(n * frac)
        return power_of_test(n - n_c, n_c, p, effect)

    assert pw(h) >= 0.8 > pw(h - 1 / n)  # the smallest holdout reaching 80 %
    assert max(pw(f) for f in np.arange(100, h * n) / n) < 0.8
    assert holdout_for_power(n, base_rate=p, expected_effect=0.2) == 0.01
    assert holdout_for_power(500, base_rate=p, expected_effect=0.01) is None
    down = holdout_for_power(n, base_rate=p, expected_effect=-0.02)
    assert down is not None and down != h  # a fall is not a rise mirrored

    weak = plan_power(n, 0.05, base_rate=p, expected_effect=effect)
    assert weak.power == pytest.approx(pw(0.05)) and weak.power < 0.8
    assert weak.suggested_holdout == h
    assert weak.warning is not None and "Hold out 13.3 %" in weak.warning
    assert weak.mde == pytest.approx(minimum_detectable_effect(n, 0.05, base_rate=p))
    hopeless = plan_power(500, 0.1, base_rate=p, expected_effect=0.01)
    assert hopeless.warning is not None and "No holdout up to 50 % is enough" in hopeless.warning
    fine = plan_power(n, 0.2, base_rate=p, expected_effect=effect)
    assert fine.power >= 0.8 and fine.warning is None
    assert fine.to_dict()["n_control"] == 2000


# -- bootstrap -------------------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [0.08, 1.0])  # zero-heavy revenue, and continuous values
def test_bootstrap_resamples_like_the_textbook(rate: float) -> None:
    """The bootstrap variance of a mean is the plug-in variance / n: check the resampler."""
    rng = np.random.default_rng(3)
    t, c = _revenue(rng, 3000, rate), _revenue(rng, 800, rate * 0.9)
    b = mean_difference(t, c, method="bootstrap", n_boot=8000, seed=11)
    assert b.se == pytest.approx(math.sqrt(t.var() / t.size + c.var() / c.size), rel=0.03)
    small = mean_difference(t, c, method="bootstrap", n_boot=300, seed=11)
    again = mean_difference(t, c, method="bootstrap", n_boot=300, seed=11)
    assert (again.low, again.high) == (small.low, small.high)
    assert mean_difference(t, c, method="bootstrap", n_boot=300, seed=12).low != small.low


def test_bootstrap_close_to_welch_on_large_samples() -> None:
    rng = np.random.default_rng(5)
    t, c = _revenue(rng, 60_000, 0.1), _revenue(rng, 8_000, 0.09)
    w = mean_difference(t, c)
    b = mean_difference(t, c, method="bootstrap")
    width = w.high - w.low
    assert b.estimate == w.estimate and b.p_value == w.p_value
    assert abs(b.low - w.low) < 0.05 * width and abs(b.high - w.high) < 0.05 * width
    assert b.se == pytest.approx(w.se, rel=0.05)


def test_interval_coverage() -> None:
    """400 simulated campaigns with a known lift: the 95 % intervals cover it ~95 % of the time."""
    rng = np.random.default_rng(2024)
    mean = 80.0
    true = mean * (0.30 - 0.25)  # expected revenue per customer: treated minus control
    hits = {"welch": 0, "bootstrap": 0}
    for _ in range(400):
        t, c = _revenue(rng, 400, 0.30, mean), _revenue(rng, 400, 0.25, mean)
        for method in hits:
            d = mean_difference(t, c, method=method, n_boot=400,  # type: ignore[arg-type]
                                seed=int(rng.integers(1 << 30)))
            hits[method] += d.low <= true <= d.high
    for method, h in hits.items():
        assert 0.92 <= h / 400 <= 0.98, (method, h / 400)


def test_false_positive_rate_under_the_null() -> None:
    rng = np.random.default_rng(99)
    sims = 1000
    x_t, x_c = rng.binomial(4000, 0.05, sims), rng.binomial(1000, 0.05, sims)
    rates = [proportion_difference(int(a), 4000, int(b), 1000) for a, b in zip(x_t, x_c,
                                                                                strict=True)]
    fp = np.mean([r.p_value < 0.05 for r in rates])
    assert 0.03 <= fp <= 0.07, fp
    # the Newcombe interval is not the z-test, but under the null it excludes 0 about as often
    assert 0.03 <= np.mean([not r.low <= 0 <= r.high for r in rates]) <= 0.07
    t_all = _revenue(rng, sims * 300, 0.2).reshape(sims, 300)
    c_all = _revenue(rng, sims * 200, 0.2).reshape(sims, 200)
    means = [mean_difference(t, c) for t, c in zip(t_all, c_all, strict=True)]
    p = np.array([m.p_value for m in means])
    assert 0.03 <= np.mean(p < 0.05) <= 0.07, np.mean(p < 0.05)
    assert np.array_equal(p < 0.05, [not m.low <= 0 <= m.high for m in means])


# -- Qini and uplift by group ----------------------------------------------------------------------


def _uplift_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    score = np.round(rng.random(n), 2)  # ties on purpose
    treated = rng.random(n) < 0.6
    outcome = (rng.random(n) < 0.05 + 0.15 * treated * score).astype(int)
    return score, treated.astype(int), outcome


def _qini_loop(score: np.ndarray, treated: np.ndarray, y: np.ndarray) -> list[float]:
    """Radcliffe's Qini, straight from the definition: one value per distinct score."""
    gains = [0.0]
    for s in sorted(set(score.tolist()), reverse=True):
        top = score >= s
        n_t, n_c = (top & (treated == 1)).sum(), (top & (treated == 0)).sum()
        y_t, y_c = y[top & (treated == 1)].sum(), y[top & (treated == 0)].sum()
        gains.append(float(y_t - y_c * n_t / n_c) if n_c else float(y_t))
    return gains


def test_qini_matches_a_plain_loop_also_for_amounts() -> None:
    score, treated, outcome = _uplift_data(600, 1)
    amount = outcome * np.random.default_rng(2).gamma(2.0, 40.0, outcome.size)
    for y in (outcome, amount):
        q = qini_curve(score, treated, y)
        assert q.gain == pytest.approx(_qini_loop(score, treated, y), abs=1e-9)
        assert q.fraction[0] == 0 and q.fraction[-1] == 1 and np.all(np.diff(q.fraction) > 0)
    binned = qini_curve(score, treated, outcome, bins=10)
    full = qini_curve(score, treated, outcome)
    assert binned.fraction.tolist() == pytest.approx(np.linspace(0, 1, 11).tolist())
    assert binned.gain == pytest.approx(np.interp(binned.fraction, full.fraction, full.gain))
    assert binned.to_dict()["n_treat"] == treated.sum()


@pytest.mark.filterwarnings("ignore::FutureWarning")  # sklift calls a deprecated sklearn helper
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_qini_matches_scikit_uplift(seed: int) -> None:
    sk = pytest.importorskip("sklift.metrics")
    score, treated, outcome = _uplift_data(3000, seed)
    x, g = sk.qini_curve(outcome, score, treated)
    q = qini_curve(score, treated, outcome)
    assert q.fraction * outcome.size == pytest.approx(x.astype(float), abs=1e-9)
    assert q.gain == pytest.approx(g, abs=1e-9)
    for negative in (True, False):
        assert qini_coefficient(score, treated, outcome, negative_effect=negative) == \
            pytest.approx(sk.qini_auc_score(outcome, score, treated, negative_effect=negative),
                          rel=1e-10)


def test_qini_coefficient_ranks_a_good_score_above_noise() -> None:
    score, treated, outcome = _uplift_data(20_000, 4)
    good = qini_coefficient(score, treated, outcome)
    noise = qini_coefficient(np.random.default_rng(0).random(score.size), treated, outcome)
    assert good > 0.1 and abs(noise) < 0.05


def test_uplift_by_group() -> None:
    rng = np.random.default_rng(8)
    n = 6000
    group = rng.choice(["gold", "silver", "bronze"], n)
    lift = pd.Series({"gold": 0.10, "silver": 0.01, "bronze": 0.05})[group].to_numpy()
    treated = rng.random(n) < 0.7
    y = rng.random(n) < 0.05 + lift * treated
    revenue = y * rng.gamma(2.0, 50.0, n)
    group = np.r_[group, ["tiny", "tiny"]]  # a group without any control customer
    treated, y, revenue = np.r_[treated, [True, True]], np.r_[y, [1, 0]], np.r_[revenue, [9, 0]]
    df = uplift_by_group(group, treated, y, revenue)
    assert df.index.tolist() == ["gold", "bronze", "silver", "tiny"]
    assert df.loc["tiny", ["n_t", "n_c"]].tolist() == [2, 0] and np.isnan(df.loc["tiny", "uplift"])
    for g in ("gold", "silver", "bronze"):
        m = group == g
        row = df.loc[g]
        x_t, n_t = int(y[m & treated].sum()), int((m & treated).sum())
        x_c, n_c = int(y[m & ~treated].sum()), int((m & ~treated).sum())
        assert (row.n_t, row.n_c, row.responders_t, row.responders_c) == (n_t, n_c, x_t, x_c)
        low, high = sm_prop.confint_proportions_2indep(x_t, n_t, x_c, n_c, method="newcomb")
        assert (row.uplift_low, row.uplift_high) == pytest.approx((low, high), abs=1e-10)
        assert row.p_value == pytest.approx(sm_prop.proportions_ztest([x_t, x_c], [n_t, n_c])[1])
        assert row.incremental_responses == pytest.approx(row.uplift * n_t)
        ci = stats.ttest_ind(revenue[m & treated], revenue[m & ~treated],
                             equal_var=False).confidence_interval()
        assert (row.revenue_uplift_low, row.revenue_uplift_high) == pytest.approx(
            (ci.low, ci.high), rel=1e-10)
        assert row.incremental_revenue == pytest.approx(
            (revenue[m & treated].mean() - revenue[m & ~treated].mean()) * n_t)


# -- without a holdout -----------------------------------------------------------------------------


def test_diff_in_diff_removes_a_common_trend() -> None:
    rng = np.random.default_rng(12)
    n_t, n_c, trend, effect = 3000, 5000, 8.0, 3.0
    base_t = rng.gamma(4.0, 25.0, n_t) + 20  # programme members spent more to begin with
    base_c = rng.gamma(4.0, 25.0, n_c)
    pre_t, pre_c = base_t + rng.normal(0, 10, n_t), base_c + rng.normal(0, 10, n_c)
    post_t = base_t + trend + effect + rng.normal(0, 10, n_t)
    post_c = base_c + trend + rng.normal(0, 10, n_c)
    d = diff_in_diff(pre_t, post_t, pre_c, post_c)
    assert d.low <= effect <= d.high and d.high - d.low < 2.0
    assert not d.low <= trend + effect <= d.high  # the naive before/after lift is not covered
    assert d.label == DID_LABEL == "weaker evidence: no randomised control"
    ref = stats.ttest_ind(post_t - pre_t, post_c - pre_c, equal_var=False)
    assert (d.low, d.high) == pytest.approx(tuple(ref.confidence_interval()), rel=1e-10)
    assert d.p_value == pytest.approx(ref.pvalue, rel=1e-10, abs=1e-300)
    assert d.to_dict()["method"] == "diff-in-diff"


def _frames(n_t: int, n_p: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    pool = pd.DataFrame({"spend": rng.gamma(2.0, 300.0, n_p), "visits": rng.poisson(6, n_p),
                         "tier": rng.choice(["gold", "silver"], n_p, p=[0.2, 0.8])},
                        index=pd.RangeIndex(n_p) + 10_000)
    treated = pd.DataFrame({"spend": rng.gamma(2.5, 300.0, n_t), "visits": rng.poisson(7, n_t),
                            "tier": rng.choice(["gold", "silver"], n_t, p=[0.4, 0.6])})
    return treated, pool


def test_matching_finds_close_unused_neighbours() -> None:
    treated, pool = _frames(400, 8000, 0)
    cols = ["spend", "visits"]
    pairs = matched_pairs(treated, pool, cols, exact=["tier"])
    assert len(pairs) == len(treated) and pairs["pool"].is_unique
    assert pairs["treated"].tolist() == treated.index.tolist()
    assert (treated.loc[pairs["treated"], "tier"].to_numpy()
            == pool.loc[pairs["pool"], "tier"].to_numpy()).all()
    both = pd.concat([treated[cols], pool[cols]])
    mu, sd = both.mean(), both.std(ddof=0)
    zt, zp = ((treated[cols] - mu) / sd).to_numpy(), ((pool[cols] - mu) / sd).to_numpy()
    dist = np.sqrt(((zt[:, None, :] - zp[None, :, :]) ** 2).sum(axis=2))  # brute force
    same_tier = treated["tier"].to_numpy()[:, None] == pool["tier"].to_numpy()[None, :]
    dist = np.where(same_tier, dist, np.inf)
    ti = treated.index.get_indexer(pairs["treated"])
    pj = pool.index.get_indexer(pairs["pool"])
    assert pairs["distance"].to_numpy() == pytest.approx(dist[ti, pj], abs=1e-9)
    nearest = dist.min(axis=1)
    assert np.mean(dist[ti, pj] <= nearest + 1e-12) > 0.85  # mostly the very nearest row
    # close, in standard deviations (a few treated rows sit where the pool is thin)
    assert np.median(dist[ti, pj]) < 0.01 and np.quantile(dist[ti, pj], 0.9) < 0.1
    # greedy without replacement: no pool row left unused is closer than the match
    unused = np.ones(len(pool), dtype=bool)
    unused[pj] = False
    assert (dist[ti, pj] <= np.where(unused, dist, np.inf).min(axis=1) + 1e-12).all()
    assert matched_comparison(treated, pool, cols, exact=["tier"]).equals(pd.Index(pairs["pool"]))


def test_matching_without_replacement_and_k() -> None:
    treated = pd.DataFrame({"x": [0.0, 0.01, 0.02], "tier": ["a", "a", "b"]})
    pool = pd.DataFrame({"x": [0.0, 5.0, 0.03, 9.0], "tier": ["a", "a", "a", "b"]})
    pairs = matched_pairs(treated, pool, ["x"], exact=["tier"])
    assert dict(zip(pairs["treated"], pairs["pool"], strict=True)) == {0: 0, 1: 2, 2: 3}
    two = matched_pairs(treated, pool, ["x"], k=2, exact=["tier"])
    assert two["pool"].is_unique and sorted(two["pool"]) == [0, 1, 2, 3]
    # round 2: pool row 1 (x=5) is closer to treated row 1; then the pool has run out
    assert two.groupby("treated").size().to_dict() == {0: 1, 1: 2, 2: 1}
    treated, pool = _frames(3000, 30_000, 1)
    many = matched_pairs(treated, pool, ["spend", "visits"], k=3, exact=["tier"])
    assert len(many) == 9000 and many["pool"].is_unique
    assert many.groupby("treated")["match"].agg(tuple).tolist() == [(1, 2, 3)] * 3000


# -- the compound interval for few responders ---------------------------------------------------
def test_compound_variance_is_the_textbook_formula() -> None:
    """By hand: pooled responder moments, Wilson-centred response rates."""
    from kehu.campaigns.stats import compound_difference

    t = np.array([0.0] * 90 + [100.0, 200.0, 300.0] * 3 + [50.0])
    c = np.array([0.0] * 28 + [150.0, 50.0])
    d = compound_difference(t, c)
    nz = np.concatenate([t[t != 0], c[c != 0]])
    z = stats.norm.ppf(0.975)
    pt = (10 + z * z / 2) / (100 + z * z)
    pc = (2 + z * z / 2) / (30 + z * z)
    m1, m2 = nz.mean(), (nz**2).mean()
    se = math.sqrt((pt * m2 - (pt * m1) ** 2) / 100 + (pc * m2 - (pc * m1) ** 2) / 30)
    assert d.estimate == pytest.approx(t.mean() - c.mean())
    assert d.se == pytest.approx(se)
    assert d.low == pytest.approx(d.estimate - z * se)
    assert d.p_value == pytest.approx(2 * stats.norm.sf(abs(d.estimate) / se))


@pytest.mark.parametrize("n_c", [70, 150])
def test_compound_covers_where_welch_runs_narrow(n_c: int) -> None:
    """Holdouts of 70 / 150 customers, 3 % responding in control, 8 % when treated, gamma
    revenue per responder: the compound interval holds its level, Welch's undercovers."""
    from kehu.campaigns.stats import compound_difference

    rng = np.random.default_rng(n_c)
    n_t, sims = 9 * n_c, 1500
    truth = 0.05 * 160.0
    ok_c = ok_w = 0
    for _ in range(sims):
        t = (rng.random(n_t) < 0.08) * rng.gamma(2, 80, n_t)
        c = (rng.random(n_c) < 0.03) * rng.gamma(2, 80, n_c)
        cd = compound_difference(t, c)
        ok_c += cd.low <= truth <= cd.high
        w = stats.ttest_ind(t, c, equal_var=False).confidence_interval(0.95)
        ok_w += w.low <= truth <= w.high
    assert ok_c / sims >= 0.94, ok_c / sims
    assert ok_w / sims < ok_c / sims


def test_compound_false_positive_rate_and_auto() -> None:
    from kehu.campaigns.stats import compound_difference, outcome_difference

    rng = np.random.default_rng(5)
    sims = 1500
    fp = 0
    for _ in range(sims):
        t = (rng.random(900) < 0.04) * rng.gamma(2, 80, 900)
        c = (rng.random(100) < 0.04) * rng.gamma(2, 80, 100)
        fp += compound_difference(t, c).p_value < 0.05
    assert fp / sims <= 0.06, fp / sims
    few = outcome_difference([0, 0, 10.0, 0] * 10, [0.0, 5, 0] * 5)
    many = outcome_difference(rng.gamma(2, 80, 200), rng.gamma(2, 80, 100))
    assert few.method == "compound" and many.method == "welch"
