"""The import history as people browse it: completed imports a page at a time, one import's
rejected rows (a page, the count per reason, or all of them as CSV) — read from the import
journal (:mod:`kehu.ingest.journal`), nothing written.

>>> import_row({"files": '["/data/in/customers.csv"]', "read": 3, "loaded": 2,
...             "rejected": 1, "mapping": "[]"})["files"]
['customers.csv']
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import PurePath
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from kehu.errors import NotFoundError
from kehu.i18n import _
from kehu.ingest.journal import completed_imports, visible_rejects

if TYPE_CHECKING:
    from kehu.warehouse import Warehouse

#: columns of a rejected row shown in lists (``raw``, the whole source row, only in the CSV)
REJECT_COLUMNS = ("file", "row", "column", "value", "reason_code", "reason")


@dataclass
class Page:
    total: int
    page: int
    page_size: int
    rows: list[dict[str, Any]]

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.page_size))


def import_row(r: dict[str, Any]) -> dict[str, Any]:
    """A journal row for display: the source files by name (not their full paths), no
    mapping."""
    try:
        files = json.loads(r.get("files") or "[]")
    except ValueError:
        files = [r.get("files")]
    out = {k: v for k, v in r.items() if k != "mapping"}
    out["files"] = [PurePath(str(f)).name for f in files if f]
    return out


def imports(warehouse: Warehouse, page: int = 1, page_size: int = 50) -> Page:
    """Completed imports, newest first, one page."""
    t = completed_imports(warehouse)
    part = t.slice((page - 1) * page_size, page_size).to_pylist()
    return Page(t.num_rows, page, page_size, [import_row(r) for r in part])


def get_import(warehouse: Warehouse, import_id: str) -> dict[str, Any]:
    """One completed import, or :class:`NotFoundError`."""
    t = completed_imports(warehouse)
    rows = t.filter(pc.equal(t.column("import_id"), import_id)).to_pylist()
    if not rows:
        raise NotFoundError(_("No completed import with id '{id}'. The imports page (or "
                              "'kehu imports') lists them.").format(id=import_id))
    return import_row(rows[0])


def _rejects(warehouse: Warehouse, import_id: str) -> pa.Table:
    get_import(warehouse, import_id)
    return visible_rejects(warehouse, import_id)


def rejects(warehouse: Warehouse, import_id: str, page: int = 1, page_size: int = 50) -> Page:
    """The import's rejected rows in file and row order, one page."""
    t = _rejects(warehouse, import_id)
    part = t.select(list(REJECT_COLUMNS)).slice((page - 1) * page_size, page_size)
    return Page(t.num_rows, page, page_size, part.to_pylist())


def reject_reasons(warehouse: Warehouse, import_id: str) -> list[dict[str, Any]]:
    """``reason_code, rows`` of the import's rejects, most frequent first."""
    t = _rejects(warehouse, import_id)
    if t.num_rows == 0:
        return []
    counts = pc.value_counts(t.column("reason_code")).to_pylist()
    out = [{"reason_code": r["values"], "rows": int(r["counts"])} for r in counts]
    return sorted(out, key=lambda r: (-r["rows"], str(r["reason_code"])))


def rejects_csv(warehouse: Warehouse, import_id: str) -> tuple[bytes, int]:
    """Every rejected row of the import as CSV (UTF-8 with BOM, so Excel opens it) and how
    many rows it holds."""
    t = _rejects(warehouse, import_id)
    buf = io.BytesIO()
    buf.write(b"\xef\xbb\xbf")
    pcsv.write_csv(t, buf)
    return buf.getvalue(), t.num_rows
