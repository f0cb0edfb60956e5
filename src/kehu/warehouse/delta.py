"""Delta Lake storage of the warehouse (the ``deltalake`` package, no JVM).

Every write is one Delta commit, so it is atomic: a process killed mid-write leaves only
unreferenced Parquet files, never a half-applied change. Commits carry kehu metadata
(``kehu.import_id`` …) so the table history is also the audit trail of what changed.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
from deltalake import CommitProperties, DeltaTable, WriterProperties, write_deltalake
from deltalake.exceptions import TableNotFoundError

from kehu.errors import NotFoundError
from kehu.i18n import _


@dataclass(frozen=True)
class MergeResult:
    """What an upsert did: rows inserted, updated, and matched but unchanged."""

    inserted: int
    updated: int
    unchanged: int
    version: int


def _quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


#: the last listing of each ``_delta_log`` folder: path -> (folder mtime, head version)
_HEADS: dict[str, tuple[int, int | None]] = {}
_RACY_NS = 2_000_000_000
_LOG_PATHS: dict[tuple[Path, str], str] = {}


class Warehouse:
    """A folder of Delta tables, one per entity or result.

    >>> import tempfile, pyarrow as pa
    >>> wh = Warehouse(tempfile.mkdtemp())
    >>> r = wh.upsert("t", pa.table({"k": ["a", "b"], "v": [1, 2]}), key=["k"])
    >>> (r.inserted, r.updated, r.unchanged)
    (2, 0, 0)
    >>> r = wh.upsert("t", pa.table({"k": ["a", "c"], "v": [9, 3]}), key=["k"])
    >>> (r.inserted, r.updated, r.unchanged)
    (1, 1, 0)
    >>> sorted(wh.read("t").to_pydict()["v"])
    [2, 3, 9]
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    # -- locating ---------------------------------------------------------------------------
    def path(self, name: str) -> Path:
        return self.root / name

    def exists(self, name: str) -> bool:
        return DeltaTable.is_deltatable(str(self.path(name)))

    def tables(self) -> list[str]:
        if not self.root.exists():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and self.exists(p.name))

    def delta(self, name: str, version: int | None = None) -> DeltaTable:
        try:
            return DeltaTable(str(self.path(name)), version=version)
        except TableNotFoundError as exc:
            raise NotFoundError(
                _("Warehouse table '{name}' does not exist yet in {root}. Import data first "
                  "('kehu import').").format(name=name, root=self.root)
            ) from exc

    def version(self, name: str) -> int | None:
        return self.delta(name).version() if self.exists(name) else None

    def head_version(self, name: str) -> int | None:
        """The table's current version from a listing of its ``_delta_log`` (the highest
        commit file; the latest one is never cleaned up) — far cheaper than opening the
        table, for cache keys checked on every request. None when the table does not exist.
        """
        log = _LOG_PATHS.get((self.root, name))
        if log is None:
            log = _LOG_PATHS[(self.root, name)] = str(self.path(name) / "_delta_log")
        try:
            # a commit adds a file, which changes the folder's mtime: list it only then
            stamp = os.stat(log).st_mtime_ns
        except (FileNotFoundError, NotADirectoryError):
            return None
        known = _HEADS.get(log)
        if known is not None and known[0] == stamp:
            return known[1]
        best = -1
        try:
            with os.scandir(log) as it:
                for e in it:
                    stem, _dot, ext = e.name.partition(".")
                    if ext == "json" and stem.isdigit():
                        best = max(best, int(stem))
        except (FileNotFoundError, NotADirectoryError):
            return None
        version = best if best >= 0 else None
        # file-system clocks are coarse: a folder changed within the last seconds may change
        # again with the same mtime, so only an older listing is trusted ("racy git")
        if time.time_ns() - stamp > _RACY_NS:
            _HEADS[log] = (stamp, version)
        return version

    def schema(self, name: str) -> pa.Schema:
        return pa.schema(self.delta(name).schema().to_arrow())

    # -- reading ----------------------------------------------------------------------------
    def dataset(self, name: str, version: int | None = None) -> ds.Dataset:
        return self.delta(name, version).to_pyarrow_dataset()

    def read(self, name: str, columns: Sequence[str] | None = None,
             filter: ds.Expression | None = None, version: int | None = None) -> pa.Table:
        return self.dataset(name, version).to_table(columns=list(columns) if columns else None,
                                                    filter=filter)

    def count(self, name: str) -> int:
        return self.dataset(name).count_rows() if self.exists(name) else 0

    def history(self, name: str, limit: int | None = None) -> list[dict[str, Any]]:
        return self.delta(name).history(limit) if self.exists(name) else []

    # -- writing ----------------------------------------------------------------------------
    def append(self, name: str, data: pa.Table | pa.RecordBatchReader,
               metadata: Mapping[str, Any] | None = None, merge_schema: bool = False) -> int:
        """Append rows in one commit; creates the table on first use. Returns the version."""
        self.root.mkdir(parents=True, exist_ok=True)
        write_deltalake(
            str(self.path(name)), data, mode="append",
            schema_mode="merge" if merge_schema else None,
            commit_properties=_props(metadata),
        )
        return self.delta(name).version()

    def overwrite(self, name: str, data: pa.Table | pa.RecordBatchReader,
                  metadata: Mapping[str, Any] | None = None,
                  row_group_size: int | None = None) -> int:
        """Replace the table's content (and schema) in one commit; history keeps the old one.

        ``row_group_size`` caps the rows of each Parquet row group: a table written sorted on
        a column in small groups lets a reader looking up a few values of that column skip
        every group whose min / max cannot hold them."""
        self.root.mkdir(parents=True, exist_ok=True)
        write_deltalake(str(self.path(name)), data, mode="overwrite", schema_mode="overwrite",
                        commit_properties=_props(metadata), **_writer(row_group_size))
        return self.delta(name).version()

    def rewrite(self, name: str, change: Callable[[pa.Table], pa.Table],
                metadata: Mapping[str, Any] | Callable[[pa.Table], Mapping[str, Any]]
                | None = None, row_group_size: int | None = None) -> int:
        """Replace the table's content with ``change(content)`` in one commit, checked
        against the version read: when another writer replaced or removed its rows in the
        meantime, the commit fails (``CommitFailedError``) instead of losing that change.
        ``metadata`` may be a function of the new content. Returns the new version.

        >>> import tempfile, pyarrow as pa, pyarrow.compute as pc
        >>> wh = Warehouse(tempfile.mkdtemp())
        >>> _ = wh.overwrite("t", pa.table({"k": ["a", "b"], "v": [1, 2]}))
        >>> v = wh.rewrite("t", lambda t: t.set_column(1, "v", pc.multiply(t["v"], 10)),
        ...                metadata=lambda t: {"total": pc.sum(t["v"]).as_py()})
        >>> wh.read("t").to_pydict()["v"], wh.history("t", 1)[0]["total"]
        ([10, 20], '30')
        """
        dt = self.delta(name)
        new = change(dt.to_pyarrow_dataset().to_table())
        meta = metadata(new) if callable(metadata) else metadata
        write_deltalake(dt, new, mode="overwrite", schema_mode="overwrite",
                        commit_properties=_props(meta), **_writer(row_group_size))
        return self.delta(name).version()

    def upsert(self, name: str, data: pa.Table | pa.RecordBatchReader, key: Sequence[str],
               compare: Iterable[str] | None = None,
               metadata: Mapping[str, Any] | None = None,
               precomputed: bool = False) -> MergeResult:
        """Insert new keys, update rows whose ``compare`` columns changed — one atomic commit.

        ``compare`` defaults to every column not in ``key``; rows that match on the key and
        have the same values are left alone (re-importing a file is a no-op). New columns in
        ``data`` are added to the table's schema. With ``precomputed=True`` the caller has
        already reduced ``data`` to new and changed rows, and it is streamed into the merge.
        """
        if precomputed and self.exists(name):
            return self._merge_precomputed(name, data, key, metadata)
        if not self.exists(name):
            table = data.read_all() if isinstance(data, pa.RecordBatchReader) else data
            version = self.append(name, table, metadata)
            return MergeResult(table.num_rows, 0, 0, version)
        table = data.read_all() if isinstance(data, pa.RecordBatchReader) else data
        if table.num_rows == 0:
            return MergeResult(0, 0, 0, self.delta(name).version())
        dt = self.delta(name)
        cols = list(compare) if compare is not None else [c for c in table.column_names
                                                          if c not in key]
        target_cols = set(pa.schema(dt.schema().to_arrow()).names)
        on = " AND ".join(f"t.{_quote(k)} = s.{_quote(k)}" for k in key)
        changed_parts = []
        for c in cols:
            if c in target_cols:
                # parenthesised: the SQL parser of delta-rs binds OR tighter than IS DISTINCT
                # FROM, so "a IS DISTINCT FROM b OR c …" would read as "a … (b OR c) …"
                changed_parts.append(f"(t.{_quote(c)} IS DISTINCT FROM s.{_quote(c)})")
            else:  # a new column: changed if the source has a value
                changed_parts.append(f"(s.{_quote(c)} IS NOT NULL)")
        changed = " OR ".join(changed_parts) or "FALSE"
        merger = dt.merge(table, predicate=on, source_alias="s", target_alias="t",
                          merge_schema=True, commit_properties=_props(metadata))
        metrics = (
            merger.when_matched_update_all(predicate=changed)
            .when_not_matched_insert_all()
            .execute()
        )
        inserted = int(metrics.get("num_target_rows_inserted", 0))
        updated = int(metrics.get("num_target_rows_updated", 0))
        return MergeResult(inserted, updated, table.num_rows - inserted - updated,
                           self.delta(name).version())


    def _merge_precomputed(self, name: str, data: pa.Table | pa.RecordBatchReader,
                           key: Sequence[str], metadata: Mapping[str, Any] | None
                           ) -> MergeResult:
        dt = self.delta(name)
        on = " AND ".join(f"t.{_quote(k)} = s.{_quote(k)}" for k in key)
        metrics = (
            dt.merge(data, predicate=on, source_alias="s", target_alias="t", merge_schema=True,
                     streamed_exec=True, commit_properties=_props(metadata))
            .when_matched_update_all()
            .when_not_matched_insert_all()
            .execute()
        )
        inserted = int(metrics.get("num_target_rows_inserted", 0))
        updated = int(metrics.get("num_target_rows_updated", 0))
        return MergeResult(inserted, updated, 0, self.delta(name).version())


def _writer(row_group_size: int | None) -> dict[str, Any]:
    if row_group_size is None:
        return {}
    return {"writer_properties": WriterProperties(max_row_group_size=row_group_size)}


def _props(metadata: Mapping[str, Any] | None) -> CommitProperties | None:
    if not metadata:
        return None
    return CommitProperties(custom_metadata={
        k: v if isinstance(v, str) else json.dumps(v, ensure_ascii=False, default=str)
        for k, v in metadata.items()
    })
