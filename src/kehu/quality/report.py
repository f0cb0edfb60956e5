"""The data-quality report (垃圾进，垃圾出): per entity and column, with a score.

Score per entity, 0–100 (documented in docs/quality.md)::

    score = 100 × (0.35·completeness + 0.35·validity + 0.15·uniqueness + 0.15·integrity)

- completeness: mean non-null share of the columns, required columns weighted 3, optional
  columns the source provides at all weighted 1 (a column no source fills is not held against
  the data);
- validity: 1 − (rows rejected at import + invalid values in the table) / (rows + rejected);
- uniqueness: 1 − exact duplicate rows / rows (customers: also rows in suspected-duplicate
  groups);
- integrity: 1 − orphan references / rows.

The overall score is the row-weighted mean of the entity scores.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from kehu.ingest.journal import visible_rejects
from kehu.model import ENTITIES, IMPORT_ORDER
from kehu.model.types import ATTR_PREFIX
from kehu.quality import checks

if TYPE_CHECKING:
    from kehu.workspace import Workspace


class ColumnQuality(BaseModel):
    name: str
    required: bool
    completeness: float
    invalid: int = 0


class EntityQuality(BaseModel):
    entity: str
    rows: int
    rejected_at_import: int = 0
    rejected_by_reason: dict[str, int] = Field(default_factory=dict)
    columns: list[ColumnQuality] = Field(default_factory=list)
    exact_duplicates: int = 0
    orphans: dict[str, int] = Field(default_factory=dict)
    outliers: dict[str, dict[str, Any]] = Field(default_factory=dict)
    date_coverage: dict[str, Any] | None = None
    completeness: float = 1.0
    validity: float = 1.0
    uniqueness: float = 1.0
    integrity: float = 1.0
    score: float = 100.0


class QualityReport(BaseModel):
    generated_at: datetime
    entities: list[EntityQuality]
    empty_entities: list[str]
    suspected_duplicate_customers: dict[str, Any]
    overall_score: float | None


def score(completeness: float, validity: float, uniqueness: float, integrity: float) -> float:
    """The entity score (see the module docstring).

    >>> score(1, 1, 1, 1), score(0.5, 1, 1, 1)
    (100.0, 82.5)
    """
    return round(100 * (0.35 * completeness + 0.35 * validity + 0.15 * uniqueness
                        + 0.15 * integrity), 1)


def build_report(ws: Workspace, entities: list[str] | None = None,
                 now: datetime | None = None) -> QualityReport:
    """Run every check on every non-empty entity (or those named)."""
    now = now or datetime.now()
    engine = ws.engine
    rejects = visible_rejects(ws.warehouse).to_pylist()
    rejected_rows: dict[str, set[tuple[Any, Any]]] = {}
    reasons: dict[str, dict[str, int]] = {}
    for r in rejects:
        rejected_rows.setdefault(r["entity"], set()).add((r["file"], r["row"]))
        by = reasons.setdefault(r["entity"], {})
        by[r["reason_code"]] = by.get(r["reason_code"], 0) + 1
    out: list[EntityQuality] = []
    empty: list[str] = []
    dup_customers: dict[str, Any] = {"groups": 0, "customers": 0, "examples": []}
    for name in entities or list(IMPORT_ORDER):
        ent = ENTITIES[name]
        t = engine.table(name, follow_identity=False)
        n = int(t.count().to_pyarrow().as_py())
        if n == 0:
            empty.append(name)
            continue
        cols = [c.name for c in ent.columns] + [c for c in t.columns
                                                if c.startswith(ATTR_PREFIX)]
        comp = checks.completeness(t, cols)
        invalid = checks.invalid_values(t, ent, now)
        q = EntityQuality(entity=name, rows=n,
                          rejected_at_import=len(rejected_rows.get(name, ())),
                          rejected_by_reason=reasons.get(name, {}))
        q.columns = [ColumnQuality(name=c, required=ent.has_column(c) and ent.column(c).required,
                                   completeness=comp[c], invalid=invalid.get(c, 0))
                     for c in cols]
        q.exact_duplicates = checks.exact_duplicates(t, ent)
        q.orphans = checks.orphans(engine, t, ent)
        q.outliers = checks.outliers(t, ent)
        if ent.time_column:
            q.date_coverage = checks.date_coverage(t, ent.time_column)
        dup_rows = q.exact_duplicates
        if name == "customers":
            dup_customers = checks.suspected_duplicate_customers(t)
            dup_rows += dup_customers["customers"]
        weights = [(3.0 if c.required else 1.0, c.completeness) for c in q.columns
                   if c.required or c.completeness > 0]
        q.completeness = sum(w * v for w, v in weights) / sum(w for w, _ in weights) \
            if weights else 1.0
        bad = q.rejected_at_import + sum(invalid.values())
        q.validity = 1 - bad / (n + q.rejected_at_import)
        q.uniqueness = max(0.0, 1 - dup_rows / n)
        q.integrity = max(0.0, 1 - sum(q.orphans.values()) / n)
        q.score = score(q.completeness, q.validity, q.uniqueness, q.integrity)
        out.append(q)
    total = sum(e.rows for e in out)
    overall = round(sum(e.score * e.rows for e in out) / total, 1) if total else None
    return QualityReport(generated_at=now, entities=out, empty_entities=empty,
                         suspected_duplicate_customers=dup_customers, overall_score=overall)
