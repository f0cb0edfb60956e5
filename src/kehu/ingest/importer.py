"""The import pipeline: read → map → coerce → validate → stage → dedupe → references →
change detection → one atomic Delta commit → journal.

Every row read is loaded or rejected (``read = loaded + rejected``); rejects are kept with
file, row, column, raw value and reason; re-importing the same data changes nothing; a killed
import leaves the warehouse as it was (see :mod:`kehu.ingest.journal`).
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ibis
import pyarrow as pa
import pyarrow.parquet as pq

from kehu.errors import KehuInputError, MappingError
from kehu.i18n import _
from kehu.ingest.batch import BatchValidator, business_columns, output_schema, rejects_table
from kehu.ingest.coerce import infer_type
from kehu.ingest.journal import IMPORTS_SCHEMA, IMPORTS_TABLE, REJECTS_TABLE, reconcile
from kehu.ingest.mapping import Mapping, Proposal, propose, resolve
from kehu.ingest.readers import ReadOptions, SourceReader, open_source
from kehu.model import ENTITIES, Entity, entity
from kehu.model.types import ATTR_PREFIX, ColumnType

if TYPE_CHECKING:
    from kehu.workspace import Workspace

ProgressFn = Callable[[str, float], None]


@dataclass
class FilePlan:
    """One source file, its reader and the mapping that will be used."""

    path: Path
    reader: SourceReader
    proposal: Proposal

    @property
    def mapping(self) -> Mapping:
        return self.proposal.mapping


@dataclass
class ImportReport:
    """What an import did. ``read == loaded + rejected`` always holds."""

    import_id: str
    entity: str
    files: list[str]
    read: int = 0
    loaded: int = 0
    rejected: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    blank_lines: int = 0
    created_customers: int = 0
    table_version: int | None = None
    seconds: float = 0.0
    reasons: dict[str, int] = field(default_factory=dict)
    attributes: dict[str, str] = field(default_factory=dict)
    ignored_columns: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


def plan_import(ws: Workspace, entity_name: str, files: Sequence[str | Path], *,
                mapping_file: str | Path | None = None, read_options: ReadOptions | None = None,
                generate_key: bool = False, fmt: str | None = None) -> list[FilePlan]:
    """Open every file and propose its mapping (nothing is written)."""
    ent = entity(entity_name)
    if not files:
        raise KehuInputError(_("No files given to import."))
    base = Mapping.load(mapping_file) if mapping_file else None
    plans = []
    for f in files:
        opts = read_options or ReadOptions(batch_rows=ws.settings.ingest.batch_rows)
        if base is not None:
            s = base.source
            opts = ReadOptions(encoding=opts.encoding or s.encoding,
                               delimiter=opts.delimiter or s.delimiter,
                               header=s.header if opts.header else False,
                               column_names=s.columns or opts.column_names,
                               sheet=opts.sheet or s.sheet, batch_rows=opts.batch_rows)
        reader = open_source(f, opts, fmt=fmt or (base.source.format if base else None))
        proposal = resolve(ent.name, reader.headers, mapping_file)
        if generate_key:
            proposal.mapping.generate_key = True
            proposal = propose(ent, reader.headers, proposal.mapping)
        plans.append(FilePlan(Path(f), reader, proposal))
    return plans


def require_complete(plans: Sequence[FilePlan]) -> None:
    """Raise :class:`MappingError` listing what is unmapped or ambiguous, per file."""
    problems = []
    for p in plans:
        parts = []
        if p.proposal.unmapped_required:
            parts.append(_("required columns not found: {cols}").format(
                cols=", ".join(p.proposal.unmapped_required)))
        for k, v in p.proposal.ambiguous.items():
            parts.append(_("'{k}' could be any of {v}").format(k=k, v=", ".join(v)))
        if parts:
            problems.append(f"{p.path.name}: " + "; ".join(parts) + " " + _(
                "(headers: {headers})").format(headers=", ".join(p.reader.headers)))
    if problems:
        raise MappingError(
            _("Cannot map the file(s) onto the model without help: {problems}. Write a mapping "
              "file (start from 'kehu import ... --save-mapping map.yaml') and pass --mapping; "
              "for sources without an id column add --generate-key.").format(
                problems=" | ".join(problems)))
    for p in plans:
        p.mapping.check(entity(p.mapping.entity), p.reader.headers)


class Importer:
    """Runs planned imports into a workspace's warehouse."""

    def __init__(self, ws: Workspace, *, check_references: bool = True,
                 add_unknown_customers: bool = False, progress: ProgressFn | None = None,
                 now: datetime | None = None) -> None:
        self.ws = ws
        self.wh = ws.warehouse
        self.check_references = check_references
        self.add_unknown_customers = add_unknown_customers
        self.progress = progress or (lambda label, frac: None)
        self.now = now

    def run(self, plans: Sequence[FilePlan]) -> ImportReport:
        require_complete(plans)
        ent = entity(plans[0].mapping.entity)
        reconcile(self.wh)
        import_id = datetime.now().strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]
        t0 = time.perf_counter()
        started = datetime.now()
        report = ImportReport(import_id, ent.name, [str(p.path) for p in plans])
        self._check_reference_targets(ent)
        _remove_stale_stages(self.ws.tmp_dir)
        stage = self.ws.tmp_dir / f"import-{import_id}"
        stage.mkdir(parents=True)
        (stage / "pid").write_text(str(os.getpid()))
        try:
            attr_types = self._attribute_types(ent, plans)
            report.attributes = {ATTR_PREFIX + n: t.value for n, t in attr_types.items()}
            schema = output_schema(ent, attr_types)
            staged = stage / "rows.parquet"
            rejects_file = stage / "rejects.parquet"
            self._stage(ent, plans, attr_types, schema, staged, rejects_file, report)
            self._finish(ent, plans, schema, staged, rejects_file, report, started)
        finally:
            shutil.rmtree(stage, ignore_errors=True)
        report.seconds = round(time.perf_counter() - t0, 3)
        return report

    # -- planning helpers -------------------------------------------------------------------
    def _check_reference_targets(self, ent: Entity) -> None:
        if not self.check_references:
            return
        for ref in ent.references:
            if not ref.enforce:
                continue
            if ref.entity == "customers" and self.add_unknown_customers:
                continue
            if self.wh.count(ref.entity) == 0:
                raise KehuInputError(
                    _("{entity} refer to {ref} by {col}, but no {ref} have been imported yet. "
                      "Import {ref} first, or pass --no-check-references to load without the "
                      "check.").format(entity=ent.name, ref=ref.entity, col=ref.column))

    def _attribute_types(self, ent: Entity, plans: Sequence[FilePlan]) -> dict[str, ColumnType]:
        """Types of custom attributes: the warehouse's if it has the column, else the
        mapping's, else inferred from the first batch of the first file that has it."""
        if not ent.custom_attributes:
            return {}
        existing: dict[str, ColumnType] = {}
        if self.wh.exists(ent.name):
            for f in self.wh.schema(ent.name):
                if f.name.startswith(ATTR_PREFIX):
                    existing[f.name[len(ATTR_PREFIX):]] = _column_type(f.type)
        out: dict[str, ColumnType] = {}
        for p in plans:
            needed = {h: spec for h, spec in p.mapping.attributes.items()
                      if spec.name not in out}
            if not needed:
                continue
            sample = None
            for h, spec in needed.items():
                if spec.name in existing:
                    out[spec.name] = existing[spec.name]
                elif spec.type is not None:
                    out[spec.name] = spec.type
                else:
                    if sample is None:
                        sample = next(iter(p.reader.batches()), None)
                    arr = sample.columns[h] if sample is not None else pa.array([], pa.string())
                    out[spec.name] = infer_type(arr)
        return out

    # -- staging ----------------------------------------------------------------------------
    def _stage(self, ent: Entity, plans: Sequence[FilePlan], attr_types: dict[str, ColumnType],
               schema: pa.Schema, staged: Path, rejects_file: Path,
               report: ImportReport) -> None:
        settings = self.ws.settings.ingest
        labels = _file_labels([p.path for p in plans])
        writer = pq.ParquetWriter(staged, schema, compression="lz4")
        rej_writer: pq.ParquetWriter | None = None
        try:
            for i, p in enumerate(plans):
                types = {h: attr_types[spec.name] for h, spec in p.mapping.attributes.items()}
                v = BatchValidator(ent, p.mapping, types, import_id=report.import_id,
                                   file_label=labels[i], encoding=p.reader.encoding,
                                   day_first=settings.day_first,
                                   future_tolerance_days=settings.future_tolerance_days,
                                   now=self.now)
                report.ignored_columns.extend(f"{labels[i]}:{h}" for h in p.proposal.unused)
                for batch in p.reader.batches():
                    prep = v.prepare(batch)
                    report.read += prep.read
                    report.rejected += prep.rejected
                    report.blank_lines += prep.blank
                    for k, n in prep.reasons.items():
                        report.reasons[k] = report.reasons.get(k, 0) + n
                    if prep.good.num_rows:
                        writer.write_table(_conform(prep.good, schema))
                    if prep.rejects:
                        if rej_writer is None:
                            rej_writer = pq.ParquetWriter(rejects_file, rejects_table([]).schema)
                        rej_writer.write_table(rejects_table(prep.rejects))
                    frac = getattr(p.reader, "fraction", lambda: None)()
                    self.progress(labels[i], (i + (frac if frac is not None else 0.5))
                                  / len(plans))
        finally:
            writer.close()
            if rej_writer is not None:
                rej_writer.close()

    # -- finishing: dedupe, references, change detection, commit ---------------------------
    def _finish(self, ent: Entity, plans: Sequence[FilePlan], schema: pa.Schema, staged: Path,
                rejects_file: Path, report: ImportReport, started: datetime) -> None:
        con = self.ws.engine.con
        rows = con.read_parquet(str(staged))
        key = list(ent.key)
        extra_rejects: list[pa.Table] = []
        # 1. the same key twice in this import: the last row wins, earlier ones rejected
        counts = rows.group_by(key).aggregate(_n=rows.count())
        dup_keys = counts.filter(counts._n > 1).select(*key)
        kept = rows
        if dup_keys.count().to_pyarrow().as_py():
            labels = _file_labels([p.path for p in plans])
            cand = rows.semi_join(dup_keys, key)
            order = ibis.cases(*[(cand._source_file == lab, i) for i, lab in enumerate(labels)],
                               else_=0)
            w = ibis.window(group_by=[cand[k] for k in key],
                            order_by=[ibis.desc(order), ibis.desc(cand._source_row)])
            ranked = cand.mutate(_rank=ibis.row_number().over(w))
            dups = ranked.filter(ranked._rank > 0).drop("_rank")
            dup_arrow = dups.to_pyarrow()
            extra_rejects.append(self._dup_rejects(ent, dup_arrow, report.import_id))
            drop = con.create_table("_dups", dup_arrow.select(["_source_file", "_source_row"]),
                                    temp=True, overwrite=True)
            kept = rows.anti_join(drop, ["_source_file", "_source_row"])
        # 2. references to unknown records
        created: pa.Table | None = None
        if self.check_references:
            for ref in ent.references:
                if not ref.enforce:
                    continue
                target_key = ENTITIES[ref.entity].key[0]
                known = self.ws.engine.table(ref.entity).select(
                    _k=lambda t, c=target_key: t[c])
                col = kept[ref.column]
                unknown_expr = kept.filter(col.notnull() & ~col.isin(known._k))
                if ref.entity == "customers" and self.add_unknown_customers:
                    ids = unknown_expr.select(customer_id=unknown_expr[ref.column]).distinct()
                    created = ids.to_pyarrow()
                    continue
                unknown = unknown_expr.to_pyarrow()
                if unknown.num_rows:
                    extra_rejects.append(self._ref_rejects(ent, ref.column, ref.entity,
                                                           unknown, report.import_id))
                    kept = kept.filter(col.isnull() | col.isin(known._k))
        for t in extra_rejects:
            report.rejected += t.num_rows
            code = t.column("reason_code")[0].as_py()
            report.reasons[code] = report.reasons.get(code, 0) + t.num_rows
        report.loaded = report.read - report.rejected
        # 3. what is new or changed against the warehouse
        compare = business_columns(schema, ent.key)
        if self.wh.exists(ent.name):
            target = self.ws.engine.table(ent.name)
            tcols = set(target.columns)
            tsel = target.select(*key, *[c for c in compare if c in tcols])
            tsel = tsel.rename({f"_t_{c}": c for c in tsel.columns})
            j = kept.left_join(tsel, [kept[k] == tsel[f"_t_{k}"] for k in key])
            is_new = j[f"_t_{key[0]}"].isnull()
            changed: Any = ibis.literal(False)
            for c in compare:
                if c in tcols:
                    changed = changed | ~j[c].identical_to(j[f"_t_{c}"])
                else:
                    changed = changed | j[c].notnull()
            flagged = j.mutate(_new=is_new, _changed=~is_new & changed)
            counts = flagged.aggregate(
                n=flagged.count(), new=flagged._new.sum(), chg=flagged._changed.sum()
            ).to_pyarrow().to_pylist()[0]
            report.inserted = int(counts["new"] or 0)
            report.updated = int(counts["chg"] or 0)
            report.unchanged = int(counts["n"] or 0) - report.inserted - report.updated
            source = flagged.filter(flagged._new | flagged._changed).select(*schema.names)
        else:
            report.inserted = report.loaded
            source = kept.select(*schema.names)
        # 4. write: rejects first (invisible until the journal row exists), then the entity
        reject_parts = []
        if rejects_file.exists():
            reject_parts.append(pq.read_table(rejects_file))
        reject_parts.extend(extra_rejects)
        if reject_parts:
            self.wh.append(REJECTS_TABLE, pa.concat_tables(
                [t.cast(reject_parts[0].schema) for t in reject_parts]))
        if created is not None and created.num_rows:
            report.created_customers = self._create_customers(created, report.import_id)
        meta = {"kehu.import_id": report.import_id, "kehu.entity": ent.name,
                "kehu.report": {k: v for k, v in report.to_dict().items()
                                if k in ("read", "loaded", "rejected", "inserted", "updated",
                                         "unchanged", "files")}}
        if report.inserted or report.updated:
            reader = source.to_pyarrow_batches(chunk_size=500_000)
            reader = _cast_reader(reader, schema)
            if self.wh.exists(ent.name):
                res = self.wh.upsert(ent.name, reader, key=key, compare=compare,
                                     metadata=meta, precomputed=True)
                report.table_version = res.version
            else:
                report.table_version = self.wh.append(ent.name, reader, meta)
        else:
            report.table_version = self.wh.version(ent.name)
        self.ws.engine.refresh()
        self._journal(report, plans, started)

    def _journal(self, report: ImportReport, plans: Sequence[FilePlan],
                 started: datetime) -> None:
        row = {
            "import_id": report.import_id, "entity": report.entity,
            "files": json.dumps(report.files, ensure_ascii=False), "started_at": started,
            "finished_at": datetime.now(), "read": report.read, "loaded": report.loaded,
            "rejected": report.rejected, "inserted": report.inserted,
            "updated": report.updated, "unchanged": report.unchanged,
            "table_version": report.table_version,
            "mapping": json.dumps([p.mapping.model_dump(mode="json") for p in plans],
                                  ensure_ascii=False),
        }
        self.wh.append(IMPORTS_TABLE, pa.Table.from_pylist([row], schema=IMPORTS_SCHEMA))

    def _dup_rejects(self, ent: Entity, dups: pa.Table, import_id: str) -> pa.Table:
        key = ent.key[0]
        return _set_rejects(ent, dups, import_id, key, "duplicate_key", lambda v: _(
            "{col} '{value}' appears again later in this import; the later row was kept"
        ).format(col=key, value=v))

    def _ref_rejects(self, ent: Entity, column: str, ref: str, rows: pa.Table,
                     import_id: str) -> pa.Table:
        return _set_rejects(ent, rows, import_id, column, "unknown_reference", lambda v: _(
            "{col} '{value}' is not in {ref}: import it there first, or check the id"
        ).format(ref=ref, value=v, col=column))

    def _create_customers(self, ids: pa.Table, import_id: str) -> int:
        ent = ENTITIES["customers"]
        schema = self.wh.schema("customers") if self.wh.exists("customers") else \
            ent.arrow_schema()
        n = ids.num_rows
        cols = {}
        for f in schema:
            if f.name == "customer_id":
                cols[f.name] = ids.column("customer_id").cast(pa.string())
            elif f.name == "source_system":
                cols[f.name] = pa.repeat(pa.scalar("kehu:auto"), n).cast(pa.string())
            elif f.name == "_import_id":
                cols[f.name] = pa.repeat(pa.scalar(import_id), n).cast(pa.string())
            else:
                cols[f.name] = pa.nulls(n, f.type)
        table = pa.Table.from_pydict(cols, schema=schema)
        self.wh.upsert("customers", table, key=["customer_id"],
                       metadata={"kehu.import_id": import_id + ":customers"})
        self.ws.engine.refresh()
        return n


def _set_rejects(ent: Entity, rows: pa.Table, import_id: str, column: str, code: str,
                 reason: Callable[[Any], str]) -> pa.Table:
    """Reject records for staged rows found by a set-wise check (duplicates, references)."""
    return rejects_table([{
        "import_id": import_id, "entity": ent.name, "file": r["_source_file"],
        "row": r["_source_row"], "column": column, "value": str(r[column]),
        "reason_code": code, "reason": reason(r[column]),
        "raw": json.dumps(_row_json(r), ensure_ascii=False),
    } for r in rows.to_pylist()])


def _remove_stale_stages(tmp: Path) -> None:
    """Delete staging folders left by killed imports (their process no longer exists)."""
    for d in tmp.glob("import-*"):
        try:
            pid = int((d / "pid").read_text())
            os.kill(pid, 0)
        except (OSError, ValueError):
            shutil.rmtree(d, ignore_errors=True)


def _row_json(r: dict[str, Any]) -> dict[str, Any]:
    return {k: (v if v is None or isinstance(v, str | int | float | bool) else str(v))
            for k, v in r.items() if not k.startswith("_")}


def _file_labels(paths: Sequence[Path]) -> list[str]:
    names = [p.name for p in paths]
    if len(set(names)) == len(names):
        return names
    return [str(p) for p in paths]


def _column_type(t: pa.DataType) -> ColumnType:
    for ct in ColumnType:
        if ct.arrow == t:
            return ct
    if pa.types.is_timestamp(t):
        return ColumnType.TIMESTAMP
    if pa.types.is_integer(t):
        return ColumnType.INT
    if pa.types.is_floating(t):
        return ColumnType.FLOAT
    return ColumnType.STRING


def _conform(t: pa.Table, schema: pa.Schema) -> pa.Table:
    """``t`` in ``schema``'s column order; columns it lacks (an attribute another file of the
    same import has) are null."""
    if t.schema == schema:
        return t
    cols = [t.column(f.name).cast(f.type) if f.name in t.column_names
            else pa.nulls(t.num_rows, f.type) for f in schema]
    return pa.Table.from_arrays(cols, schema=schema)


def _cast_reader(reader: pa.RecordBatchReader, schema: pa.Schema) -> pa.RecordBatchReader:
    def gen() -> Any:
        for b in reader:
            yield pa.RecordBatch.from_arrays(
                [b.column(i).cast(schema.field(i).type) for i in range(len(schema))],
                schema=schema)
    return pa.RecordBatchReader.from_batches(schema, gen())
