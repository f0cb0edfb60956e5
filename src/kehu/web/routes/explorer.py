"""The OLAP explorer: pick measures and dimensions, drill down and back up the hierarchies,
filter, see a pivot table beside its chart, export it — and the cube under ``/api/v1/cube``.

Every view lives in the query string (:class:`kehu.explorer.ExplorerView`), so it can be
bookmarked and shared. The numbers are :func:`kehu.analytics.cube.cube`'s (``kehu cube``);
the cube covers every customer, so account managers (who see only theirs) get 403.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import Response
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from kehu.analytics.cube import CUSTOMER_MEASURES, DIMENSIONS, TX_MEASURES, CubeQuery, Filter
from kehu.errors import KehuInputError
from kehu.explorer import (
    CubeSchema,
    ExplorerView,
    Pivot,
    answer,
    chart,
    cube_schema,
    dimension_label,
    grid,
    measure_label,
    pivot,
    to_csv,
    to_xlsx,
)
from kehu.explorer.labels import MEASURE_FORMATS, MEASURE_HELP, MEASURES, value_label
from kehu.explorer.pivot import API_MAX_ROWS, MAX_COLS, MAX_ROWS, dimension_values
from kehu.explorer.view import MAX_FILTER_VALUES, Axis, check_value
from kehu.i18n import _
from kehu.web.deps import AnalyticsReader, Audit, WorkspaceDep, apply_locale, render
from kehu.web.routes.api import PREFIX, PROBLEM
from kehu.workspace import Workspace

router = APIRouter(include_in_schema=False)
api = APIRouter(prefix=PREFIX, tags=["cube"],
                responses={401: PROBLEM, 403: PROBLEM, 422: PROBLEM})

PATH = "/explorer"
#: what an empty query string shows
DEFAULT_VIEW = ExplorerView(measures=["revenue"], rows="year")
VIEW_PARAMS = frozenset({"m", "rows", "cols", "show", "f", "fd", "fv", "from", "to"})
#: an export holds every row and column, not only the ones the page shows
EXPORT_MAX_ROWS = 20_000
EXPORT_MAX_COLS = 500
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def link(view: ExplorerView, path: str = PATH, **extra: str) -> str:
    """The URL of ``view`` (what the address bar shows and a bookmark keeps)."""
    return f"{path}?{urlencode([*view.to_params(), *extra.items()])}"


def view_of(request: Request) -> ExplorerView:
    """The request's view (the default one for a bare ``/explorer``)."""
    params = request.query_params.multi_items()
    if not any(k in VIEW_PARAMS for k, _v in params):
        return DEFAULT_VIEW
    return ExplorerView.from_params(params)


# -- the page -----------------------------------------------------------------------------------


@dataclass
class Head:
    """A row or column header: its label, the URL one level down (None at the bottom) and the
    value it stands for."""

    label: str
    href: str | None
    key: str | None = None


def _heads(view: ExplorerView, axis: Axis, keys: list[str | None], locale: str) -> list[Head]:
    dim = view.axis(axis)
    assert dim is not None
    out = []
    for k in keys:
        drilled = view.drilled(axis, k)
        out.append(Head(value_label(dim, k, locale), link(drilled) if drilled else None, k))
    return out


def _crumbs(view: ExplorerView, axis: Axis, locale: str) -> list[Head]:
    out = []
    for c in view.crumbs(axis):
        label = _("All") if c.value is None else value_label(c.dimension, c.value, locale)
        out.append(Head(_("{dimension}: {value}").format(
            dimension=dimension_label(c.dimension), value=label), link(c.view)))
    return out


def _form(params: list[tuple[str, str]], locale: str) -> dict[str, Any]:
    """The form's values from query-string pairs (a view's, or the raw request's when it is
    not a valid view, so the form shows what was asked)."""
    got: dict[str, list[str]] = {}
    for k, v in params:
        if v.strip():
            got.setdefault(k, []).append(v.strip())
    filters = []
    for f in got.get("f", []):
        dim, _sep, value = f.partition("=")
        label = dimension_label(dim) if dim in DIMENSIONS else dim
        filters.append((f, f"{label}: {value_label(dim, value, locale)}"))
    return {"m": got.get("m", []), "rows": (got.get("rows") or [""])[0],
            "cols": (got.get("cols") or [""])[0], "show": (got.get("show") or [""])[0],
            "from": (got.get("from") or [""])[0], "to": (got.get("to") or [""])[0],
            "fd": (got.get("fd") or [""])[0] if not got.get("fv") else "", "filters": filters}


def _choices(locale: str) -> dict[str, Any]:
    return {"tx_measures": [(m, measure_label(m), _(MEASURE_HELP[m])) for m in TX_MEASURES],
            "customer_measures": [(m, measure_label(m), _(MEASURE_HELP[m]))
                                  for m in CUSTOMER_MEASURES],
            "dimensions": [(d, dimension_label(d), DIMENSIONS[d].grain) for d in DIMENSIONS]}


def _result(view: ExplorerView, p: Pivot, locale: str) -> dict[str, Any]:
    measure = p.measures[0]
    return {
        "view": view, "pivot": p, "formats": MEASURE_FORMATS,
        "measure_labels": {m: measure_label(m) for m in p.measures},
        "rows_label": dimension_label(p.rows) if p.rows else None,
        "cols_label": dimension_label(p.cols) if p.cols else None,
        "row_heads": _heads(view, "rows", p.row_keys, locale) if p.rows else [],
        "col_heads": _heads(view, "cols", p.col_keys, locale) if p.cols else [],
        "crumbs": {"rows": _crumbs(view, "rows", locale), "cols": _crumbs(view, "cols", locale)},
        "chart": chart(p, locale), "cell_label": measure_label(measure),
        "csv_link": link(view, f"{PATH}/export", format="csv"),
        "xlsx_link": link(view, f"{PATH}/export", format="xlsx"),
        "max_rows": MAX_ROWS, "max_cols": MAX_COLS}


def _tier_names(ws: Workspace) -> None:
    """Name tiers as the workspace's saved tier scheme does (Settings), for this request."""
    from kehu.analytics.schemes import tier_scheme
    from kehu.explorer.labels import use_tier_scheme

    use_tier_scheme(tier_scheme(ws))


@router.get(PATH)
def explorer_page(request: Request, user: AnalyticsReader, ws: WorkspaceDep) -> Response:
    """The explorer; with ``HX-Request`` only the form and result (a partial), with the
    view's canonical URL in ``HX-Push-Url``. A bad view re-renders the form with the problem
    (422)."""
    locale = apply_locale(request)
    _tier_names(ws)
    partial = bool(request.headers.get("HX-Request")) \
        and not request.headers.get("HX-History-Restore-Request")
    template = "_explorer.html" if partial else "explorer.html"
    ctx: dict[str, Any] = {"choices": _choices(locale)}
    try:
        view = view_of(request)
        p = pivot(ws.engine, view)
    except KehuInputError as e:
        ctx.update(form=_form(request.query_params.multi_items(), locale), error=str(e),
                   fd_values=[])
        return render(request, template, ctx, status_code=422)
    form = _form(view.to_params(), locale)
    form["fd"] = request.query_params.get("fd", "") if not request.query_params.get("fv") \
        else ""
    fd_values: list[tuple[str, str]] = []
    if form["fd"] in DIMENSIONS:
        taken = set(view.where.get(form["fd"], []))
        fd_values = [(v, value_label(form["fd"], v, locale))
                     for v in dimension_values(ws.engine, form["fd"]) if v not in taken]
    ctx.update(form=form, fd_values=fd_values, **_result(view, p, locale))
    headers = {"HX-Push-Url": link(view)} if partial else None
    return render(request, template, ctx, headers=headers)


@router.get(f"{PATH}/export")
def explorer_export(request: Request, user: AnalyticsReader, ws: WorkspaceDep, audit: Audit,
                    format: Literal["csv", "xlsx"] = "csv") -> Response:
    """The view's table as CSV (UTF-8 with a byte-order mark) or Excel, headers in the
    user's language, every row and column; recorded in the audit log."""
    locale = apply_locale(request)
    _tier_names(ws)
    view = view_of(request)
    p = pivot(ws.engine, view, max_rows=EXPORT_MAX_ROWS, max_cols=EXPORT_MAX_COLS)
    rows = grid(p, locale)
    audit("export", "cube", None, {"format": format, "view": view.model_dump(mode="json"),
                                   "rows": len(rows) - 1})
    name = "-".join(["kehu-cube", *p.measures, *view.by])
    if format == "xlsx":
        body, media = to_xlsx(rows, _("Explorer")), XLSX
    else:
        body, media = to_csv(rows), "text/csv; charset=utf-8"
    return Response(body, media_type=media, headers={
        "Content-Disposition": f'attachment; filename="{name}.{format}"'})


# -- the API ------------------------------------------------------------------------------------


def _measure(name: str) -> str:
    if name not in MEASURES:
        raise ValueError(_("Unknown measure {m!r}. Pick from: {all}.").format(
            m=name, all=", ".join(MEASURES)))
    return name


def _dimension(name: str) -> str:
    if name not in DIMENSIONS:
        raise ValueError(_("Unknown dimension {d!r}. Pick from: {all}.").format(
            d=name, all=", ".join(DIMENSIONS)))
    return name


def _value(value: str) -> str:
    try:
        return check_value(value, "where.values")
    except KehuInputError as e:
        raise ValueError(str(e)) from None


MeasureName = Annotated[str, AfterValidator(_measure),
                        Field(json_schema_extra={"enum": list(MEASURES)})]
DimensionName = Annotated[str, AfterValidator(_dimension),
                          Field(json_schema_extra={"enum": list(DIMENSIONS)})]
DimensionValue = Annotated[str, AfterValidator(_value), Field(min_length=1, max_length=200)]


class FilterIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dimension: DimensionName
    values: list[DimensionValue] = Field(min_length=1, max_length=MAX_FILTER_VALUES)


class CubeRequest(BaseModel):
    """A cube query (:class:`kehu.analytics.cube.CubeQuery`): measures of one grain, cut
    ``by`` dimensions, filtered ``where`` a dimension has one of the values, transactions
    between ``start`` and ``end``."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"measures": ["revenue", "buyers"], "by": ["year", "region"],
         "where": [{"dimension": "tier", "values": ["gold", "diamond"]}]}]})

    measures: list[MeasureName] = Field(min_length=1, max_length=len(MEASURES))
    by: list[DimensionName] = Field(default_factory=list, max_length=4)
    where: list[FilterIn] = Field(default_factory=list, max_length=len(DIMENSIONS))
    start: date | None = Field(None, description="first day (transaction measures)")
    end: date | None = Field(None, description="last day (transaction measures)")

    @model_validator(mode="after")
    def _distinct(self) -> CubeRequest:
        if len(set(self.by)) != len(self.by):
            raise ValueError(_("'by' names a dimension twice; name each once."))
        return self

    def query(self) -> CubeQuery:
        return CubeQuery(measures=list(dict.fromkeys(self.measures)), by=self.by,
                         where=[Filter(dimension=f.dimension, values=f.values)
                                for f in self.where], start=self.start, end=self.end)


class CubeColumn(BaseModel):
    name: str
    label: str
    role: Literal["dimension", "measure"]


class CubeOut(BaseModel):
    columns: list[CubeColumn] = Field(description="dimensions first, then measures")
    rows: list[list[str | int | float | None]] = Field(
        description="one per combination of dimension values, in the order of 'columns'")
    limit: int
    truncated: bool = Field(description="whether there were more rows than 'limit'")


@api.post("/cube", response_model=CubeOut)
def post_cube(body: CubeRequest, request: Request, user: AnalyticsReader, ws: WorkspaceDep,
              limit: Annotated[int, Query(ge=1, le=API_MAX_ROWS,
                                          description="the most rows to return")] = 1_000
              ) -> CubeOut:
    """Any measures by any dimensions, filtered (the cube of ``kehu cube``); a 422 names a
    bad measure or dimension and the allowed ones (see ``GET /api/v1/cube/schema``)."""
    apply_locale(request)
    try:
        q = body.query()
        a = answer(ws.engine, q, limit)
    except (KehuInputError, ValueError) as e:
        raise HTTPException(422, detail=str(e)) from None
    cols = [CubeColumn(name=d, label=dimension_label(d), role="dimension") for d in a.by]
    cols += [CubeColumn(name=m, label=measure_label(m), role="measure") for m in a.measures]
    return CubeOut(columns=cols, rows=a.rows, limit=limit, truncated=a.truncated)


@api.get("/cube/schema", response_model=CubeSchema)
def get_cube_schema(request: Request, user: AnalyticsReader) -> CubeSchema:
    """The cube's measures, dimensions and hierarchies, labelled in your language."""
    apply_locale(request)
    return cube_schema()
