"""Identity resolution in the web app: the status (records, customers, merged customers,
pending reviews, last run), the review queue — each uncertain pair side by side with the
fields that agree, "Merge" / "Keep apart" buttons, the decided pairs as history with a
"Reopen" button where the decision changed no key — and the merge journal with its "Undo"
buttons; the same in the API. Admins and analysts only, like
the data pages. Thin over :mod:`kehu.identity.service`, as ``kehu identity`` is.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from kehu.errors import KehuInputError, NotFoundError
from kehu.i18n import _
from kehu.identity import service
from kehu.identity.service import DecisionResult, JournalItem, ReviewItem, StatusReport
from kehu.web import identity_view as view
from kehu.web.deps import Configurer, WorkspaceDep, apply_locale, render
from kehu.web.routes.api import DB_INT_MAX, PREFIX, PROBLEM
from kehu.web.routes.api_customers import Page, Paged, PageSize
from kehu.workspace import Workspace

router = APIRouter(include_in_schema=False)
api = APIRouter(prefix=PREFIX, tags=["identity"],
                responses={401: PROBLEM, 403: PROBLEM, 422: PROBLEM})

#: review pairs per page of the queue
PAGE_SIZE = 20
#: journal entries (and decisions) the journal page shows at first, and at most
JOURNAL_LIMIT, JOURNAL_MAX = 50, 1_000
FLASH = "identity_flash"
PairId = Annotated[int, Path(ge=1, le=DB_INT_MAX, description="review pair number")]
EntryId = Annotated[int, Path(ge=1, le=DB_INT_MAX, description="journal entry number")]
QueueStatus = Literal["pending", "merge", "keep_apart", "all"]


# -- what the pages share ----------------------------------------------------------------------


def _flash(request: Request, text: str) -> None:
    """A message for the next page this browser opens (kept in the signed session)."""
    request.session[FLASH] = text


def _take_flash(request: Request) -> str | None:
    text = request.session.pop(FLASH, None)
    return text if isinstance(text, str) else None


def _status_param(raw: str | None) -> str:
    value = (raw or "pending").strip() or "pending"
    if value not in view.STATUSES:
        raise KehuInputError(_("The 'status' parameter must be one of {opts}. Got {v!r} "
                               "instead.").format(opts=", ".join(view.STATUSES), v=value))
    return value


def _page_param(raw: str | None) -> int:
    value = (raw or "1").strip() or "1"
    if not value.isdigit() or not 1 <= int(value) <= 1_000_000:
        raise KehuInputError(_("The 'page' parameter must be a whole number from 1. Got {v!r} "
                               "instead.").format(v=value))
    return int(value)


def _total(rep: StatusReport, status: str) -> int:
    counts = {"pending": rep.pending, "merge": rep.merged_pairs,
              "keep_apart": rep.kept_apart_pairs}
    return sum(counts.values()) if status == "all" else counts[status]


def _queue_url(status: str, page: int) -> str:
    return "/identity?" + urlencode({"status": status, "page": page})


def _queue_context(ws: Workspace, status: str, page: int) -> dict[str, Any]:
    rep = service.status(ws)
    total = _total(rep, status)
    pages = max(1, math.ceil(total / PAGE_SIZE))
    page = min(page, pages)  # the last page emptied by a decision shows the one before
    items = service.queue(ws, status, PAGE_SIZE, (page - 1) * PAGE_SIZE)
    return {"rep": rep, "merged_customers": rep.merged_customers,
            "status": status, "page": page, "pages": pages, "total": total,
            "pairs": [view.pair_view(it) for it in items], "labels": view.labels(),
            "fields": view.FIELDS,
            "prev_link": _queue_url(status, page - 1) if page > 1 else None,
            "next_link": _queue_url(status, page + 1) if page < pages else None,
            "tabs": {s: _queue_url(s, 1) for s in view.STATUSES}}


def _journal_context(ws: Workspace, limit: int) -> dict[str, Any]:
    entries = service.journal(ws, limit=limit)
    decided = service.decisions(ws, limit)
    by_pair = {e.pair_id: e.id for e in reversed(entries)  # the newest entry of a pair wins
               if e.pair_id is not None and e.action != "undo"}
    return {"entries": entries, "undoable": {e.id for e in entries if view.undoable(e)},
            "decisions": decided, "entry_of_pair": by_pair, "limit": limit,
            "more_link": f"/identity/journal?limit={min(limit * 4, JOURNAL_MAX)}"
            if len(entries) == limit and limit < JOURNAL_MAX else None,
            "labels": view.labels()}


def _limit_param(raw: str | None) -> int:
    value = (raw or str(JOURNAL_LIMIT)).strip() or str(JOURNAL_LIMIT)
    if not value.isdigit() or not 1 <= int(value) <= JOURNAL_MAX:
        raise KehuInputError(_("The 'limit' parameter must be a whole number from 1 to {n}. "
                               "Got {v!r} instead.").format(n=JOURNAL_MAX, v=value))
    return int(value)


def _decided_notice(res: DecisionResult) -> str:
    if res.status == "merge":
        text = _("Pair #{id} merged: {n} records changed key ({keys}).")
    else:
        text = _("Pair #{id} kept apart: {n} records changed key ({keys}).")
    text = text.format(id=res.pair_id, n=res.changed_records, keys=", ".join(res.keys))
    if res.journal_id:
        text += " " + _("Journal entry #{j} records it; it can be undone in the journal.") \
            .format(j=res.journal_id)
    return text


# -- pages -------------------------------------------------------------------------------------


@router.get("/identity")
def identity_page(request: Request, user: Configurer, ws: WorkspaceDep) -> Response:
    """Status and the review queue (``?status=pending|merge|keep_apart|all&page=N``)."""
    apply_locale(request)
    status = _status_param(request.query_params.get("status"))
    page = _page_param(request.query_params.get("page"))
    ctx = _queue_context(ws, status, page)
    ctx["notice"] = _take_flash(request)
    return render(request, "identity.html", ctx)


@router.post("/identity/reviews/{pair_id}")
def decide_form(pair_id: PairId, request: Request, user: Configurer, ws: WorkspaceDep,
                decision: Annotated[str, Form(max_length=20)],
                note: Annotated[str, Form(max_length=2_000)] = "") -> Response:
    """Merge the pair's customers or keep them apart (CSRF-checked; audited and journalled
    by the service), then back to the queue where it was; a refused decision comes back on
    the queue with the reason (422, or 404 for a pair that is gone), nothing changed."""
    apply_locale(request)
    status = _status_param(request.query_params.get("status"))
    page = _page_param(request.query_params.get("page"))
    try:
        if decision not in view.DECISIONS:
            raise KehuInputError(_("The decision must be 'merge' or 'keep_apart'. Got {v!r} "
                                   "instead.").format(v=decision))
        res = service.decide(ws, pair_id, decision,  # type: ignore[arg-type]
                             actor=user.actor, note=note.strip() or None)
    except KehuInputError as exc:
        ctx = _queue_context(ws, status, page)
        ctx.update(error=str(exc), error_pair=pair_id)
        return render(request, "identity.html", ctx,
                      status_code=404 if isinstance(exc, NotFoundError) else 422)
    _flash(request, _decided_notice(res))
    return RedirectResponse(_queue_url(status, page), status_code=303)


@router.post("/identity/reviews/{pair_id}/reopen")
def reopen_form(pair_id: PairId, request: Request, user: Configurer,
                ws: WorkspaceDep) -> Response:
    """Put a decided pair back in the queue (CSRF-checked; audited by the service), then
    back to the queue where it was; a refused reopen (a pending pair, a decision whose change
    of keys is in effect) comes back on the queue with the reason, nothing changed."""
    apply_locale(request)
    status = _status_param(request.query_params.get("status"))
    page = _page_param(request.query_params.get("page"))
    try:
        res = service.reopen(ws, pair_id, actor=user.actor)
    except KehuInputError as exc:
        ctx = _queue_context(ws, status, page)
        ctx.update(error=str(exc), error_pair=pair_id)
        return render(request, "identity.html", ctx,
                      status_code=404 if isinstance(exc, NotFoundError) else 422)
    _flash(request, _("Pair #{id} reopened: it waits for a decision again; no key changed.")
           .format(id=res.pair_id))
    return RedirectResponse(_queue_url(status, page), status_code=303)


@router.get("/identity/journal")
def journal_page(request: Request, user: Configurer, ws: WorkspaceDep) -> Response:
    """The latest changes of keys (merges, splits, undos) and the decisions people took."""
    apply_locale(request)
    ctx = _journal_context(ws, _limit_param(request.query_params.get("limit")))
    ctx["notice"] = _take_flash(request)
    return render(request, "identity_journal.html", ctx)


@router.post("/identity/journal/{entry_id}/undo")
def undo_form(entry_id: EntryId, request: Request, user: Configurer,
              ws: WorkspaceDep) -> Response:
    """Undo a journal entry: its records get their previous keys back (an undone merge
    decision goes back to the queue). A refused undo (already undone, records moved on
    since) comes back on the journal with the reason, nothing changed."""
    apply_locale(request)
    try:
        res = service.undo(ws, entry_id, actor=user.actor)
    except KehuInputError as exc:
        ctx = _journal_context(ws, JOURNAL_LIMIT)
        ctx.update(error=str(exc), error_entry=entry_id)
        return render(request, "identity_journal.html", ctx,
                      status_code=404 if isinstance(exc, NotFoundError) else 422)
    _flash(request, _("Entry #{e} undone (entry #{n}): {r} records have their previous keys "
                      "back.").format(e=entry_id, n=res.id, r=len(res.after)))
    return RedirectResponse("/identity/journal", status_code=303)


# -- API ---------------------------------------------------------------------------------------


class ReviewOut(ReviewItem):
    agreed: list[str] = Field(description="fields on which the two records agree (the same "
                              "value, or names that read the same)")
    disagreed: list[str] = Field(description="fields both records have, with different "
                                 "values")


class ReviewPage(Paged):
    status: str
    rows: list[ReviewOut]


class DecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision: Literal["merge", "keep_apart"]
    note: str | None = Field(None, max_length=2_000, description="why (kept with the "
                             "decision)")


@api.get("/identity/status", response_model=StatusReport)
def api_status(user: Configurer, ws: WorkspaceDep) -> StatusReport:
    """The last run, records and customers now, the queue's counts and the journal's size."""
    return service.status(ws)


@api.get("/identity/reviews", response_model=ReviewPage)
def api_reviews(user: Configurer, ws: WorkspaceDep, status: QueueStatus = "pending",
                page: Page = 1, page_size: PageSize = 50) -> ReviewPage:
    """Review pairs of a status, most likely matches first, with both records' values, their
    current kehu keys and the fields that agree."""
    total = _total(service.status(ws), status)
    items = service.queue(ws, status, page_size, (page - 1) * page_size)
    rows = [ReviewOut(**it.model_dump(), agreed=view.agreed(it.left, it.right),
                      disagreed=view.disagreed(it.left, it.right)) for it in items]
    return ReviewPage(total=total, page=page, page_size=page_size,
                      pages=max(1, math.ceil(total / page_size)), status=status, rows=rows)


@api.post("/identity/reviews/{pair_id}", response_model=DecisionResult,
          responses={400: PROBLEM, 404: PROBLEM})
def api_decide(pair_id: PairId, body: DecisionIn, user: Configurer,
               ws: WorkspaceDep) -> DecisionResult:
    """Merge the pair's customers or keep them apart; takes effect at once and on every
    later run (400 when another decision forbids it, 404 for no such pair)."""
    return service.decide(ws, pair_id, body.decision, actor=user.actor, note=body.note)


@api.post("/identity/reviews/{pair_id}/reopen", response_model=DecisionResult,
          responses={400: PROBLEM, 404: PROBLEM})
def api_reopen(pair_id: PairId, user: Configurer, ws: WorkspaceDep) -> DecisionResult:
    """Put a decided pair back in the queue as pending (a decision that changed no key, such
    as keeping apart two records with two keys already); 400 when it is pending already or
    its decision changed keys (undo its journal entry instead), 404 for no such pair."""
    return service.reopen(ws, pair_id, actor=user.actor)


@api.get("/identity/journal", response_model=list[JournalItem])
def api_journal(user: Configurer, ws: WorkspaceDep,
                limit: Annotated[int, Query(ge=1, le=JOURNAL_MAX)] = JOURNAL_LIMIT,
                key: Annotated[str | None, Query(min_length=1, max_length=40,
                                                 description="only entries naming this "
                                                 "kehu key")] = None) -> list[JournalItem]:
    """The latest changes of keys, newest first."""
    return service.journal(ws, limit=limit, key=key)


@api.post("/identity/journal/{entry_id}/undo", response_model=JournalItem,
          responses={400: PROBLEM, 404: PROBLEM})
def api_undo(entry_id: EntryId, user: Configurer, ws: WorkspaceDep) -> JournalItem:
    """Undo a merge or split: its records get their previous keys back; returns the new
    ``undo`` entry (400 when already undone or its records moved on since)."""
    return service.undo(ws, entry_id, actor=user.actor)
