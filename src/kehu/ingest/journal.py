"""The import journal: ``_imports`` (one row per completed import) and ``_rejects`` (every
rejected row with its reason), both Delta tables in the warehouse.

Order of writes makes an import atomic without a multi-table transaction: the rejects are
appended first, then the entity table is changed in **one** Delta commit carrying
``kehu.import_id`` and the full report in its commit metadata, then the journal row is
appended. Rejects whose import never reached its entity commit are invisible (they are not in
``_imports``); a journal row lost to a crash after the entity commit is rebuilt from the commit
metadata by :func:`reconcile`.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.dataset as ds

if TYPE_CHECKING:
    from kehu.warehouse import Warehouse

IMPORTS_TABLE = "_imports"
REJECTS_TABLE = "_rejects"

IMPORTS_SCHEMA = pa.schema([
    pa.field("import_id", pa.string()),
    pa.field("entity", pa.string()),
    pa.field("files", pa.string()),          # JSON list of source files
    pa.field("started_at", pa.timestamp("us")),
    pa.field("finished_at", pa.timestamp("us")),
    pa.field("read", pa.int64()),
    pa.field("loaded", pa.int64()),
    pa.field("rejected", pa.int64()),
    pa.field("inserted", pa.int64()),
    pa.field("updated", pa.int64()),
    pa.field("unchanged", pa.int64()),
    pa.field("table_version", pa.int64()),   # Delta version of the entity table after import
    pa.field("mapping", pa.string()),        # JSON of the mapping used
])

REJECTS_SCHEMA = pa.schema([
    pa.field("import_id", pa.string()),
    pa.field("entity", pa.string()),
    pa.field("file", pa.string()),
    pa.field("row", pa.int64()),             # 1-based, the header is row 1
    pa.field("column", pa.string()),         # canonical column (or source header) at fault
    pa.field("value", pa.string()),          # the raw value as read
    pa.field("reason_code", pa.string()),    # machine-readable: missing, bad_date, negative …
    pa.field("reason", pa.string()),         # human-readable, in the import's language
    pa.field("raw", pa.string()),            # the whole source row as JSON
])


def reconcile(warehouse: Warehouse) -> list[str]:
    """Add journal rows for imports whose entity commit landed but whose journal append did
    not (a crash between the two). Returns the import ids it recovered."""
    if not warehouse.root.exists():
        return []
    known: set[str] = set()
    if warehouse.exists(IMPORTS_TABLE):
        known = set(warehouse.read(IMPORTS_TABLE, ["import_id"]).column(0).to_pylist())
    recovered = []
    rows = []
    for name in warehouse.tables():
        if name.startswith("_"):
            continue
        for commit in warehouse.history(name, limit=50):
            iid = commit.get("kehu.import_id")
            if not iid or iid in known or ":" in iid:
                continue
            rep = json.loads(commit.get("kehu.report") or "{}")
            ts = commit.get("timestamp")
            when = datetime.fromtimestamp(ts / 1000) if ts else datetime.now()
            rows.append({
                "import_id": iid, "entity": commit.get("kehu.entity", name),
                "files": json.dumps(rep.get("files", []), ensure_ascii=False),
                "started_at": when, "finished_at": when,
                "read": rep.get("read"), "loaded": rep.get("loaded"),
                "rejected": rep.get("rejected"), "inserted": rep.get("inserted"),
                "updated": rep.get("updated"), "unchanged": rep.get("unchanged"),
                "table_version": commit.get("version"), "mapping": None,
            })
            known.add(iid)
            recovered.append(iid)
    if rows:
        warehouse.append(IMPORTS_TABLE, pa.Table.from_pylist(rows, schema=IMPORTS_SCHEMA))
    return recovered


def completed_imports(warehouse: Warehouse) -> pa.Table:
    """The journal, newest first."""
    if not warehouse.exists(IMPORTS_TABLE):
        return IMPORTS_SCHEMA.empty_table()
    t = warehouse.read(IMPORTS_TABLE)
    return t.sort_by([("finished_at", "descending")])


def visible_rejects(warehouse: Warehouse, import_id: str | None = None,
                    entity: str | None = None) -> pa.Table:
    """Rejected rows of completed imports (optionally of one import or entity)."""
    if not warehouse.exists(REJECTS_TABLE):
        return REJECTS_SCHEMA.empty_table()
    done = completed_imports(warehouse).column("import_id").cast(pa.string())
    flt = ds.field("import_id").isin(done)
    if import_id:
        flt = flt & (ds.field("import_id") == import_id)
    if entity:
        flt = flt & (ds.field("entity") == entity)
    return warehouse.read(REJECTS_TABLE, filter=flt).sort_by([("file", "ascending"),
                                                               ("row", "ascending")])
