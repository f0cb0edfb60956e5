"""Data: the import history (what was read, loaded and rejected), each import's rejected rows
with their reasons (paged, downloadable as CSV — an audited export) and the data-quality
report; the import history and rejects in the API too. Admins and analysts only."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from kehu.errors import KehuInputError
from kehu.i18n import _
from kehu.ingest import history
from kehu.web.deps import Audit, Configurer, WorkspaceDep, apply_locale, render
from kehu.web.routes.api import PREFIX, PROBLEM
from kehu.web.routes.api_customers import Page, Paged, PageSize

router = APIRouter(include_in_schema=False)
api = APIRouter(prefix=PREFIX, tags=["imports"],
                responses={401: PROBLEM, 403: PROBLEM, 422: PROBLEM})

PAGE_SIZE = 50
ImportId = Annotated[str, Path(min_length=1, max_length=100, description="import id")]


def _pager(base: str, page: history.Page) -> dict[str, str | None]:
    return {"prev_link": f"{base}?page={page.page - 1}" if page.page > 1 else None,
            "next_link": f"{base}?page={page.page + 1}" if page.page < page.pages else None}


def _page_number(request: Request) -> int:
    raw = request.query_params.get("page", "1").strip() or "1"
    if not raw.isdigit() or not 1 <= int(raw) <= 1_000_000:
        raise KehuInputError(_("The 'page' parameter must be a whole number from 1. Got {v!r} "
                               "instead.").format(v=raw))
    return int(raw)


@router.get("/data")
def data_page(request: Request, user: Configurer, ws: WorkspaceDep) -> Response:
    """The import history, newest first; the quality report loads into the page."""
    apply_locale(request)
    page = history.imports(ws.warehouse, _page_number(request), PAGE_SIZE)
    return render(request, "data.html", {"page": page, **_pager("/data", page)})


@router.get("/data/imports/{import_id}")
def import_page(import_id: ImportId, request: Request, user: Configurer,
                ws: WorkspaceDep) -> Response:
    """One import: its counts, the rejected rows by reason and a page of them."""
    apply_locale(request)
    imp = history.get_import(ws.warehouse, import_id)
    page = history.rejects(ws.warehouse, import_id, _page_number(request), PAGE_SIZE)
    ctx = {"imp": imp, "page": page, "reasons": history.reject_reasons(ws.warehouse, import_id),
           **_pager(f"/data/imports/{import_id}", page)}
    if request.headers.get("HX-Request") and not request.headers.get("HX-History-Restore-Request"):
        return render(request, "_data_rejects.html", ctx)
    return render(request, "data_import.html", ctx)


@router.get("/data/imports/{import_id}/rejects.csv")
def rejects_csv(import_id: ImportId, user: Configurer, ws: WorkspaceDep,
                audit: Audit) -> Response:
    """Every rejected row of the import, with the whole source row, as CSV (audited)."""
    body, rows = history.rejects_csv(ws.warehouse, import_id)
    audit("export", "rejects", import_id, {"rows": rows, "format": "csv"})
    return Response(body, media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="rejects-{import_id}.csv"'})


@router.get("/data/quality")
def quality_page(request: Request, user: Configurer, ws: WorkspaceDep) -> Response:
    """The data-quality report (a partial for HTMX, else a page of its own)."""
    from kehu.quality import build_report

    apply_locale(request)
    rep = build_report(ws)
    ctx = {"rep": rep, "chart": _quality_chart(rep)}
    if request.headers.get("HX-Request"):
        return render(request, "_data_quality.html", ctx)
    return render(request, "data_quality.html", ctx)


def _quality_chart(rep: Any) -> dict[str, Any]:
    """ECharts option: the score of each entity (labels translated here)."""
    return {"xAxis": {"type": "category", "data": [e.entity for e in rep.entities],
                      "axisLabel": {"rotate": 30}},
            "yAxis": {"type": "value", "min": 0, "max": 100, "name": _("score")},
            "series": [{"type": "bar", "name": _("Quality score"),
                        "data": [e.score for e in rep.entities]}]}


# -- API ------------------------------------------------------------------------------------


class ImportOut(BaseModel):
    import_id: str
    entity: str
    files: list[str] = Field(description="source file names")
    started_at: datetime | None
    finished_at: datetime | None
    read: int | None = Field(description="rows read; read = loaded + rejected")
    loaded: int | None
    rejected: int | None
    inserted: int | None
    updated: int | None
    unchanged: int | None
    table_version: int | None = Field(description="Delta version of the table after it")


class ImportPage(Paged):
    rows: list[ImportOut]


class RejectOut(BaseModel):
    file: str | None
    row: int | None = Field(description="1-based source row; the header is row 1")
    column: str | None
    value: str | None = Field(description="the raw value as read")
    reason_code: str | None
    reason: str | None


class RejectPage(Paged):
    import_id: str
    rows: list[RejectOut]


@api.get("/imports", response_model=ImportPage)
def api_imports(user: Configurer, ws: WorkspaceDep, page: Page = 1,
                page_size: PageSize = 50) -> ImportPage:
    """Completed imports, newest first: files, rows read / loaded / rejected, times."""
    p = history.imports(ws.warehouse, page, page_size)
    return ImportPage(total=p.total, page=p.page, page_size=p.page_size, pages=p.pages,
                      rows=[ImportOut(**r) for r in p.rows])


@api.get("/imports/{import_id}/rejects", response_model=RejectPage, responses={404: PROBLEM})
def api_rejects(import_id: ImportId, user: Configurer, ws: WorkspaceDep,
                page: Page = 1, page_size: PageSize = 50) -> RejectPage:
    """The import's rejected rows (file, row, column, value, reason), in file and row order."""
    p = history.rejects(ws.warehouse, import_id, page, page_size)
    return RejectPage(import_id=import_id, total=p.total, page=p.page, page_size=p.page_size,
                      pages=p.pages, rows=[RejectOut(**r) for r in p.rows])
