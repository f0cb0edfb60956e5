"""Segments: rule builder with live count and value preview, save, compare, export.

Pages (``router``): the saved segments with their size and value, the builder (rows of
field/operator/value plus "bought …" and "not contacted …" rules, or the raw YAML spec; every
change posts to ``/segments/preview``), the overlap of several segments, and exports. The JSON
API (``api``, ``/api/v1/segments``) serves the same services: the saved segments live in the
app store (:mod:`kehu.segments.saved`, as ``kehu segment save`` keeps them) and are evaluated
by :mod:`kehu.segments`.

Planners (admin, analyst, manager) see, preview, compare and export segments; analysts
(admin, analyst) save and delete them. Saves, deletes and exports are audited.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from dataclasses import field as dc_field
from datetime import date, datetime
from pathlib import Path as FilePath
from typing import Annotated, Any, Literal
from urllib.parse import quote

import yaml
from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from kehu.customers.search import MAX_PAGE
from kehu.errors import KehuInputError, NotFoundError
from kehu.i18n import N_, _
from kehu.segments import SegmentResult, SegmentSpec, evaluate, overlap
from kehu.segments import export as export_members
from kehu.segments.builder import (
    BOUGHT_TARGETS,
    COMBINES,
    OPS,
    ROW_KINDS,
    Builder,
    FieldInfo,
    Row,
    canonical,
    field_catalogue,
    from_yaml,
    to_yaml,
)
from kehu.segments.compile import Context
from kehu.segments.preview import BREAKDOWNS, Preview, check, member_ids, preview
from kehu.segments.saved import (
    SavedSegment,
    SegmentInUseError,
    check_name,
    delete,
    exists,
    get_saved,
    list_saved,
    save,
)
from kehu.segments.spec import Rule
from kehu.web.deps import (
    ANALYSTS,
    Analyst,
    Audit,
    Planner,
    Principal,
    WorkspaceDep,
    apply_locale,
    render,
)
from kehu.web.routes.api import PREFIX, PROBLEM
from kehu.web.routes.customers import choices
from kehu.workspace import Workspace

router = APIRouter(include_in_schema=False)
api = APIRouter(prefix=PREFIX, tags=["segments"],
                responses={401: PROBLEM, 403: PROBLEM, 422: PROBLEM})

NameParam = Annotated[str, Path(min_length=1, max_length=200)]
#: at most this many segments in one overlap matrix
COMPARE_MAX = 12
EXPORT_TYPES = {"csv": "text/csv; charset=utf-8",
                "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}

KIND_LABELS = {"field": N_("Field"), "bought": N_("Bought"), "not_bought": N_("Did not buy"),
               "no_contact": N_("Not contacted")}
OP_LABELS = {"=": N_("equals"), "!=": N_("does not equal"), "<": N_("less than"),
             "<=": N_("at most"), ">": N_("more than"), ">=": N_("at least"),
             "in": N_("is one of"), "not_in": N_("is none of"), "between": N_("between"),
             "is_null": N_("is empty"), "not_null": N_("is not empty"),
             "contains": N_("contains")}
COMBINE_LABELS = {"all": N_("all rules match"), "any": N_("any rule matches")}
TARGET_LABELS = {"category": N_("category"), "product": N_("product id")}
GROUP_LABELS = {"profile": N_("Customer profile"), "attribute": N_("Custom attributes"),
                "score": N_("Scores of the latest analysis run")}
BREAKDOWN_TITLES = {"tier": N_("By tier"), "rfm_class": N_("By RFM class")}
MIX_TITLES = {"tier": N_("Tier mix"), "rfm_class": N_("RFM class mix")}
#: fields whose values the builder suggests, and the customer list's choice they come from
SUGGESTED = {"tier": "tier", "rfm_class": "rfm", "lifecycle_stage": "lifecycle"}


# -- the editor form --------------------------------------------------------------------------


@dataclass
class Editor:
    """What the builder form holds and the spec it describes (None while it has errors)."""

    name: str = ""
    description: str = ""
    builder: Builder | None = dc_field(default_factory=lambda: Builder("all", [Row()]))
    yaml: str = ""
    source: str = "rules"
    editing: str = ""
    overwrite: bool = False
    spec: SegmentSpec | None = None
    error: str | None = None
    name_error: str | None = None
    #: the spec's name is a placeholder (neither the form nor the YAML named it)
    untitled: bool = False
    #: the evaluation context and fields the form was read against (reused by the preview)
    ctx: Context | None = dc_field(default=None, repr=False, compare=False)
    fields: dict[str, FieldInfo] = dc_field(default_factory=dict, repr=False, compare=False)


def _catalogue(ws: Workspace) -> tuple[Context, dict[str, FieldInfo]]:
    ctx = Context(ws.engine)
    return ctx, {f.name: f for f in field_catalogue(ctx)}


def read_editor(form: Any, ws: Workspace) -> Editor:
    """The editor of a posted builder form. ``source`` says which side the person edited
    last: the rows (``rules``) or the YAML; the other side is rebuilt from the spec."""
    def one(key: str) -> str:
        v = form.get(key)
        return v.strip() if isinstance(v, str) else ""

    ed = Editor(name=one("name"), description=one("description"), yaml=form.get("yaml") or "",
                source="yaml" if one("source") == "yaml" else "rules", editing=one("editing"),
                overwrite=one("overwrite") in ("1", "on", "true"))
    ed.yaml = ed.yaml if isinstance(ed.yaml, str) else ""
    ctx, fields = _catalogue(ws)
    ed.ctx, ed.fields = ctx, fields
    untitled = ed.name or _("Untitled segment")
    try:
        if ed.source == "yaml":
            if not ed.yaml.strip():
                raise KehuInputError(_("The YAML spec is empty. Write a segment (name, "
                                       "description, rule) or build it with the rows."))
            spec = from_yaml(ed.yaml, _("the YAML spec"), default_name=untitled)
            check(ws, spec, None if spec.as_of else ctx)
            ed.builder = Builder.from_spec(spec)
            ed.untitled = not ed.name and spec.name == untitled
            ed.name = "" if ed.untitled else spec.name
            ed.description = spec.description or ""
        elif one("complex") == "1":  # the rows cannot show the rule: it comes from the YAML
            ed.builder = None
            spec = from_yaml(ed.yaml, _("the YAML spec"), default_name=untitled)
            spec = spec.model_copy(update={"name": untitled,
                                           "description": ed.description or None})
            check(ws, spec, None if spec.as_of else ctx)
            ed.yaml = to_yaml(spec)
        else:
            ed.builder = Builder.from_form(form.getlist, one("combine"))
            rule = ed.builder.rule(fields, lambda r: _check_rule(ws, ctx, r))
            if rule is None:
                ed.error = ed.builder.error or _("Correct the rules marked below.")
                return ed
            spec = canonical(SegmentSpec.parse({"name": untitled,
                                                "description": ed.description or None,
                                                "rule": rule}, _("segment")))
            ed.yaml = to_yaml(spec)
    except KehuInputError as exc:
        ed.error = str(exc)
        return ed
    ed.spec = spec
    return ed


def _check_rule(ws: Workspace, ctx: Context, rule: dict[str, Any]) -> None:
    check(ws, SegmentSpec.model_validate({"name": "row", "rule": rule}), ctx)


def editor_of(spec: SegmentSpec, editing: str = "") -> Editor:
    """The editor showing a saved (or given) spec: rows when they can show it, else YAML."""
    builder = Builder.from_spec(spec)
    return Editor(name=spec.name, description=spec.description or "", builder=builder,
                  yaml=to_yaml(spec), source="rules" if builder else "yaml", editing=editing,
                  spec=spec)


def _labels(locale: str, ws: Workspace | None = None) -> dict[str, Any]:
    return {"kind": {k: _(KIND_LABELS[k]) for k in ROW_KINDS},
            "op": {o: _(OP_LABELS.get(o, o)) for o in OPS},
            "combine": {c: _(COMBINE_LABELS[c]) for c in COMBINES},
            "target": {t: _(TARGET_LABELS[t]) for t in BOUGHT_TARGETS},
            "group": {g: _(t) for g, t in GROUP_LABELS.items()},
            "breakdown": {b: _(BREAKDOWN_TITLES.get(b, b)) for b in BREAKDOWNS},
            "values": {k: dict(choices(locale, ws)[v]) for k, v in SUGGESTED.items()}}


def _builder_context(request: Request, ws: Workspace, user: Principal, ed: Editor,
                     pv: Preview | None = None, **extra: Any) -> dict[str, Any]:
    locale = apply_locale(request)
    fields = ed.fields or _catalogue(ws)[1]
    labels = _labels(locale, ws)
    groups: dict[str, list[FieldInfo]] = {}
    for f in fields.values():
        groups.setdefault(f.group, []).append(f)
    return {"ed": ed, "field_groups": [(labels["group"][g], fs) for g, fs in groups.items()],
            "blank_row": Row(), "ops": OPS, "kinds": ROW_KINDS,
            "combines": COMBINES, "targets": BOUGHT_TARGETS, "labels": labels,
            "pv": pv, "charts": _breakdown_charts(pv, labels) if pv else {},
            "can_save": user.user.role in ANALYSTS, **extra}


def _breakdown_charts(pv: Preview, labels: dict[str, Any]) -> dict[str, Any]:
    """ECharts options of the preview's breakdowns (labels translated here)."""
    out: dict[str, Any] = {}
    names = {"tier": labels["values"]["tier"], "rfm_class": labels["values"]["rfm_class"]}
    for col, groups in pv.breakdown.items():
        cats = [names.get(col, {}).get(g.key, g.key) if g.key else _("none") for g in groups]
        out[col] = {
            "grid": {"left": 8, "right": 24, "top": 10, "bottom": 24, "containLabel": True},
            "xAxis": {"type": "value"},
            "yAxis": {"type": "category", "data": cats[::-1]},
            "series": [{"type": "bar", "name": _("Customers"),
                        "data": [g.customers for g in groups][::-1]}]}
    return out


# -- pages -------------------------------------------------------------------------------------


@dataclass
class Listed:
    saved: SavedSegment
    result: SegmentResult | None
    error: str | None


def _evaluate_saved(ws: Workspace, s: SavedSegment) -> tuple[SegmentResult | None, str | None]:
    try:
        spec = s.parsed()
        check(ws, spec)
        return evaluate(ws, spec), None
    except KehuInputError as exc:
        return None, str(exc)


@router.get("/segments")
def segments_page(request: Request, user: Planner, ws: WorkspaceDep) -> Response:
    """The saved segments with their size, share of all customers, revenue and CLV."""
    rows = [Listed(s, *_evaluate_saved(ws, s)) for s in list_saved(ws.store)]
    return render(request, "segments.html", {
        "rows": rows, "can_save": user.user.role in ANALYSTS,
        "deleted": request.query_params.get("deleted")})


@router.get("/segments/new")
def new_segment_page(request: Request, user: Planner, ws: WorkspaceDep) -> Response:
    """An empty builder (``?from=NAME`` starts from a copy of a saved segment)."""
    base = request.query_params.get("from")
    ed = Editor()
    if base:
        spec = get_saved(ws.store, base).parsed()
        ed = editor_of(spec.model_copy(update={"name": ""}))
        ed.name = ""
    return render(request, "segment.html", _builder_context(request, ws, user, ed))


async def _form(request: Request) -> Any:
    """The posted form; None when the browser gave up on the request (HTMX replaced it)."""
    try:
        return await request.form()
    except ClientDisconnect:
        return None


@router.post("/segments/preview")
async def preview_partial(request: Request, user: Planner, ws: WorkspaceDep) -> Response:
    """The live preview of the posted builder form, with the messages beside the rows when a
    rule is wrong: 422 then, except for HTMX's own requests (the page shows the messages; a
    4xx would count as a console error while someone is still typing). Also updates the side
    not being edited: the YAML after a change to the rows, the rows after a change to the
    YAML."""
    posted = await _form(request)
    if posted is None:
        return Response(status_code=204)
    return await run_in_threadpool(_preview_response, request, user, ws, posted)


def _preview_response(request: Request, user: Principal, ws: Workspace, posted: Any
                      ) -> Response:
    ed = read_editor(posted, ws)
    pv = _try_preview(ws, ed)
    ctx = _builder_context(request, ws, user, ed, pv, oob=True)
    live = request.headers.get("HX-Request") == "true"
    return render(request, "_segment_preview.html", ctx,
                  status_code=200 if pv or live else 422,
                  headers={"X-Segment-Valid": "true" if pv else "false"})


def _try_preview(ws: Workspace, ed: Editor) -> Preview | None:
    """The preview of the editor's spec, or None (and the message on the editor)."""
    if ed.spec is None:
        return None
    try:
        return preview(ws, ed.spec, ed.ctx)
    except KehuInputError as exc:
        ed.error = str(exc)
        return None


@router.post("/segments/save")
async def save_form(request: Request, user: Analyst, ws: WorkspaceDep) -> Response:
    """Save the builder's segment (analysts). A name taken by another segment needs the
    overwrite box ticked (409 until then); wrong rules re-render the form (422)."""
    posted = await _form(request)
    if posted is None:
        return Response(status_code=204)
    return await run_in_threadpool(_save_response, request, user, ws, posted)


def _save_response(request: Request, user: Principal, ws: Workspace, posted: Any) -> Response:
    ed = read_editor(posted, ws)
    status = 422
    if ed.spec is not None:
        try:
            name = check_name("" if ed.untitled else
                              ed.spec.name if ed.source == "yaml" else ed.name)
        except KehuInputError as exc:
            ed.name_error = str(exc)
        else:
            spec = ed.spec.model_copy(update={"name": name})
            if name != ed.editing and exists(ws.store, name) and not ed.overwrite:
                ed.name_error = _("A segment named '{name}' exists. Tick 'Replace it' and "
                                  "save again to overwrite it, or choose another name.").format(
                    name=name)
                status = 409
            else:
                try:
                    saved, _created = save(ws, spec, user.actor)
                except KehuInputError as exc:
                    ed.error = str(exc)
                else:
                    return RedirectResponse(f"/segments/{quote(saved.name, safe='')}"
                                            f"?saved={saved.version}", status_code=303)
    pv = _try_preview(ws, ed)
    return render(request, "segment.html",
                  _builder_context(request, ws, user, ed, pv, conflict=status == 409),
                  status_code=status)


@router.get("/segments/compare")
def compare_page(request: Request, user: Planner, ws: WorkspaceDep,
                 names: Annotated[list[str], Query(max_length=COMPARE_MAX)] = []  # noqa: B006
                 ) -> Response:
    """How many customers each pair of saved segments shares: a matrix (table and
    heatmap), and each segment's size, value and mix of tiers and RFM classes side by side
    (tables and 100 % stacked bars). With fewer than two names, a form to pick them."""
    locale = apply_locale(request)
    picked = list(dict.fromkeys(n for n in names if n))
    saved_names = [s.name for s in list_saved(ws.store)]
    ctx: dict[str, Any] = {"picked": picked, "saved_names": saved_names}
    if len(picked) >= 2:
        specs = [get_saved(ws.store, n).parsed() for n in picked]
        previews = [preview(ws, s) for s in specs]   # each checks its spec first
        matrix = overlap_matrix(overlap(ws, specs), picked)
        labels = _labels(locale, ws)
        ctx.update(matrix=matrix, chart=_heatmap(matrix), previews=previews, labels=labels,
                   mixes=mixes(previews, labels))
    return render(request, "segment_compare.html", ctx)


def mixes(previews: list[Preview], labels: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per breakdown (tier, RFM class): the categories (in their scheme's order, named),
    each segment's customers in them, and a 100 % stacked bar chart of the shares."""
    out: dict[str, dict[str, Any]] = {}
    for col in BREAKDOWNS:
        named: dict[Any, str] = dict(labels["values"].get(col, {}))
        seen = {g.key for pv in previews for g in pv.breakdown.get(col, [])}
        if not seen:
            continue
        keys = [k for k in named if k in seen] + sorted(
            (k for k in seen if k not in named), key=lambda k: (k is None, str(k)))
        counts = [{g.key: g.customers for g in pv.breakdown.get(col, [])} for pv in previews]
        rows = [[c.get(k, 0) for k in keys] for c in counts]
        names = [pv.result.name for pv in previews]
        cats = [named.get(k, k) if k is not None else _("none") for k in keys]
        series = [{"type": "bar", "stack": "mix", "name": cat,
                   "data": [round(100 * r[i] / sum(r), 1) if sum(r) else 0 for r in rows]}
                  for i, cat in enumerate(cats)]
        out[col] = {"title": _(MIX_TITLES.get(col, col)), "categories": cats, "rows": rows,
                    "chart": {
            "tooltip": {"trigger": "axis", "axisPointer": {"type": "shadow"}},
            "legend": {"top": 0},
            "grid": {"left": 8, "right": 24, "top": 40, "bottom": 24, "containLabel": True},
            "xAxis": {"type": "value", "max": 100, "name": "%"},
            "yAxis": {"type": "category", "data": names[::-1]},
            "series": [{**s, "data": s["data"][::-1]} for s in series]}}
    return out


def overlap_matrix(pairs: list[dict[str, Any]], names: list[str]) -> dict[str, Any]:
    """The service's pairwise overlaps as a square matrix: ``cells[i][j]`` customers in
    both segment i and j (the diagonal: each segment's size)."""
    n = len(names)
    cells = [[0] * n for _ in range(n)]
    idx = {name: i for i, name in enumerate(names)}
    for p in pairs:
        i, j = idx[p["a"]], idx[p["b"]]
        cells[i][i], cells[j][j] = p["a_size"], p["b_size"]
        cells[i][j] = cells[j][i] = p["both"]
    return {"names": names, "cells": cells, "pairs": pairs}


def _heatmap(matrix: dict[str, Any]) -> dict[str, Any]:
    names, cells = matrix["names"], matrix["cells"]
    data = [[j, i, cells[i][j]] for i in range(len(names)) for j in range(len(names))]
    top = max((c for row in cells for c in row), default=0)
    return {"tooltip": {"position": "top"},
            "grid": {"left": 8, "right": 16, "top": 10, "bottom": 60, "containLabel": True},
            "xAxis": {"type": "category", "data": names, "splitArea": {"show": True}},
            "yAxis": {"type": "category", "data": names, "splitArea": {"show": True}},
            "visualMap": {"min": 0, "max": max(top, 1), "calculable": True,
                          "orient": "horizontal", "left": "center", "bottom": 0},
            "series": [{"type": "heatmap", "name": _("Customers in both"), "data": data,
                        "label": {"show": True}}]}


@router.get("/segments/{name}")
def segment_page(name: str, request: Request, user: Planner, ws: WorkspaceDep) -> Response:
    """A saved segment in the builder, with its preview."""
    saved = get_saved(ws.store, name)
    pv = None
    try:
        ed = editor_of(saved.parsed(), editing=saved.name)
        pv = preview(ws, ed.spec) if ed.spec else None
    except KehuInputError as exc:
        ed = Editor(name=saved.name, description=saved.description or "", builder=None,
                    yaml=to_yaml_data(saved.spec), source="yaml", editing=saved.name,
                    error=str(exc))
    saved_version = request.query_params.get("saved")
    return render(request, "segment.html", _builder_context(
        request, ws, user, ed, pv, saved=saved, just_saved=saved_version))


def to_yaml_data(data: dict[str, Any]) -> str:
    return str(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))


@router.get("/segments/{name}/export")
def export_file(name: str, user: Planner, ws: WorkspaceDep, audit: Audit,
                format: Literal["csv", "xlsx"] = "csv") -> Response:
    """The segment's members with their main fields (Chinese headers) as CSV or Excel;
    audited."""
    return _export(ws, audit, name, format)


def _export(ws: Workspace, audit: Any, name: str, fmt: str) -> Response:
    spec = get_saved(ws.store, name).parsed()
    check(ws, spec)
    with tempfile.TemporaryDirectory(prefix="kehu-segment-") as tmp:
        path = FilePath(tmp) / f"segment.{fmt}"
        rows = export_members(ws, spec, path)
        content = path.read_bytes()
    audit("export", "segment", name, {"format": fmt, "rows": rows})
    filename = f"{name}.{fmt}"
    ascii_name = "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "_"
                         for c in filename)
    return Response(content, media_type=EXPORT_TYPES[fmt], headers={
        "Content-Disposition": f"attachment; filename=\"{ascii_name}\"; "
                               f"filename*=UTF-8''{quote(filename, safe='')}"})


@router.post("/segments/{name}/delete")
def delete_form(name: str, user: Analyst, ws: WorkspaceDep) -> Response:
    """Delete a saved segment (analysts; audited); refused while campaigns use it."""
    try:
        delete(ws.store, name, user.actor)
    except SegmentInUseError as exc:
        raise HTTPException(409, detail=str(exc)) from exc
    return RedirectResponse(f"/segments?deleted={quote(name, safe='')}", status_code=303)


# -- JSON API ----------------------------------------------------------------------------------


class SegmentValue(BaseModel):
    as_of: date = Field(description="the data's last day (or the spec's as_of)")
    size: int = Field(description="customers in the segment")
    customers_total: int
    share: float = Field(description="size / customers_total")
    revenue: float | None = Field(description="the members' total spend (monetary_total)")
    clv: float | None = Field(description="the members' summed customer lifetime value")


class SegmentSummary(BaseModel):
    name: str
    description: str | None
    version: int
    updated_at: datetime | None
    value: SegmentValue | None = Field(description="None when the spec no longer fits "
                                                   "the data (see error)")
    error: str | None = None


class SegmentOut(SegmentSummary):
    created_at: datetime | None
    spec: dict[str, Any]


class SegmentPage(BaseModel):
    total: int
    page: int
    page_size: int
    pages: int
    rows: list[SegmentSummary]


class GroupOut(BaseModel):
    key: str | None
    customers: int
    revenue: float | None
    clv: float | None


class PreviewOut(SegmentValue):
    name: str
    breakdown: dict[str, list[GroupOut]] = Field(description="by tier and by RFM class")


class SegmentBody(BaseModel):
    """A segment spec (as in a YAML file); ``name`` may be left out (PUT takes the path's)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str | None = Field(None, min_length=1, max_length=200)
    description: str | None = Field(None, max_length=2000)
    rule: Rule
    as_of: date | None = None

    def spec(self, name: str) -> SegmentSpec:
        return canonical(SegmentSpec.model_validate(
            {**self.model_dump(by_alias=True, exclude_none=True), "name": name}))


class SavedOut(BaseModel):
    name: str
    version: int
    created: bool


class MembersPage(BaseModel):
    name: str
    total: int
    page: int
    page_size: int
    pages: int
    customer_ids: list[str]


@contextmanager
def _unprocessable() -> Iterator[None]:
    """A rule that does not fit the data is a 422 naming the field (not found stays 404)."""
    try:
        yield
    except NotFoundError:
        raise
    except SegmentInUseError as exc:
        raise HTTPException(409, detail=str(exc)) from exc
    except KehuInputError as exc:
        raise HTTPException(422, detail=str(exc)) from exc


def _value(r: SegmentResult | None) -> SegmentValue | None:
    return None if r is None else SegmentValue(
        as_of=r.as_of, size=r.size, customers_total=r.customers_total, share=r.share,
        revenue=r.revenue, clv=r.clv)


def _summary(ws: Workspace, s: SavedSegment) -> dict[str, Any]:
    result, error = _evaluate_saved(ws, s)
    return {"name": s.name, "description": s.description, "version": s.version,
            "updated_at": s.updated_at or s.created_at, "value": _value(result),
            "error": error}


def _pages(total: int, size: int) -> int:
    return max(1, -(-total // size))


Page = Annotated[int, Query(ge=1, le=MAX_PAGE, description="page number, from 1")]


@api.get("/segments", response_model=SegmentPage)
def api_list(user: Planner, ws: WorkspaceDep, page: Page = 1,
             page_size: Annotated[int, Query(ge=1, le=100)] = 20) -> SegmentPage:
    """Saved segments by name, each with its size and value now."""
    saved = list_saved(ws.store)
    rows = saved[(page - 1) * page_size:page * page_size]
    return SegmentPage(total=len(saved), page=page, page_size=page_size,
                       pages=_pages(len(saved), page_size),
                       rows=[SegmentSummary(**_summary(ws, s)) for s in rows])


@api.post("/segments/preview", response_model=PreviewOut)
def api_preview(body: SegmentBody, user: Planner, ws: WorkspaceDep) -> PreviewOut:
    """Size, share, revenue and CLV of a spec without saving it, and its split by tier and
    RFM class (422 naming the field when the rule does not fit the data)."""
    with _unprocessable():
        pv = preview(ws, body.spec(body.name or "preview"))
    r = pv.result
    return PreviewOut(name=r.name, as_of=r.as_of, size=r.size,
                      customers_total=r.customers_total, share=r.share, revenue=r.revenue,
                      clv=r.clv, breakdown={k: [GroupOut(**g.__dict__) for g in v]
                                            for k, v in pv.breakdown.items()})


@api.get("/segments/{name}", response_model=SegmentOut, responses={404: PROBLEM})
def api_get(name: NameParam, user: Planner, ws: WorkspaceDep) -> SegmentOut:
    """A saved segment: its spec, version and size and value now."""
    s = get_saved(ws.store, name)
    return SegmentOut(**_summary(ws, s), created_at=s.created_at, spec=s.spec)


@api.put("/segments/{name}", response_model=SavedOut,
         responses={201: {"model": SavedOut}, 409: PROBLEM})
def api_put(name: NameParam, body: SegmentBody, user: Analyst, ws: WorkspaceDep,
            response: Response) -> SavedOut:
    """Save a segment under ``name`` (a new version when it exists; 201 when new). The
    rule must compile against the data. Audited."""
    if body.name is not None and body.name.strip() != name.strip():
        raise HTTPException(422, detail=_("The body's name '{body}' differs from the path's "
                                          "'{path}'; leave it out or make them equal.").format(
            body=body.name, path=name))
    with _unprocessable():
        saved, created = save(ws, body.spec(check_name(name)), user.actor)
    response.status_code = 201 if created else 200
    return SavedOut(name=saved.name, version=saved.version, created=created)


@api.delete("/segments/{name}", status_code=204, responses={404: PROBLEM, 409: PROBLEM})
def api_delete(name: NameParam, user: Analyst, ws: WorkspaceDep) -> Response:
    """Delete a saved segment (audited); 409 while a campaign's audience names it."""
    with _unprocessable():
        delete(ws.store, name, user.actor)
    return Response(status_code=204)


@api.get("/segments/{name}/members", response_model=MembersPage, responses={404: PROBLEM})
def api_members(name: NameParam, user: Planner, ws: WorkspaceDep, page: Page = 1,
                page_size: Annotated[int, Query(ge=1, le=1000)] = 100) -> MembersPage:
    """The saved segment's customer ids now, by id, a page at a time."""
    spec = get_saved(ws.store, name).parsed()
    with _unprocessable():
        total, ids = member_ids(ws, spec, page, page_size)
    return MembersPage(name=name, total=total, page=page, page_size=page_size,
                       pages=_pages(total, page_size), customer_ids=ids)
