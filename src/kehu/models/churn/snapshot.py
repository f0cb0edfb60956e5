"""Churn straight from a customer table file ("snapshot mode"): evaluate, train, score.

The file has one row per customer, attribute columns and a label column saying who churned
(CSV in UTF-8 or GBK, Excel, Parquet, JSON Lines — read with :mod:`kehu.ingest.readers`).
:func:`evaluate_file` measures how well :class:`~kehu.models.churn.tabular.ChurnClassifier`
predicts churn with outer stratified K-fold cross-validation of the whole procedure (column
typing, model choice and calibration happen inside each fold, so nothing leaks);
:func:`train_file` fits on every row and saves the model; :func:`score_file` scores a file
with a saved model, with the three strongest reasons per customer.

Model files are pickles (joblib): load only files you made or trust.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from kehu.errors import KehuInputError
from kehu.i18n import _
from kehu.models.churn import metrics
from kehu.models.churn.columns import _text
from kehu.models.churn.tabular import ChurnClassifier

MODEL_KIND = "kehu.churn.snapshot/1"
INNER_FOLDS = 4


def read_table(path: str | Path) -> tuple[pd.DataFrame, int]:
    """The whole file as a DataFrame (text columns stay text) and the number of unreadable
    rows (ragged lines, bad JSON) that were skipped."""
    from kehu.ingest.readers import ReadOptions, open_source

    reader = open_source(path, ReadOptions())
    parts: list[pa.Table] = []
    bad = 0
    for b in reader.batches():
        bad += len(b.problems)
        if b.num_rows:
            parts.append(pa.table({h: b.columns[h] for h in reader.headers}))
    if not parts:
        return pd.DataFrame({h: pd.Series([], dtype=object) for h in reader.headers}), bad
    table = pa.concat_tables(parts, promote_options="permissive")
    return table.to_pandas(), bad


def check_int(name: str, value: Any, minimum: int) -> None:
    """Refuse a count parameter below ``minimum`` with the standard message."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise KehuInputError(_("The '{name}' parameter must be an int >= {min}. Got {v} instead."
                               ).format(name=name, min=minimum, v=value))


def prepare(path: str | Path, label: str, positive: str, id_col: str | None = None,
            min_per_class: int = 2) -> dict[str, Any]:
    """Read and validate a labelled file: features, 0/1 label, ids, excluded rows."""
    frame, unreadable = read_table(path)
    columns = [str(c) for c in frame.columns]
    if label not in frame.columns:
        raise KehuInputError(_("{path} has no label column '{col}'. Its columns: {headers}. "
                               "Pass the column that says who churned with --label.").format(
            path=path, col=label, headers=", ".join(columns)))
    if id_col is not None and id_col not in frame.columns:
        raise KehuInputError(_("{path} has no id column '{col}'. Its columns: {headers}.")
                             .format(path=path, col=id_col, headers=", ".join(columns)))
    if id_col == label:
        raise KehuInputError(_("The id column and the label column are both '{col}'; pass "
                               "different columns.").format(col=label))
    text = pd.Series(_text(frame[label]).to_pylist(), dtype=object)
    has_label = text.notna().to_numpy()
    want = str(positive).strip().lower()
    y_all = text.map(lambda v: v is not None and str(v).strip().lower() == want).to_numpy()
    values = text[has_label].value_counts()
    shown = ", ".join(f"{v!r} ({n})" for v, n in values.head(10).items())
    if not y_all.any():
        raise KehuInputError(_("The positive value {pos!r} does not occur in the label column "
                               "'{col}'. Its values: {values}. Pass one of them with "
                               "--positive.").format(pos=positive, col=label, values=shown or "-"))
    y = y_all[has_label].astype(int)
    n_pos, n_neg = int(y.sum()), int(len(y) - y.sum())
    if min(n_pos, n_neg) < min_per_class:
        raise KehuInputError(_("The label column '{col}' needs at least {k} churned and {k} "
                               "stayed rows (one per fold); it has {pos} with {pos_value!r} "
                               "and {neg} with other values ({values}).").format(
            col=label, k=min_per_class, pos=n_pos, pos_value=positive, neg=n_neg, values=shown))
    keep = frame.loc[has_label].reset_index(drop=True)
    ids = keep[id_col] if id_col else None
    X = keep.drop(columns=[c for c in (label, id_col) if c])
    return {"X": X, "y": y, "ids": ids, "excluded_rows": int((~has_label).sum()),
            "unreadable_rows": unreadable, "columns": columns}


def evaluate_file(path: str | Path, label: str, positive: str, id_col: str | None = None,
                  folds: int = 5, seed: int = 0,
                  on_fold: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Cross-validated quality of churn predictions on a labelled customer table.

    ``on_fold(i)`` is called after each outer fold (and with ``folds`` after the final fit on
    all rows), for progress displays.
    """
    from sklearn.model_selection import StratifiedKFold

    check_int("folds", folds, 2)
    check_int("seed", seed, 0)
    started = time.perf_counter()
    data = prepare(path, label, positive, id_col, min_per_class=folds)
    X, y = data["X"], data["y"]
    oof = np.zeros(len(y))
    per_fold: list[float] = []
    chosen: list[str] = []
    skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for i, (tr, te) in enumerate(skf.split(np.zeros(len(y)), y)):
        clf = _classifier(y[tr], seed).fit(X.iloc[tr], y[tr])
        oof[te] = clf.predict_proba(X.iloc[te])
        per_fold.append(metrics.roc_auc(y[te], oof[te]))
        chosen.append(clf.chosen_model_)
        if on_fold:
            on_fold(i + 1)
    full = _classifier(y, seed).fit(X, y)
    if on_fold:
        on_fold(folds + 1)
    pooled = metrics.summary(y, oof)
    importance = full.feature_importance_
    return {
        "file": str(path), "label": label, "positive": positive,
        "auc": float(np.mean(per_fold)), "auc_std": float(np.std(per_fold)),
        "auc_pooled": pooled["auc"], "pr_auc": pooled["pr_auc"],
        "lift_top_decile": pooled["lift_top_decile"], "lift_top_20": pooled["lift_top_20"],
        "capture_top_decile": pooled["capture_top_decile"],
        "capture_top_20": pooled["capture_top_20"],
        "n": len(y), "positives": int(y.sum()), "positive_rate": float(y.mean()),
        "folds": folds, "seed": seed, "auc_per_fold": per_fold, "model_per_fold": chosen,
        "model": full.chosen_model_, "inner_cv_auc": full.cv_scores_,
        "calibration": pooled["calibration"], "features": full.features_,
        "dropped": full.dropped_, "excluded_rows": data["excluded_rows"],
        "unreadable_rows": data["unreadable_rows"],
        "top_features": [{"feature": k, "importance": float(v)}
                         for k, v in importance.head(10).items()],
        "seconds": round(time.perf_counter() - started, 2),
    }


def _classifier(y: np.ndarray, seed: int) -> ChurnClassifier:
    smallest = int(min(y.sum(), len(y) - y.sum()))
    return ChurnClassifier(cv=max(2, min(INNER_FOLDS, smallest)), seed=seed)


def train_file(path: str | Path, label: str, positive: str, out: str | Path,
               id_col: str | None = None, seed: int = 0) -> dict[str, Any]:
    """Fit on every labelled row and save the model with its metadata to ``out``."""
    import joblib

    import kehu

    check_int("seed", seed, 0)
    data = prepare(path, label, positive, id_col)
    clf = _classifier(data["y"], seed).fit(data["X"], data["y"])
    meta = {"kind": MODEL_KIND, "kehu_version": kehu.__version__,
            "created": datetime.now(UTC).isoformat(timespec="seconds"), "source": str(path),
            "label": label, "positive": positive, "id_col": id_col,
            "columns": [str(c) for c in data["X"].columns], "features": clf.features_,
            "dropped": clf.dropped_, "model": clf.chosen_model_,
            "inner_cv_auc": clf.cv_scores_, "n": len(data["y"]),
            "positive_rate": float(data["y"].mean()), "excluded_rows": data["excluded_rows"]}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump({"meta": meta, "model": clf}, out)
    return {**meta, "out": str(out),
            "top_features": [{"feature": k, "importance": float(v)}
                             for k, v in clf.feature_importance_.head(10).items()]}


def load_model(path: str | Path) -> tuple[ChurnClassifier, dict[str, Any]]:
    """A model saved by :func:`train_file` and its metadata."""
    import joblib

    p = Path(path)
    if not p.is_file():
        raise KehuInputError(_("File not found: {path}. Check the path.").format(path=p))
    try:
        obj = joblib.load(p)
    except Exception as exc:
        raise KehuInputError(_("{path} is not a kehu churn model file ({err}). Make one with "
                               "'kehu churn train'.").format(path=p, err=exc)) from exc
    if not (isinstance(obj, dict) and isinstance(obj.get("meta"), dict)
            and obj["meta"].get("kind") == MODEL_KIND
            and isinstance(obj.get("model"), ChurnClassifier)):
        raise KehuInputError(_("{path} is not a kehu churn model file ({err}). Make one with "
                               "'kehu churn train'.").format(path=p, err="unknown content"))
    return obj["model"], obj["meta"]


def score_file(model_path: str | Path, data_path: str | Path, out_path: str | Path,
               id_col: str | None = None, reasons: int = 3) -> dict[str, Any]:
    """Write id, churn probability and the strongest reasons per row to CSV or Parquet."""
    out = Path(out_path)
    if out.suffix.lower() not in (".csv", ".parquet"):
        raise KehuInputError(_("The '--out' file must end in .csv or .parquet. Got {v!r} "
                               "instead.").format(v=str(out)))
    clf, meta = load_model(model_path)
    frame, unreadable = read_table(data_path)
    id_col = id_col or meta.get("id_col")
    if id_col and id_col not in frame.columns:
        raise KehuInputError(_("{path} has no id column '{col}'. Its columns: {headers}.")
                             .format(path=data_path, col=id_col,
                                     headers=", ".join(map(str, frame.columns))))
    ids = frame[id_col].to_numpy() if id_col else np.arange(1, len(frame) + 1)
    result = pd.DataFrame({id_col or "row": ids})
    if len(frame):
        result["churn_probability"] = clf.predict_proba(frame)
        contrib = clf.contributions(frame)
        values = contrib.to_numpy()
        names = np.asarray(contrib.columns, dtype=object)
        order = np.argsort(-np.abs(values), axis=1, kind="stable")[:, :reasons]
        up, down = _("raises risk"), _("lowers risk")
        for k in range(min(reasons, values.shape[1])):
            v = values[np.arange(len(values)), order[:, k]]
            result[f"reason_{k + 1}"] = names[order[:, k]]
            result[f"reason_{k + 1}_direction"] = np.where(v > 0, up, down)
            result[f"reason_{k + 1}_contribution"] = np.round(v, 4)
    else:
        result["churn_probability"] = pd.Series([], dtype=float)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".csv":
        result.to_csv(out, index=False, encoding="utf-8-sig")
    else:
        result.to_parquet(out, index=False)
    p = result["churn_probability"].to_numpy(dtype=float)
    return {"out": str(out), "rows": len(result), "unreadable_rows": unreadable,
            "model": meta.get("model"), "mean_probability": float(p.mean()) if len(p) else None}


__all__ = ["evaluate_file", "load_model", "prepare", "read_table", "score_file", "train_file"]
