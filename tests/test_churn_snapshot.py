"""Churn on a plain customer table: ``kehu churn evaluate/train/score`` and ChurnClassifier.

Data are simulated with a KNOWN churn mechanism, so every AUC is checked against the AUC of
the true probabilities and against scikit-learn models fitted in the test on a cleanly
prepared copy of the same rows (not hard-coded numbers).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits
from typer.testing import CliRunner

from kehu.cli.main import app
from kehu.errors import KehuInputError
from kehu.models.base import NotFittedError
from kehu.models.churn import ChurnClassifier, metrics
from kehu.models.churn.snapshot import evaluate_file

runner = CliRunner()
KEYS = {"auc", "pr_auc", "lift_top_decile", "lift_top_20", "capture_top_decile",
        "capture_top_20", "n", "positive_rate", "model", "folds", "auc_per_fold", "calibration",
        "features", "dropped", "excluded_rows", "top_features"}


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-z))


# -- simulated tables -----------------------------------------------------------------------
def telco(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame]:
    """IBM-Telco-like: messy raw table, true P(churn), and a clean numeric copy."""
    r = np.random.default_rng(seed)
    tenure = r.integers(0, 73, n)
    contract = r.choice(["Month-to-month", "One year", "Two year"], n, p=[.55, .21, .24])
    fiber = r.random(n) < .45
    monthly = np.round(np.where(fiber, r.uniform(70, 118, n), r.uniform(20, 80, n)), 2)
    paperless = r.random(n) < .6
    senior = r.random(n) < .16
    broadband = r.random(n) < .5
    z = (0.9 - 0.8 * np.log1p(tenure) + 1.0 * (contract == "Month-to-month")
         - 0.9 * (contract == "Two year") + 0.9 * fiber + 0.012 * (monthly - 65)
         + 0.35 * paperless + 0.3 * senior - 0.2 * broadband)
    p = _sigmoid(z)
    churn = r.random(n) < p
    total = monthly * tenure
    raw = pd.DataFrame({
        "customerID": [f"{7000 + i}-{chr(65 + i % 26)}X" for i in range(n)],
        "tenure": tenure,
        "Contract": contract,
        "InternetService": np.where(fiber, "Fiber optic", "DSL"),
        # numbers stored as text, with padding, thousands separators and blanks
        "MonthlyCharges": [f"  {v:.2f}" for v in monthly],
        "TotalCharges": [" " if t == 0 else f"{v:,.2f}" for v, t in zip(total, tenure,
                                                                         strict=True)],
        "PaperlessBilling": np.where(paperless, "Yes", "No"),
        "SeniorCitizen": np.where(senior, "Y", "N"),
        "宽带": np.where(broadband, "是", "否"),
        "Region": r.choice(["North", "South", "East", "West", ""], n),  # pure noise, blanks
        "Country": "CN",  # constant
        "Churn": np.where(churn, "Yes", "No"),
    })
    clean = pd.DataFrame({
        "tenure": tenure, "monthly": monthly, "total": total,
        "m2m": contract == "Month-to-month", "two_year": contract == "Two year",
        "fiber": fiber, "paperless": paperless, "senior": senior, "broadband": broadband,
    }).astype(float)
    return raw, p, clean


def calls(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame]:
    """BigML-telecom-like: thresholds and interactions a linear model cannot draw."""
    r = np.random.default_rng(seed)
    day = np.clip(r.normal(180, 54, n), 0, 350)
    eve = np.clip(r.normal(200, 50, n), 0, 363)
    intl_min = np.clip(r.normal(10, 2.8, n), 0, 20)
    service = r.poisson(1.6, n)
    intl = r.random(n) < .1
    vmail = r.random(n) < .27
    z = (-3.4 + 1.0 * (day > 250) + 3.5 * (day > 250) * ~vmail + 1.5 * (day + eve > 460)
         + 3.5 * ((service >= 4) & (day < 170)) + 3.5 * intl * (intl_min > 13) - 0.8 * vmail)
    p = _sigmoid(z)
    churn = r.random(n) < p
    raw = pd.DataFrame({
        "Phone": [f"{382 + i % 100}-{4657 + i}" for i in range(n)],
        "Account Length": r.integers(1, 240, n),
        "Int'l Plan": np.where(intl, "yes", "no"), "VMail Plan": np.where(vmail, "yes", "no"),
        "Day Mins": day.round(1), "Eve Mins": eve.round(1), "Intl Mins": intl_min.round(1),
        "CustServ Calls": service, "Churn?": np.where(churn, "True.", "False."),
    })
    clean = raw.drop(columns=["Phone", "Churn?"]).replace({"yes": 1.0, "no": 0.0}).astype(float)
    return raw, p, clean


def linear(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame]:
    """Churn linear in the log-odds of eight numeric attributes."""
    r = np.random.default_rng(seed)
    x = r.normal(size=(n, 8))
    beta = np.array([0.9, -0.7, 0.6, 0.5, -0.4, 0.3, 0.25, -0.2])
    p = _sigmoid(-1.3 + x @ beta)
    clean = pd.DataFrame(x, columns=[f"x{i}" for i in range(8)])
    raw = clean.round(4).assign(churned=np.where(r.random(n) < p, "1", "0"))
    return raw, p, clean


def references(clean: pd.DataFrame, y: np.ndarray, folds: int, seed: int) -> dict[str, float]:
    """Cross-validated AUC of scikit-learn's gradient boosting and logistic regression."""
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    hgb = HistGradientBoostingClassifier(random_state=0)
    lr = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    with threadpool_limits(limits=1):  # 2 shared cores: no OpenMP oversubscription
        return {"hgb": float(cross_val_score(hgb, clean, y, cv=cv, scoring="roc_auc").mean()),
                "logistic": float(cross_val_score(lr, clean, y, cv=cv,
                                                  scoring="roc_auc").mean())}


def invoke(*args: str) -> dict:
    result = runner.invoke(app, [*args, "--json"], env={"KEHU_LANG": "en"})
    assert result.exit_code == 0, (result.output, result.exception)
    return json.loads(result.stdout)


# -- the CLI on a messy GBK export ----------------------------------------------------------
def test_evaluate_messy_gbk_table_matches_truth_and_references(tmp_path: Path) -> None:
    raw, p, clean = telco(3000, seed=11)
    unlabelled = [5, 17, 400]
    raw.loc[unlabelled, "Churn"] = ""
    path = tmp_path / "telco.csv"
    raw.to_csv(path, index=False, encoding="gbk")

    res = invoke("churn", "evaluate", str(path), "--label", "Churn", "--positive", " yes ",
                 "--id", "customerID", "--folds", "3", "--seed", "1")

    assert set(res) >= KEYS
    kept = raw["Churn"].str.strip() != ""
    y = (raw.loc[kept, "Churn"] == "Yes").to_numpy().astype(int)
    assert res["n"] == int(kept.sum()) == 3000 - len(unlabelled)
    assert res["excluded_rows"] == len(unlabelled)
    assert res["positive_rate"] == pytest.approx(y.mean())
    assert res["folds"] == 3 and len(res["auc_per_fold"]) == 3
    # typing of the messy columns
    assert res["dropped"] == {"Country": "constant"}
    assert "customerID" not in res["features"] and "Churn" not in res["features"]
    assert {"tenure", "TotalCharges", "MonthlyCharges", "宽带"} <= set(res["features"])
    assert res["top_features"][0]["feature"] in ("tenure", "Contract", "TotalCharges")
    # quality against the truth and against scikit-learn on a clean copy of the same rows
    true_auc = roc_auc_score(y, p[kept.to_numpy()])
    ref = references(clean[kept.to_numpy()], y, folds=3, seed=1)
    assert abs(res["auc"] - true_auc) < 0.03, (res["auc"], true_auc)
    assert res["auc"] > max(ref.values()) - 0.01, (res["auc"], ref)
    # probabilities close to observed rates
    cal = res["calibration"]
    assert sum(b["n"] for b in cal) == res["n"]
    gap = sum(abs(b["predicted"] - b["observed"]) * b["n"] for b in cal) / res["n"]
    assert gap < 0.04, cal
    assert 1.5 < res["lift_top_decile"] < 1 / res["positive_rate"]


# -- model choice ---------------------------------------------------------------------------
def test_nonlinear_table_chooses_lightgbm_and_beats_references(tmp_path: Path) -> None:
    raw, p, clean = calls(4000, seed=5)
    path = tmp_path / "calls.parquet"
    raw.to_parquet(path)
    res = evaluate_file(path, "Churn?", "TRUE.", folds=3, seed=2)
    y = (raw["Churn?"] == "True.").to_numpy().astype(int)
    ref = references(clean, y, folds=3, seed=2)
    assert res["dropped"] == {"Phone": "id"}
    assert res["model"] in ("lightgbm", "blend") and "logistic" not in res["model_per_fold"]
    assert res["inner_cv_auc"]["lightgbm"] > res["inner_cv_auc"]["logistic"] + 0.02
    assert abs(res["auc"] - roc_auc_score(y, p)) < 0.03
    assert res["auc"] > ref["hgb"] - 0.01 and res["auc"] > ref["logistic"] + 0.03, (res, ref)


def test_linear_table_keeps_logistic_competitive(tmp_path: Path) -> None:
    raw, p, clean = linear(2500, seed=9)
    path = tmp_path / "linear.jsonl"
    raw.to_json(path, orient="records", lines=True)
    res = evaluate_file(path, "churned", "1", folds=3, seed=3)
    y = raw["churned"].astype(int).to_numpy()
    ref = references(clean, y, folds=3, seed=3)
    assert res["model"] in ("logistic", "blend")
    assert res["inner_cv_auc"]["logistic"] > res["inner_cv_auc"]["lightgbm"]
    assert res["auc"] > ref["logistic"] - 0.01
    assert abs(res["auc"] - roc_auc_score(y, p)) < 0.03


# -- contributions --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def driver_data() -> tuple[pd.DataFrame, np.ndarray]:
    r = np.random.default_rng(3)
    n = 2000
    X = pd.DataFrame({"usage_drop": r.normal(size=n), "age": r.normal(40, 10, n),
                      "plan": r.choice(["basic", "plus", "pro"], n),
                      "calls": r.poisson(2, n).astype(str)})
    z = -1.2 + 1.8 * X["usage_drop"] + 0.2 * (X["plan"] == "basic") + 0.01 * (X["age"] - 40)
    y = (r.random(n) < _sigmoid(z.to_numpy())).astype(int)
    return X, y


@pytest.mark.parametrize("model", ["lightgbm", "logistic"])
def test_contributions_name_the_driver_and_add_up(driver_data: tuple, model: str) -> None:
    X, y = driver_data
    clf = ChurnClassifier(model=model, cv=3).fit(X, y)
    assert clf.chosen_model_ == model
    assert clf.feature_importance_.index[0] == "usage_drop"
    extremes = X.iloc[[int(X["usage_drop"].idxmax()), int(X["usage_drop"].idxmin())]]
    c = clf.contributions(extremes)
    assert list(c.columns) == ["usage_drop", "age", "plan", "calls"]
    assert c.abs().idxmax(axis=1).tolist() == ["usage_drop", "usage_drop"]
    assert c.iloc[0]["usage_drop"] > 0.5 and c.iloc[1]["usage_drop"] < -0.5
    full = clf.contributions(X.head(50), base=True)
    raw = (clf.lightgbm_.booster_.predict(clf.prepare(X.head(50)), raw_score=True)
           if model == "lightgbm" else clf.logistic_.decision_function(clf.prepare(X.head(50))))
    np.testing.assert_allclose(full.sum(axis=1).to_numpy(), raw, rtol=1e-6, atol=1e-6)
    proba = clf.predict_proba(X.head(50))
    assert proba.shape == (50,) and np.all((proba > 0) & (proba < 1))
    # calibration is monotone: it never reorders customers
    assert np.array_equal(np.argsort(proba, kind="stable"), np.argsort(raw, kind="stable"))


def test_folds_in_parallel_give_the_same_model(driver_data: tuple) -> None:
    """n_jobs runs the inner folds at once, each on one thread: the same choice, the same
    hyper-parameters and the same probabilities to the last bit as one fold at a time."""
    X, y = driver_data
    one = ChurnClassifier(cv=3, n_jobs=1).fit(X, y)
    two = ChurnClassifier(cv=3, n_jobs=2).fit(X, y)
    assert (one.chosen_model_, one.n_trees_, one.C_) == (two.chosen_model_, two.n_trees_,
                                                          two.C_)
    assert one.cv_scores_ == two.cv_scores_
    assert np.array_equal(one.predict_proba(X), two.predict_proba(X))
    with pytest.raises(KehuInputError, match=r"'n_jobs' parameter must be an int >= 1 or -1\. "
                                             r"Got 0 instead\."):
        ChurnClassifier(n_jobs=0).fit(X, y)


@pytest.mark.parametrize("model", ["lightgbm", "logistic", "blend"])
def test_fixed_hyper_parameters_give_the_chosen_model(driver_data: tuple, model: str) -> None:
    """Given the trees and C an inner CV chose, a fit skips the search and gives the same
    out-of-fold scores, calibration and probabilities (to rounding)."""
    X, y = driver_data
    chosen = ChurnClassifier(model=model, cv=3).fit(X, y)
    fixed = ChurnClassifier(model=model, cv=3, n_trees=chosen.n_trees_ or None,
                            C=None if np.isnan(chosen.C_) else chosen.C_).fit(X, y)
    np.testing.assert_equal((fixed.n_trees_, fixed.C_), (chosen.n_trees_, chosen.C_))
    assert fixed.cv_scores_ == pytest.approx(chosen.cv_scores_, abs=1e-12)
    np.testing.assert_allclose(fixed.predict_proba(X), chosen.predict_proba(X), rtol=1e-12,
                               atol=1e-12)
    with pytest.raises(KehuInputError, match="'C' parameter must be a number > 0"):
        ChurnClassifier(C=0.0).fit(X, y)
    with pytest.raises(KehuInputError, match="'n_trees' parameter must be an int >= 1"):
        ChurnClassifier(n_trees=0).fit(X, y)


def test_unseen_levels_and_missing_values_score() -> None:
    r = np.random.default_rng(0)
    X = pd.DataFrame({"plan": r.choice(["a", "b", "c"], 600), "x": r.normal(size=600)})
    y = (r.random(600) < _sigmoid(X["x"].to_numpy())).astype(int)
    with pytest.raises(NotFittedError, match="not fitted yet"):
        ChurnClassifier().predict_proba(X)
    new = pd.DataFrame({"plan": ["zzz", None, "a"], "x": ["", " 1.5 ", None]})
    for calibration in ("platt", "isotonic"):
        clf = ChurnClassifier(cv=3, calibration=calibration).fit(X, y)
        p = clf.predict_proba(new)
        assert p.shape == (3,) and np.isfinite(p).all() and ((p >= 0) & (p <= 1)).all()
    with pytest.raises(KehuInputError, match="lacks the column"):
        clf.predict_proba(new[["plan"]])


# -- metrics --------------------------------------------------------------------------------
def test_metrics_match_sklearn_and_hand_counts() -> None:
    r = np.random.default_rng(1)
    y = (r.random(1000) < 0.2).astype(int)
    p = np.round(r.random(1000) * 0.5 + 0.3 * y, 2)  # ties on purpose
    assert metrics.roc_auc(y, p) == pytest.approx(roc_auc_score(y, p))
    assert metrics.pr_auc(y, p) == pytest.approx(average_precision_score(y, p))
    top = np.argsort(-p, kind="stable")[:100]
    lift, capture = metrics.lift_capture(y, p, 0.1)
    assert lift == pytest.approx(y[top].mean() / y.mean())
    assert capture == pytest.approx(y[top].sum() / y.sum())
    lift20, capture20 = metrics.lift_capture(y, p, 0.2)
    assert capture20 >= capture and lift20 > 1
    cal = metrics.calibration_curve(y, p)
    assert [b["n"] for b in cal] == [100] * 10
    assert cal[0]["predicted"] <= cal[-1]["predicted"]
    assert sum(b["observed"] * b["n"] for b in cal) == pytest.approx(y.sum())


# -- errors ---------------------------------------------------------------------------------
@pytest.fixture
def small_csv(tmp_path: Path) -> Path:
    raw, _p, _c = telco(200, seed=2)
    path = tmp_path / "small.csv"
    raw.to_csv(path, index=False)
    return path


def _error(*args: str) -> str:
    result = runner.invoke(app, list(args), env={"KEHU_LANG": "en"})
    assert isinstance(result.exception, KehuInputError), result.output
    return str(result.exception)


def test_error_messages(small_csv: Path, tmp_path: Path) -> None:
    msg = _error("churn", "evaluate", str(small_csv), "--label", "Churned", "--positive", "Yes")
    assert "has no label column 'Churned'" in msg and "Its columns: customerID, tenure" in msg
    msg = _error("churn", "evaluate", str(small_csv), "--label", "Churn", "--positive", "True")
    assert "The positive value 'True' does not occur in the label column 'Churn'" in msg
    assert "'No' (" in msg and "'Yes' (" in msg
    msg = _error("churn", "evaluate", str(small_csv), "--label", "Churn", "--positive", "Yes",
                 "--folds", "1")
    assert msg == "The '--folds' parameter must be an int >= 2. Got 1 instead."
    msg = _error("churn", "evaluate", str(small_csv), "--label", "Churn", "--positive", "Yes",
                 "--id", "cust")
    assert "has no id column 'cust'" in msg
    one = tmp_path / "one.csv"
    pd.read_csv(small_csv).assign(Churn="Yes").to_csv(one, index=False)
    msg = _error("churn", "evaluate", str(one), "--label", "Churn", "--positive", "yes")
    assert "needs at least 5 churned and 5 stayed rows" in msg and "0 with other values" in msg


# -- train and score ------------------------------------------------------------------------
def test_train_score_round_trip(small_csv: Path, tmp_path: Path) -> None:
    model = tmp_path / "m" / "churn.pkl"
    info = invoke("churn", "train", str(small_csv), "--label", "Churn", "--positive", "Yes",
                  "--id", "customerID", "--out", str(model))
    assert model.is_file() and info["label"] == "Churn" and info["id_col"] == "customerID"
    assert info["model"] in ("lightgbm", "logistic", "blend")
    new = pd.read_csv(small_csv).drop(columns=["Churn"]).head(57)
    new.loc[0, "Contract"] = "Three year"  # a level the model never saw
    new.loc[1, "tenure"] = None
    data = tmp_path / "new.xlsx"
    new.to_excel(data, index=False)
    for out in (tmp_path / "scores.csv", tmp_path / "scores.parquet"):
        res = invoke("churn", "score", str(model), str(data), "--out", str(out))
        assert res["rows"] == 57
        scores = pd.read_csv(out) if out.suffix == ".csv" else pd.read_parquet(out)
        assert len(scores) == 57
        assert scores["customerID"].astype(str).tolist() == new["customerID"].tolist()
        assert scores["churn_probability"].between(0, 1).all()
        assert set(scores["reason_1"]) <= set(info["features"])
        assert set(scores["reason_1_direction"]) <= {"raises risk", "lowers risk"}
        assert (scores["reason_1_contribution"].abs() >=
                scores["reason_2_contribution"].abs()).all()
    msg = _error("churn", "score", str(small_csv), str(data), "--out", str(tmp_path / "x.csv"))
    assert "is not a kehu churn model file" in msg


def test_evaluate_on_the_demo_customer_export_with_a_churn_column(tmp_path: Path) -> None:
    """The demo's own customer export (GBK, Chinese headers, planted dirty rows) with a
    churn column added the way another system would export it: 是/否 from the churn log."""
    from kehu.demo import generate

    src = tmp_path / "src"
    generate("retail", 3000, seed=11, out=src)
    cust = pd.read_csv(src / "customers.csv", encoding="gb18030", dtype=str)
    churn = pd.read_csv(src / "churn_events.csv", encoding="utf-8-sig", dtype=str)
    gone = set(churn.iloc[:, 1])   # 客户编号
    cust["是否流失"] = np.where(cust["客户编号"].isin(gone), "是", "否")
    # days on the books, as billing systems export it (在网天数): text, blank when unknown
    signup = pd.to_datetime(cust["注册日期"], errors="coerce")
    cust["在网天数"] = (pd.Timestamp("2025-12-31") - signup).dt.days.astype("Int64") \
        .astype(str).replace("<NA>", "")
    path = tmp_path / "客户流失.csv"
    cust.to_csv(path, index=False, encoding="gb18030")
    r = runner.invoke(app, ["churn", "evaluate", str(path), "--label", "是否流失",
                            "--positive", "是", "--id", "客户编号", "--folds", "3", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["n"] == len(cust) - out["excluded_rows"]
    assert out["positive_rate"] == pytest.approx((cust["是否流失"] == "是").mean(), abs=1e-9)
    # churn over the whole history grows with the time on the books, and the hazard falls
    # with the value class the member tier reflects: the model must find both — as well as a
    # gradient-boosting reference on a clean copy of those two columns
    assert "在网天数" in out["features"] and "手机号码" in out["dropped"]
    clean = cust[cust["是否流失"].notna()]
    x = pd.DataFrame({"days": pd.to_numeric(clean["在网天数"], errors="coerce"),
                      "tier": clean["会员等级"].astype("category").cat.codes})
    y = (clean["是否流失"] == "是").to_numpy(int)
    with threadpool_limits(1):
        ref = cross_val_score(HistGradientBoostingClassifier(max_iter=100, random_state=0), x,
                              y, cv=StratifiedKFold(3, shuffle=True, random_state=0),
                              scoring="roc_auc").mean()
    print(f"demo export: kehu AUC {out['auc']:.3f}, reference {ref:.3f}")
    assert out["auc"] > 0.55 and out["auc"] >= ref - 0.03, (out["auc"], ref)
    assert "客户编号" not in out["features"]
