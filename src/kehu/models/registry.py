"""The model registry: every trained model with its version, as-of date, data window,
features, parameters, metrics and feature importance (``_models`` in the warehouse), the
fitted object in ``models/<model_id>.pkl`` of the workspace, and a drift check of feature
and score distributions against the training data (population stability index).

>>> import numpy as np
>>> ref = reference_bins(np.arange(1000.0))
>>> round(psi(ref, np.arange(1000.0)), 6)             # same distribution
0.0
>>> psi(ref, np.arange(1000.0) + 500) > 0.25           # shifted by half its range
True
"""

from __future__ import annotations

import json
import pickle
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa

from kehu.errors import NotFoundError
from kehu.i18n import _

if TYPE_CHECKING:
    from kehu.workspace import Workspace

MODELS_TABLE = "_models"
MODELS_SCHEMA = pa.schema([
    ("model_id", pa.string()), ("kind", pa.string()), ("version", pa.int64()),
    ("created_at", pa.timestamp("us")), ("as_of", pa.date32()), ("algorithm", pa.string()),
    ("path", pa.string()), ("details", pa.string())])
#: PSI above this is reported as drift (the usual rule of thumb: < 0.1 stable, 0.1–0.25
#: some shift, > 0.25 a large shift)
PSI_WARN = 0.25


@dataclass
class ModelRecord:
    model_id: str
    kind: str
    version: int
    created_at: datetime
    as_of: date
    algorithm: str
    path: str
    #: data window, features, parameters, metrics, importance, reference distributions
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def register(ws: Workspace, kind: str, model: Any, as_of: date, algorithm: str,
             details: dict[str, Any]) -> ModelRecord:
    """Store ``model`` as the next version of ``kind`` and record it."""
    records = list_models(ws, kind)
    version = max((r.version for r in records), default=0) + 1
    model_id = f"{kind}-v{version}"
    folder = ws.root / "models"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{model_id}.pkl"
    tmp = path.with_suffix(".tmp")
    with tmp.open("wb") as fh:
        pickle.dump(model, fh, protocol=pickle.HIGHEST_PROTOCOL)
    tmp.replace(path)
    rec = ModelRecord(model_id, kind, version, datetime.now(), as_of, algorithm,
                      str(path.relative_to(ws.root)), details)
    row = {**rec.to_dict(), "details": json.dumps(details, default=_json, ensure_ascii=False)}
    ws.warehouse.append(MODELS_TABLE, pa.Table.from_pylist([row], schema=MODELS_SCHEMA))
    return rec


def _json(v: Any) -> Any:
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    if isinstance(v, np.ndarray):
        return v.tolist()
    return str(v)


def list_models(ws: Workspace, kind: str | None = None) -> list[ModelRecord]:
    """Every registered model (of ``kind``), oldest first."""
    if not ws.warehouse.exists(MODELS_TABLE):
        return []
    rows = ws.warehouse.read(MODELS_TABLE).to_pylist()
    out = [ModelRecord(**{**r, "details": json.loads(r["details"] or "{}")}) for r in rows
           if kind is None or r["kind"] == kind]
    return sorted(out, key=lambda r: (r.kind, r.version))


def get(ws: Workspace, model_id: str | None = None, kind: str | None = None) -> ModelRecord:
    """A model by id, or the latest of ``kind``."""
    records = list_models(ws, kind)
    if model_id is not None:
        records = [r for r in records if r.model_id == model_id]
    if not records:
        what = model_id or kind or "-"
        raise NotFoundError(_("No model {what} in this workspace. Train one first (e.g. "
                              "'kehu churn fit'); 'kehu models list' shows what exists.")
                            .format(what=what))
    return records[-1]


def load(ws: Workspace, rec: ModelRecord) -> Any:
    """The fitted model object of ``rec`` (a pickle kehu wrote itself into the workspace)."""
    with (ws.root / rec.path).open("rb") as fh:
        return pickle.load(fh)  # our own file, written by register()


# -- drift ---------------------------------------------------------------------------------
def reference_bins(values: Any, bins: int = 10) -> dict[str, Any]:
    """A distribution to compare later data against: decile edges and shares for numbers,
    level shares (top 20, the rest pooled) for categories. Missing values are a bin."""
    s = pd.Series(values)
    missing = float(s.isna().mean()) if len(s) else 0.0
    if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
        v = s.dropna().to_numpy(dtype=float)
        if len(v) == 0:
            return {"type": "number", "edges": [], "shares": [], "missing": missing}
        edges = np.unique(np.quantile(v, np.linspace(0, 1, bins + 1)[1:-1]))
        counts = np.bincount(np.searchsorted(edges, v, side="right"), minlength=len(edges) + 1)
        return {"type": "number", "edges": edges.tolist(),
                "shares": (counts / len(s)).tolist(), "missing": missing}
    shares = s.dropna().astype(str).value_counts() / max(len(s), 1)
    top = shares.head(20)
    return {"type": "category", "levels": top.index.tolist(), "shares": top.tolist(),
            "other": float(shares.iloc[20:].sum()), "missing": missing}


def _shares(ref: dict[str, Any], values: Any) -> tuple[np.ndarray, np.ndarray]:
    s = pd.Series(values)
    n = max(len(s), 1)
    miss = float(s.isna().mean()) if len(s) else 0.0
    if ref["type"] == "number":
        v = s.dropna().to_numpy(dtype=float)
        counts = np.bincount(np.searchsorted(np.asarray(ref["edges"]), v, side="right"),
                             minlength=len(ref["edges"]) + 1)
        return (np.append(ref["shares"], ref["missing"]),
                np.append(counts / n, miss))
    cur = s.dropna().astype(str).value_counts() / n
    now = [float(cur.get(level, 0.0)) for level in ref["levels"]]
    other = float(cur[~cur.index.isin(ref["levels"])].sum())
    return (np.array([*ref["shares"], ref["other"], ref["missing"]]),
            np.array([*now, other, miss]))


def psi(ref: dict[str, Any], values: Any) -> float:
    """Population stability index of ``values`` against a :func:`reference_bins`."""
    expected, actual = _shares(ref, values)
    e = np.clip(expected, 1e-4, None)
    a = np.clip(actual, 1e-4, None)
    return float(np.sum((a - e) * np.log(a / e)))


def drift(rec: ModelRecord, frame: pd.DataFrame, scores: np.ndarray | None = None
          ) -> dict[str, Any]:
    """PSI of every feature (and the score) of ``frame`` against the training reference
    stored with ``rec``; features above :data:`PSI_WARN` are listed as drifted."""
    refs: dict[str, Any] = rec.details.get("reference", {})
    out = {col: round(psi(ref, frame[col]), 4) for col, ref in refs.items()
           if col in frame.columns}
    if scores is not None and "score" in rec.details.get("score_reference", {}):
        out["(score)"] = round(psi(rec.details["score_reference"]["score"], scores), 4)
    drifted = sorted((c for c, v in out.items() if v > PSI_WARN), key=lambda c: -out[c])
    return {"model_id": rec.model_id, "psi": out, "drifted": drifted,
            "max_psi": max(out.values(), default=0.0)}


def model_path(ws: Workspace, rec: ModelRecord) -> Path:
    return ws.root / rec.path
