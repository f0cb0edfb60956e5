"""Identity resolution over a workspace — the services the CLI and the web app share:
:func:`run`, the review queue (:func:`queue`, :func:`decide`, :func:`reopen`,
:func:`decisions`), the merge journal (:func:`journal`, :func:`undo`) and :func:`status`.

A run reads the warehouse's customers, resolves them (reusing the trained model unless the
spec or the data's fields changed), respects every decision people took, writes the
warehouse tables of :mod:`kehu.identity.tables` and records in the app store what changed.
A decision takes effect at once (keys, golden records) and on every later run.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel
from sqlalchemy import func, select

from kehu.errors import KehuInputError, NotFoundError
from kehu.i18n import _
from kehu.identity import tables as tb
from kehu.identity.cluster import constrained_clusters
from kehu.identity.golden import golden_records
from kehu.identity.keys import assign_keys, key_number
from kehu.identity.model import comparisons, present_columns
from kehu.identity.normalise import normalise_records
from kehu.identity.resolve import resolve
from kehu.identity.spec import IdentitySpec
from kehu.store.models import AuditEntry, IdentityJournalEntry, IdentityPair, IdentityRun

if TYPE_CHECKING:
    from kehu.workspace import Workspace

SPEC_FILE = "identity.yaml"
Decision = Literal["merge", "keep_apart"]


# -- outputs (what the web app and the CLI show) --------------------------------------------
class RunSummary(BaseModel):
    run_id: int
    records: int
    customers: int
    new_keys: int
    merges: int
    splits: int
    review_pairs: int
    conflicts: int
    trained: bool
    seconds: float


class ReviewItem(BaseModel):
    pair_id: int
    record_id_l: str
    record_id_r: str
    match_probability: float | None
    status: str
    origin: str
    kehu_key_l: str | None
    kehu_key_r: str | None
    left: dict[str, Any]
    right: dict[str, Any]
    decided_by: str | None = None
    decided_at: datetime | None = None
    note: str | None = None
    #: the journal entry by which the decision changed keys, while it is not undone (the
    #: decision is then changed by undoing it); None when the decision changed no key
    journal_id: int | None = None


class JournalItem(BaseModel):
    id: int
    at: datetime | None
    actor: str
    action: str
    kind: str
    kehu_key: str
    retired: list[str]
    records: int
    before: dict[str, str | None]
    after: dict[str, str | None]
    run_id: int | None
    pair_id: int | None
    undo_of: int | None
    undone_at: datetime | None
    undone_by: str | None


class DecisionResult(BaseModel):
    pair_id: int
    status: str
    journal_id: int | None
    changed_records: int
    keys: list[str]


class StatusReport(BaseModel):
    last_run: dict[str, Any] | None
    records: int
    customers: int
    #: customers (kehu keys) that hold several source records
    merged_customers: int = 0
    pending: int
    merged_pairs: int
    kept_apart_pairs: int
    journal_entries: int


# -- the spec --------------------------------------------------------------------------------
def load_spec(ws: Workspace, path: str | Path | None = None) -> IdentitySpec:
    """The spec at ``path``, else the workspace's ``identity.yaml``, else the defaults."""
    if path is not None:
        return IdentitySpec.load(path)
    p = ws.root / SPEC_FILE
    return IdentitySpec.load(p) if p.is_file() else IdentitySpec()


# -- running -------------------------------------------------------------------------------
def run(ws: Workspace, spec: IdentitySpec | None = None, *, actor: str,
        retrain: bool = False, engine: str = "duckdb", spark: Any = None) -> RunSummary:
    """Resolve the warehouse's customers into kehu keys (see the module docstring)."""
    t0 = time.perf_counter()
    spec = spec or load_spec(ws)
    raw = tb.source_records(ws.engine)
    if raw.num_rows == 0:
        raise KehuInputError(_("There are no customers in the warehouse to resolve. Import "
                               "customers first ('kehu import' or 'kehu load')."))
    store = ws.store
    previous = tb.read_map(ws.engine)
    with store.session() as s:
        last = s.scalars(select(IdentityRun).where(IdentityRun.finished_at.is_not(None))
                         .order_by(IdentityRun.id.desc()).limit(1)).first()
        must = [(p.record_id_l, p.record_id_r) for p in s.scalars(
            select(IdentityPair).where(IdentityPair.status == "merge"))]
        cannot = [(p.record_id_l, p.record_id_r) for p in s.scalars(
            select(IdentityPair).where(IdentityPair.status == "keep_apart"))]
        row = IdentityRun(actor=actor, engine=engine, spec=spec.model_dump(mode="json"),
                          model={})
        s.add(row)
        s.flush()
        run_id = row.id
    high_water = _high_water(ws)
    model = None
    if last is not None and not retrain and last.spec == spec.model_dump(mode="json"):
        model = last.model or None
    norm = normalise_records(raw)
    if model is not None and not _model_fits(model, spec, norm):
        model = None
    prev = previous.select(["customer_id", "kehu_key"]).rename_columns(
        ["record_id", "kehu_key"]) if previous.num_rows else None
    res = resolve(raw, spec, model=model, previous=prev,
                  high_water=high_water, must_link=must, cannot_link=cannot, engine=engine,
                  spark=spark, threads=ws.settings.engine.threads, normalised=norm)
    keys = res.keys
    # warehouse
    wh = ws.warehouse
    meta = {"kehu.identity_run": str(run_id)}
    src = pc.take(res.records["source_system"],
                  pc.index_in(keys.keys["record_id"], res.records["record_id"]))
    mapping = pa.table({
        "customer_id": keys.keys["record_id"],
        "source_system": src,
        "kehu_key": keys.keys["kehu_key"],
        "run_id": pa.array([run_id] * keys.keys.num_rows, pa.int64()),
        "journal_id": pa.nulls(keys.keys.num_rows, pa.int64())}, schema=tb.MAP_SCHEMA)
    tb.write_records(wh, tb.clean_records(raw, res.records), metadata=meta)
    wh.overwrite(tb.LINKS_TABLE, res.pairs, metadata=meta)
    tb.write_map(wh, mapping, metadata=meta)
    ws.engine.refresh()
    wh.overwrite(tb.GOLDEN_TABLE, _golden(ws, spec), metadata=meta)
    ws.engine.refresh()
    # app store
    merges = sum(1 for e in keys.events if e.action == "merge")
    splits = sum(1 for e in keys.events if e.action == "split")
    review = _update_queue(ws, res.review, run_id)
    with store.session() as s:
        for e in keys.events:
            s.add(IdentityJournalEntry(actor=actor, action=e.action, kind="auto",
                                       kehu_key=e.key, retired=e.retired, before=e.before,
                                       after=e.after, run_id=run_id))
        row = s.get_one(IdentityRun, run_id)
        row.finished_at = datetime.now(UTC)
        row.records = raw.num_rows
        row.customers = len(set(keys.keys["kehu_key"].to_pylist()))
        row.new_keys = keys.new_keys
        row.merges, row.splits = merges, splits
        row.review_pairs = review
        row.conflicts = len(res.conflicts)
        row.key_high_water = keys.high_water
        row.trained = res.trained
        row.model = res.model
        s.add(AuditEntry(actor=actor, action="run", object_type="identity",
                         object_id=str(run_id), details={"records": raw.num_rows,
                                                         "merges": merges, "splits": splits}))
    return RunSummary(run_id=run_id, records=raw.num_rows, customers=row.customers,
                      new_keys=keys.new_keys, merges=merges, splits=splits,
                      review_pairs=review, conflicts=len(res.conflicts), trained=res.trained,
                      seconds=round(time.perf_counter() - t0, 2))


def _model_fits(model: dict[str, Any], spec: IdentitySpec, norm: pa.Table) -> bool:
    """Whether a trained model compares what the records now have (new fields → retrain)."""
    present = present_columns(norm)
    want = {c.get_comparison("duckdb").output_column_name
            for c in comparisons(spec, present)}
    have = {c.get("output_column_name") for c in model.get("comparisons", [])}
    return want == have


def _high_water(ws: Workspace) -> int:
    with ws.store.session() as s:
        a = s.scalar(select(func.max(IdentityRun.key_high_water))) or 0
        b = s.scalar(select(func.max(IdentityJournalEntry.high_water))) or 0
    return max(int(a), int(b))


def _golden(ws: Workspace, spec: IdentitySpec, keys: list[str] | None = None) -> pa.Table:
    eng = ws.engine
    recs = eng.table(tb.RECORDS_TABLE)
    m = eng.table(tb.MAP_TABLE).select("customer_id", "kehu_key")
    if keys is not None:
        m = m.filter(m.kehu_key.isin(keys))
    t = recs.join(m, "customer_id")
    return eng.execute_arrow(golden_records(t, spec))


def _update_queue(ws: Workspace, review: pa.Table, run_id: int) -> int:
    """Pending pairs of the run's review band in, stale pending pairs out; decided pairs
    stay as decided. Returns the pending pairs."""
    now = {(a, b): (p, w) for a, b, p, w in zip(
        review["record_id_l"].to_pylist(), review["record_id_r"].to_pylist(),
        review["match_probability"].to_pylist(), review["match_weight"].to_pylist(),
        strict=True)}
    with ws.store.session() as s:
        known = {(p.record_id_l, p.record_id_r): p for p in s.scalars(select(IdentityPair))}
        for key, p in known.items():
            if p.status != "pending" or p.origin != "model":
                continue
            if key in now:
                p.match_probability, p.match_weight = now[key]
                p.run_id = run_id
            else:
                s.delete(p)
        for (a, b), (prob, w) in now.items():
            if (a, b) not in known:
                s.add(IdentityPair(record_id_l=a, record_id_r=b, match_probability=prob,
                                   match_weight=w, status="pending", origin="model",
                                   run_id=run_id))
        s.flush()
        return int(s.scalar(select(func.count()).select_from(IdentityPair)
                            .where(IdentityPair.status == "pending")) or 0)


# -- the review queue ------------------------------------------------------------------------
def _records(ws: Workspace, ids: list[str]) -> dict[str, dict[str, Any]]:
    """The records of ``ids`` as resolved (read from the few row groups that hold them)."""
    if not ws.warehouse.exists(tb.RECORDS_TABLE) or not ids:
        return {}
    t = tb.read_rows(ws.engine, tb.RECORDS_TABLE, "customer_id", ids)
    return {r["customer_id"]: r for r in t.to_pylist()}


def _live_entries(s: Any, pair_ids: list[int]) -> dict[int, int]:
    """Per pair, the newest journal entry of a decision on it that is not undone."""
    if not pair_ids:
        return {}
    J = IdentityJournalEntry
    rows = s.execute(select(J.pair_id, func.max(J.id)).where(
        J.pair_id.in_(pair_ids), J.kind == "manual", J.action != "undo",
        J.undone_at.is_(None)).group_by(J.pair_id)).all()
    return {int(p): int(e) for p, e in rows}


def _items(ws: Workspace, q: Any) -> list[ReviewItem]:
    """The pairs of query ``q``, with both records' values, their current keys and the
    journal entry of each decision that changed keys."""
    with ws.store.session() as s:
        pairs = list(s.scalars(q))
        live = _live_entries(s, [p.id for p in pairs if p.status != "pending"])
    ids = sorted({x for p in pairs for x in (p.record_id_l, p.record_id_r)})
    m = tb.read_map(ws.engine, customer_ids=ids)
    keys = dict(zip(m["customer_id"].to_pylist(), m["kehu_key"].to_pylist(), strict=True))
    recs = _records(ws, ids)
    return [ReviewItem(pair_id=p.id, record_id_l=p.record_id_l, record_id_r=p.record_id_r,
                       match_probability=p.match_probability, status=p.status,
                       origin=p.origin, kehu_key_l=keys.get(p.record_id_l),
                       kehu_key_r=keys.get(p.record_id_r),
                       left=recs.get(p.record_id_l, {}), right=recs.get(p.record_id_r, {}),
                       decided_by=p.decided_by, decided_at=p.decided_at, note=p.note,
                       journal_id=live.get(p.id)) for p in pairs]


def queue(ws: Workspace, status: str = "pending", limit: int = 50, offset: int = 0
          ) -> list[ReviewItem]:
    """Pairs for review (``status``: pending, merge, keep_apart or all), most likely first,
    with both records' values and current keys. Reads the page's records only: the work
    does not grow with the number of records."""
    if status not in ("pending", "merge", "keep_apart", "all"):
        raise KehuInputError(_("The 'status' parameter must be one of pending, merge, "
                               "keep_apart, all. Got {v!r} instead.").format(v=status))
    q = select(IdentityPair)
    if status != "all":
        q = q.where(IdentityPair.status == status)
    q = q.order_by(IdentityPair.match_probability.desc(), IdentityPair.id).limit(limit) \
        .offset(offset)
    return _items(ws, q)


def decisions(ws: Workspace, limit: int = 50) -> list[ReviewItem]:
    """The decided pairs (merged or kept apart), newest decision first."""
    q = select(IdentityPair).where(IdentityPair.status != "pending").order_by(
        IdentityPair.decided_at.desc().nulls_last(), IdentityPair.id.desc()).limit(limit)
    return _items(ws, q)


def decide(ws: Workspace, pair_id: int, decision: Decision, *, actor: str,
           note: str | None = None, spec: IdentitySpec | None = None) -> DecisionResult:
    """Merge the two records' customers, or keep them apart (splitting their customer when
    they share one). Takes effect at once and on every later run."""
    if decision not in ("merge", "keep_apart"):
        raise KehuInputError(_("The decision must be 'merge' or 'keep_apart'. Got {v!r} "
                               "instead.").format(v=decision))
    with ws.store.session() as s:
        pair = s.get(IdentityPair, pair_id)
        if pair is None:
            raise NotFoundError(_("There is no review pair #{id}. See 'kehu identity review' "
                                  "for the queue.").format(id=pair_id))
        a, b = pair.record_id_l, pair.record_id_r
    spec = spec or load_spec(ws)
    m = tb.read_map(ws.engine, customer_ids=[a, b])
    keys = dict(zip(m["customer_id"].to_pylist(), m["kehu_key"].to_pylist(), strict=True))
    if a not in keys or b not in keys:
        raise NotFoundError(_("Record {id} has no kehu key yet: run 'kehu identity run' "
                              "first.").format(id=a if a not in keys else b))
    if decision == "merge":
        entry_id, changed, touched = _merge(ws, spec, pair_id, a, b, keys, actor)
    else:
        entry_id, changed, touched = _keep_apart(ws, spec, pair_id, a, b, keys, actor)
    with ws.store.session() as s:
        p = s.get_one(IdentityPair, pair_id)
        p.status = decision
        p.decided_by = actor
        p.decided_at = datetime.now(UTC)
        if note is not None:
            p.note = note
        s.add(AuditEntry(actor=actor, action=decision, object_type="identity_pair",
                         object_id=str(pair_id), details={"records": [a, b],
                                                          "journal_id": entry_id}))
    return DecisionResult(pair_id=pair_id, status=decision, journal_id=entry_id,
                          changed_records=changed, keys=touched)


def reopen(ws: Workspace, pair_id: int, *, actor: str) -> DecisionResult:
    """Put a decided pair back in the queue as pending — for a decision that changed no key
    (keeping apart two records that already had two keys, confirming a merge the model had
    made), which has no journal entry to undo. Later runs no longer hold the two records
    apart (or together); their keys stay as they are until a decision or a run changes them.
    Audited with the decision it reopened.

    Refused for a pending pair, and for a decision whose change of keys is still in effect:
    reopening it alone would leave its keys behind; undoing its journal entry gives the keys
    back and reopens the pair."""
    with ws.store.session() as s:
        pair = s.get(IdentityPair, pair_id)
        if pair is None:
            raise NotFoundError(_("There is no review pair #{id}. See 'kehu identity review' "
                                  "for the queue.").format(id=pair_id))
        if pair.status == "pending":
            raise KehuInputError(_("Pair #{id} is pending already: there is no decision to "
                                   "reopen. Decide it with 'kehu identity decide {id} "
                                   "merge|keep_apart'.").format(id=pair_id))
        entry = _live_entries(s, [pair_id]).get(pair_id)
        if entry is not None:
            if pair.status == "merge":
                text = _("Pair #{id} was merged by journal entry #{e}, and that merge is "
                         "still in effect: reopening the pair would leave its records "
                         "merged. Undo the merge through its journal entry instead (kehu "
                         "identity undo {e}): the records get their previous keys back and "
                         "the pair goes back to the queue.")
            else:
                text = _("Keeping pair #{id} apart split a customer (journal entry #{e}), "
                         "and that split is still in effect: reopening the pair would leave "
                         "its records split. Undo the split through its journal entry "
                         "instead (kehu identity undo {e}): the records get their previous "
                         "keys back and the pair goes back to the queue.")
            raise KehuInputError(text.format(id=pair_id, e=entry))
        a, b = pair.record_id_l, pair.record_id_r
        was = {"status": pair.status, "decided_by": pair.decided_by,
               "decided_at": pair.decided_at.isoformat() if pair.decided_at else None,
               "note": pair.note}
        pair.status, pair.decided_at, pair.decided_by, pair.note = "pending", None, None, None
        s.add(AuditEntry(actor=actor, action="reopen", object_type="identity_pair",
                         object_id=str(pair_id), details={"records": [a, b], "was": was}))
    m = tb.read_map(ws.engine, customer_ids=[a, b])
    return DecisionResult(pair_id=pair_id, status="pending", journal_id=None,
                          changed_records=0, keys=sorted(set(m["kehu_key"].to_pylist())))


def pair_for(ws: Workspace, a: str, b: str, *, actor: str) -> int:
    """The review pair of records ``a`` and ``b`` (created when the queue has none): to
    merge or separate any two records, not only those the model proposed."""
    if a == b:
        raise KehuInputError(_("A record cannot be paired with itself ({id}).").format(id=a))
    lo, hi = sorted((a, b))
    m = tb.read_map(ws.engine, customer_ids=[lo, hi])
    found = set(m["customer_id"].to_pylist())
    for x in (lo, hi):
        if x not in found:
            raise NotFoundError(_("Record {id} has no kehu key: is it a customer id, and "
                                  "has 'kehu identity run' run since it was imported?")
                                .format(id=x))
    with ws.store.session() as s:
        p = s.scalars(select(IdentityPair).where(IdentityPair.record_id_l == lo,
                                                 IdentityPair.record_id_r == hi)).first()
        if p is None:
            p = IdentityPair(record_id_l=lo, record_id_r=hi, status="pending",
                             origin="manual", decided_by=actor)
            s.add(p)
            s.flush()
        return int(p.id)


def _apart_pairs(ws: Workspace) -> list[tuple[str, str]]:
    with ws.store.session() as s:
        return [(p.record_id_l, p.record_id_r) for p in s.scalars(
            select(IdentityPair).where(IdentityPair.status == "keep_apart"))]


def _merge_pairs(ws: Workspace, exclude: int | None = None) -> list[tuple[str, str]]:
    with ws.store.session() as s:
        q = select(IdentityPair).where(IdentityPair.status == "merge")
        if exclude is not None:
            q = q.where(IdentityPair.id != exclude)
        return [(p.record_id_l, p.record_id_r) for p in s.scalars(q)]


def _merge(ws: Workspace, spec: IdentitySpec, pair_id: int, a: str, b: str,
           keys: dict[str, str], actor: str) -> tuple[int | None, int, list[str]]:
    ka, kb = keys[a], keys[b]
    if ka == kb:
        return None, 0, [ka]
    m = tb.members(tb.read_map(ws.engine, keys=[ka, kb]), [ka, kb])
    cur = dict(zip(m["customer_id"].to_pylist(), m["kehu_key"].to_pylist(), strict=True))
    for x, y in _apart_pairs(ws):
        if x in cur and y in cur and cur[x] != cur[y]:
            raise KehuInputError(_(
                "Records {x} and {y} were decided to be kept apart; merging {a} and {b} "
                "would join them. Change that decision first (kehu identity review "
                "--status keep_apart).").format(x=x, y=y, a=a, b=b))
    if spec.deduplicated_sources:
        srcs = [s for s in m["source_system"].to_pylist() if s in spec.deduplicated_sources]
        dup = {s for s in srcs if srcs.count(s) > 1}
        if dup:
            raise KehuInputError(_(
                "Merging {a} and {b} would give one customer two records of {src}, which the "
                "identity spec lists as free of duplicates (deduplicated_sources).").format(
                    a=a, b=b, src=", ".join(sorted(dup))))
    kept, gone = sorted((ka, kb), key=lambda k: (key_number(k, spec.key_prefix), k))
    before = cur
    after = {r: kept for r in before}
    entry = _journal(ws, actor, "merge", kept, [gone], before, after, pair_id=pair_id)
    _apply(ws, spec, before, after, entry)
    return entry, sum(1 for r in before if before[r] != after[r]), [kept, gone]


def _keep_apart(ws: Workspace, spec: IdentitySpec, pair_id: int, a: str, b: str,
                keys: dict[str, str], actor: str) -> tuple[int | None, int, list[str]]:
    key = keys[a]
    if key != keys[b]:
        return None, 0, sorted({keys[a], keys[b]})
    m = tb.members(tb.read_map(ws.engine, keys=[key]), [key])
    ids = m["customer_id"].to_pylist()
    base = pa.table({"record_id": pa.array(ids, pa.string()),
                     "cluster_id": pa.array([key] * len(ids), pa.string())})
    links = tb.read_table(ws.engine, tb.LINKS_TABLE) if ws.warehouse.exists(tb.LINKS_TABLE) \
        else \
        pa.table({"record_id_l": pa.array([], pa.string()),
                  "record_id_r": pa.array([], pa.string()),
                  "match_probability": pa.array([], pa.float64())})
    idset = pa.array(ids, pa.string())
    links = links.filter(pc.and_(pc.is_in(links["record_id_l"], idset),
                                 pc.is_in(links["record_id_r"], idset)))
    links = links.filter(pc.greater_equal(links["match_probability"], spec.match_threshold))
    src = dict(zip(ids, m["source_system"].to_pylist(), strict=True))
    clusters, conflicts = constrained_clusters(
        base, links, must_link=_merge_pairs(ws, exclude=pair_id),
        cannot_link=[*_apart_pairs(ws), (a, b)], sources=src,
        deduplicated_sources=spec.deduplicated_sources)
    if conflicts:
        c = conflicts[0]
        raise KehuInputError(_(
            "Records {a} and {b} are held together by the decision to merge {x} and {y}. "
            "Change that decision first (kehu identity review --status merge).").format(
                a=a, b=b, x=c.record_id_l, y=c.record_id_r))
    if clusters["cluster_id"][ids.index(a)] == clusters["cluster_id"][ids.index(b)]:
        # nothing links them but a chain that also runs through merge decisions
        raise KehuInputError(_("Records {a} and {b} cannot be separated: decisions to merge "
                               "hold them together.").format(a=a, b=b))
    hw = _high_water(ws)
    assigned = assign_keys(clusters, m.select(["customer_id", "kehu_key"]).rename_columns(
        ["record_id", "kehu_key"]), high_water=hw, prefix=spec.key_prefix,
        digits=spec.key_digits)
    new = dict(zip(assigned.keys["record_id"].to_pylist(),
                   assigned.keys["kehu_key"].to_pylist(), strict=True))
    before = {r: key for r in ids if new[r] != key}
    after = {r: new[r] for r in before}
    entry = _journal(ws, actor, "split", key, [], before, after, pair_id=pair_id,
                     high_water=assigned.high_water)
    _apply(ws, spec, before, after, entry)
    return entry, len(before), sorted({key, *after.values()})


def _journal(ws: Workspace, actor: str, action: str, key: str, retired: list[str],
             before: dict[str, Any], after: dict[str, Any], *, pair_id: int | None = None,
             undo_of: int | None = None, high_water: int | None = None) -> int:
    with ws.store.session() as s:
        e = IdentityJournalEntry(actor=actor, action=action, kind="manual", kehu_key=key,
                                 retired=retired, before=before, after=after,
                                 pair_id=pair_id, undo_of=undo_of, high_water=high_water)
        s.add(e)
        s.flush()
        return int(e.id)


def _apply(ws: Workspace, spec: IdentitySpec, before: dict[str, Any],
           after: dict[str, Any], entry: int) -> None:
    """Write the changed keys and the golden records of every key concerned."""
    changed = {r: after[r] for r in after if before.get(r) != after[r]}
    if not changed:
        return
    meta = {"kehu.identity_journal": str(entry)}
    tb.update_map(ws.warehouse, changed, entry, metadata=meta)
    ws.engine.refresh()
    keys = sorted({k for k in (*before.values(), *after.values()) if k})
    _refresh_golden(ws, spec, keys, meta)


def _refresh_golden(ws: Workspace, spec: IdentitySpec, keys: list[str],
                    meta: dict[str, str]) -> None:
    import re

    wh = ws.warehouse
    rows = _golden(ws, spec, keys)
    gone = sorted(set(keys) - set(rows["kehu_key"].to_pylist()))
    if gone and wh.exists(tb.GOLDEN_TABLE):
        ok = re.compile(r"^[A-Z]{1,4}[0-9]{1,15}$")   # kehu's own keys, never user text
        wh.delta(tb.GOLDEN_TABLE).delete(
            "kehu_key IN (" + ", ".join(f"'{k}'" for k in gone if ok.match(k)) + ")")
    if rows.num_rows:
        wh.upsert(tb.GOLDEN_TABLE, rows, key=["kehu_key"], metadata=meta)
    ws.engine.refresh()


# -- the journal ----------------------------------------------------------------------------
def _journal_item(e: IdentityJournalEntry) -> JournalItem:
    return JournalItem(id=e.id, at=e.at, actor=e.actor, action=e.action, kind=e.kind,
                       kehu_key=e.kehu_key, retired=list(e.retired or []),
                       records=len(e.after or {}), before=dict(e.before or {}),
                       after=dict(e.after or {}), run_id=e.run_id, pair_id=e.pair_id,
                       undo_of=e.undo_of, undone_at=e.undone_at, undone_by=e.undone_by)


def journal(ws: Workspace, limit: int = 50, key: str | None = None) -> list[JournalItem]:
    """The latest changes of keys, newest first (of one key: entries naming it)."""
    q = select(IdentityJournalEntry).order_by(IdentityJournalEntry.id.desc())
    if key is None:
        q = q.limit(limit)
    with ws.store.session() as s:
        rows = list(s.scalars(q))
    if key is not None:
        rows = [e for e in rows if e.kehu_key == key or key in (e.retired or [])
                or key in (e.after or {}).values() or key in (e.before or {}).values()][:limit]
    return [_journal_item(e) for e in rows]


def undo(ws: Workspace, entry_id: int, *, actor: str, spec: IdentitySpec | None = None
         ) -> JournalItem:
    """Revert a journal entry: its records get their keys back. An undone merge decision
    goes back to the queue; an undone automatic merge is kept apart by later runs, an undone
    automatic split kept together."""
    spec = spec or load_spec(ws)
    with ws.store.session() as s:
        e = s.get(IdentityJournalEntry, entry_id)
        if e is None:
            raise NotFoundError(_("There is no journal entry #{id}. See 'kehu identity "
                                  "status --journal'.").format(id=entry_id))
        if e.action == "undo":
            raise KehuInputError(_("Entry #{id} is itself an undo; undo a merge or split "
                                   "instead.").format(id=entry_id))
        if e.undone_at is not None:
            raise KehuInputError(_("Entry #{id} was already undone by {who} at {at}.").format(
                id=entry_id, who=e.undone_by, at=e.undone_at))
        item = _journal_item(e)
    after = {r: k for r, k in item.after.items() if k is not None}
    cur = tb.read_map(ws.engine, customer_ids=list(after))
    now = dict(zip(cur["customer_id"].to_pylist(), cur["kehu_key"].to_pylist(), strict=True))
    moved = sorted(r for r, k in after.items() if now.get(r) != k)
    if moved:
        raise KehuInputError(_(
            "Records {ids} changed keys after entry #{id}; undo the later entries first "
            "(kehu identity status --journal).").format(ids=", ".join(moved[:5]), id=entry_id))
    restore = {r: k for r, k in item.before.items() if k is not None and r in after}
    anchors: dict[str, str] = {}
    if item.kind == "auto" and item.action == "split":
        old = tb.read_map(ws.engine, keys=sorted(set(restore.values())))
        for r, k in zip(old["customer_id"].to_pylist(), old["kehu_key"].to_pylist(),
                        strict=True):
            if r not in after:
                anchors.setdefault(k, r)
    new_entry = _journal(ws, actor, "undo", item.kehu_key, [], dict(after), restore,
                         undo_of=entry_id)
    _apply(ws, spec, after, restore, new_entry)
    with ws.store.session() as s:
        e = s.get_one(IdentityJournalEntry, entry_id)
        e.undone_at = datetime.now(UTC)
        e.undone_by = actor
        if e.pair_id is not None and e.kind == "manual":
            p = s.get(IdentityPair, e.pair_id)
            if p is not None:
                p.status, p.decided_at, p.decided_by = "pending", None, None
        elif e.kind == "auto":
            _constrain_undone(s, e.action, restore, anchors)
        s.add(AuditEntry(actor=actor, action="undo", object_type="identity_journal",
                         object_id=str(entry_id), details={"records": len(restore)}))
    with ws.store.session() as s:
        return _journal_item(s.get_one(IdentityJournalEntry, new_entry))


def _constrain_undone(s: Any, action: str, restore: dict[str, str],
                      anchors: dict[str, str]) -> None:
    """Decisions that keep an undone automatic change undone on later runs: the parts of an
    undone merge are kept apart, the parts of an undone split kept together."""
    groups: dict[str, list[str]] = {}
    for r, k in restore.items():
        groups.setdefault(k, []).append(r)
    if action == "merge":
        keys = sorted(groups)
        for i, ki in enumerate(keys):
            for kj in keys[i + 1:]:
                for x in groups[ki]:
                    for y in groups[kj]:
                        _upsert_pair(s, x, y, "keep_apart")
    elif action == "split":
        for k, rs in groups.items():
            if k in anchors:
                _upsert_pair(s, min(rs), anchors[k], "merge")


def _upsert_pair(s: Any, x: str, y: str, status: str) -> None:
    lo, hi = sorted((x, y))
    p = s.scalars(select(IdentityPair).where(IdentityPair.record_id_l == lo,
                                             IdentityPair.record_id_r == hi)).first()
    if p is None:
        s.add(IdentityPair(record_id_l=lo, record_id_r=hi, status=status, origin="undo",
                           decided_by="undo", decided_at=datetime.now(UTC)))
    else:
        p.status = status


# -- status ---------------------------------------------------------------------------------
def status(ws: Workspace) -> StatusReport:
    """The last run, records and customers now (counted when the map was written), the
    queue's counts and the journal's size."""
    with ws.store.session() as s:
        last = s.scalars(select(IdentityRun).where(IdentityRun.finished_at.is_not(None))
                         .order_by(IdentityRun.id.desc()).limit(1)).first()
        counts = {st: n for st, n in s.execute(select(IdentityPair.status, func.count())
                                                .group_by(IdentityPair.status)).all()}
        entries = int(s.scalar(select(func.count()).select_from(IdentityJournalEntry)) or 0)
    now = tb.map_counts(ws.engine)
    last_d = None
    if last is not None:
        last_d = {k: getattr(last, k) for k in (
            "id", "started_at", "finished_at", "actor", "engine", "records", "customers",
            "new_keys", "merges", "splits", "review_pairs", "conflicts", "trained")}
    return StatusReport(last_run=last_d, records=now["records"], customers=now["customers"],
                        merged_customers=now["merged_customers"],
                        pending=int(counts.get("pending", 0)),
                        merged_pairs=int(counts.get("merge", 0)),
                        kept_apart_pairs=int(counts.get("keep_apart", 0)),
                        journal_entries=entries)
