"""The customer list (issue 6): search, filter, sort and page through customers with their
latest scores, fast at a million customers, and only the customers the asker may see.

**What a query reads.** One row per customer: the warehouse ``customers`` table joined with
the per-customer results of the latest analysis run (the run with the latest ``as_of`` on
or before ``CustomerQuery.as_of``, ties broken by run id — the run the customer 360 and the
portfolios show), and the customer's account manager *today* by the precedence of
:func:`kehu.accounts.portfolio.managers_on` (the app store's assignment valid today, else
none when the store has assignments for the customer that all ended, else the warehouse's
``customers.account_manager_id``).

**The customer index.** Joining a million customers with their scores for every request
would take seconds, so the join is done once per (run id, ``customers`` table version) and
written, sorted by customer id, to ``<workspace>/.cache/customer_index/<key>.parquet``
together with the search keys (upper-case id, lower-case name, the phone's national digits),
each customer's position in every sort order (so a page is a top-k on one integer column, or
a range of it when nothing is filtered) and statistics that let a search skip a kind that
cannot match (no id starts with that character, no name has a Latin letter). A process
loads that file once into its own in-memory DuckDB database and adds the account managers of
today; the result is kept warm in a module-level cache keyed by the workspace
path and checked on every request against

- the ``customers`` and ``customer_scores`` Delta versions (a new run or an import rebuilds
  the file; a version check costs about a millisecond),
- a fingerprint of the store's assignments (count, last id, ended rows, latest dates) and
  the day: an assignment made or ended re-derives the manager column only (a join in
  memory, not a new file),
- for a ``segment`` filter, the definition's version and the versions of the tables a
  segment may read: its membership is computed with :func:`compile_segment` and kept.

Every query is compiled to Ibis over the warm table: values enter as literals, no SQL text
is built from user input.

**Scope.** :class:`Scope` says who asks. An account manager (``employee_id``) sees only the
customers assigned to them today — in :func:`search` and :func:`get_visible`, which answers
a customer outside the scope exactly as an unknown id (:class:`NotFoundError`, a 404), so
nothing about other managers' customers leaks. ``mask_phone`` (for viewers) shows phones as
``138****5678``; searching by phone still works, it only reveals which rows match.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

import ibis
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from kehu.analytics.lifecycle import STAGES
from kehu.analytics.run import SCORES_TABLE
from kehu.errors import EngineError, KehuInputError, NotFoundError
from kehu.i18n import _
from kehu.specfiles import validated
from kehu.warehouse.sql import bind_markers, marker, parametrised_sql, run_point

if TYPE_CHECKING:
    from ibis.expr.types import BooleanValue, Table

    from kehu.workspace import Workspace

#: bump when the index's columns or keys change: older files are then rebuilt
INDEX_FORMAT = 3
INDEX_DIR = Path(".cache") / "customer_index"
#: index files kept per workspace (the latest run's and a few for as-of queries)
KEEP_FILES = 3
SORTS = ("total_value", "current_value", "clv", "churn_risk", "customer_id", "name")
SCORE_COLUMNS = {"tier": "string", "rfm_class": "string", "lifecycle_stage": "string",
                 "churn_risk": "float64", "clv": "float64", "total_value": "float64",
                 "current_value": "float64"}
#: the columns of a result row, in order
ROW_COLUMNS = ("customer_id", "name", "phone", "city", "tier", "rfm_class", "lifecycle_stage",
               "churn_risk", "clv", "total_value", "current_value", "account_manager_id")
#: tables a saved segment may read besides customers and scores
SEGMENT_SOURCES = ("transactions", "products", "interactions", "campaign_contacts")
#: a query of only these characters with at least this many digits also searches phones
_PHONE_CHARS = re.compile(r"^[\d\s()+\-.]+$")
MIN_PHONE_DIGITS = 3


# -- the query and the asker ------------------------------------------------------------------


# Beyond this the row offset overflows the engines' 64-bit integers (a 500, not a 4xx).
MAX_PAGE = 1_000_000_000


class CustomerQuery(BaseModel):
    """A customer-list request. ``q`` matches a customer id prefix (any case), the phone's
    digits (``+86``, ``0086``, spaces and dashes ignored; the number's start or end) or a
    substring of the name (Chinese included; Latin letters in any case).

    >>> CustomerQuery(q=" 张 ", tiers=["gold"], sort="clv").q
    '张'
    >>> CustomerQuery.parse({"page_size": 500})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    kehu.errors.KehuInputError: customer query: invalid customer query: page_size: ...
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    q: str | None = Field(None, max_length=100, description="id prefix, phone digits or name")
    tiers: list[str] = Field(default_factory=list, max_length=20)
    segment: str | None = Field(None, min_length=1, max_length=200,
                                description="a saved segment's name")
    lifecycle_stages: list[str] = Field(default_factory=list, max_length=20)
    rfm_classes: list[str] = Field(default_factory=list, max_length=20)
    min_risk: float | None = Field(None, ge=0, le=1)
    max_risk: float | None = Field(None, ge=0, le=1)
    manager: str | None = Field(None, min_length=1, max_length=80,
                                description="account manager's employee id")
    sort: Literal["total_value", "current_value", "clv", "churn_risk", "customer_id",
                  "name"] = "total_value"
    desc: bool = True
    page: int = Field(1, ge=1, le=MAX_PAGE)
    page_size: int = Field(50, ge=1, le=200)
    as_of: date | None = None

    @field_validator("q")
    @classmethod
    def _strip(cls, v: str | None) -> str | None:
        v = (v or "").strip()
        return v or None

    @field_validator("lifecycle_stages")
    @classmethod
    def _stages(cls, v: list[str]) -> list[str]:
        bad = [s for s in v if s not in STAGES]
        if bad:
            raise ValueError(_("unknown lifecycle stage(s) {bad}; the stages are {all}").format(
                bad=", ".join(bad), all=", ".join(STAGES)))
        return v

    @model_validator(mode="after")
    def _risk_range(self) -> CustomerQuery:
        if self.min_risk is not None and self.max_risk is not None \
                and self.min_risk > self.max_risk:
            raise ValueError(_("min_risk ({lo}) must not exceed max_risk ({hi})").format(
                lo=self.min_risk, hi=self.max_risk))
        return self

    @classmethod
    def parse(cls, data: Any) -> CustomerQuery:
        """Validate request parameters; a :class:`KehuInputError` names each bad one."""
        return validated(cls, data, "customer query", _("customer query"))


@dataclass(frozen=True)
class Scope:
    """Who is asking. ``employee_id`` set: an account manager, who sees only the customers
    assigned to them today; unset: everyone (admin, analyst, manager, viewer).
    ``mask_phone``: phones shown as ``138****5678`` (viewers).

    >>> Scope.for_role("account_manager", "E0003")
    Scope(employee_id='E0003', mask_phone=False)
    >>> Scope.for_role("viewer").mask_phone
    True
    """

    employee_id: str | None = None
    mask_phone: bool = False

    @classmethod
    def for_role(cls, role: str, employee_id: str | None = None) -> Scope:
        """The scope of a store user's role (:data:`kehu.store.models.people.ROLES`)."""
        if role == "account_manager":
            if not employee_id:
                raise KehuInputError(_("An account manager needs an employee id to see "
                                       "customers. Set the user's employee id."))
            return cls(employee_id=employee_id)
        return cls(mask_phone=role == "viewer")


@dataclass
class CustomerPage:
    """One page of results; ``total`` counts every match, ``as_of``/``run_id`` name the
    analysis run the scores come from (``None`` before the first run)."""

    total: int
    page: int
    page_size: int
    rows: list[dict[str, Any]]
    as_of: date | None
    run_id: str | None

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.page_size))

    def to_dict(self) -> dict[str, Any]:
        return {"total": self.total, "page": self.page, "page_size": self.page_size,
                "pages": self.pages, "rows": self.rows, "as_of": self.as_of,
                "run_id": self.run_id}


# -- helpers ----------------------------------------------------------------------------------


def phone_digits(text: str | None) -> str:
    """The national digits of a phone number: non-digits dropped, then ``0086`` / ``86``
    (before an 11-digit mobile number) removed.

    >>> phone_digits("+86 138-0000-0000"), phone_digits("0086 13800000000"), phone_digits("5678")
    ('13800000000', '13800000000', '5678')
    >>> phone_digits("(+86) 138 00"), phone_digits("8613800000000"), phone_digits("861380")
    ('13800', '13800000000', '861380')
    """
    compact = re.sub(r"[\s\-.()]", "", text or "")
    d = re.sub(r"\D", "", compact)
    if compact.startswith(("+86", "0086")):   # explicit country code, even before a part
        return d[4:] if compact.startswith("0086") else d[2:]
    if d.startswith("86") and len(d) == 13:
        return d[2:]
    return d


def mask_phone(phone: str | None) -> str | None:
    """The phone with all but its first three and last four digits hidden.

    >>> mask_phone("13812345678"), mask_phone("+86 138-1234-5678"), mask_phone("12345")
    ('138****5678', '138****5678', '*****')
    """
    if not phone:
        return phone
    d = phone_digits(phone)
    if len(d) < 8:
        return "*" * len(d)
    return d[:3] + "*" * (len(d) - 7) + d[-4:]


# -- the index --------------------------------------------------------------------------------


@dataclass(frozen=True)
class IndexInfo:
    """The customer index for one run and ``customers`` version; ``built`` when this call
    wrote it."""

    path: Path
    run_id: str | None
    as_of: date | None
    customers_version: int | None
    rows: int
    built: bool
    seconds: float


def _version(ws: Workspace, name: str) -> int | None:
    """The table's Delta version, re-read only when its log folder changed (a commit adds a
    file there, which updates the folder's modification time): a stat instead of opening
    the table on every request."""
    log = ws.warehouse.path(name) / "_delta_log"
    try:
        mtime = log.stat().st_mtime_ns
    except FileNotFoundError:
        return None
    hit = _VERSIONS.get(str(log))
    if hit is not None and hit[0] == mtime:
        return hit[1]
    version = ws.warehouse.version(name)
    _VERSIONS[str(log)] = (mtime, version)
    return version


def _runs(ws: Workspace) -> list[tuple[date, str]]:
    """(as_of, run_id) of every run in ``customer_scores``, latest first (cached per table
    version)."""
    version = _version(ws, SCORES_TABLE)
    if version is None:
        return []
    key = (str(ws.root), version)
    with _LOCK:
        hit = _RUNS.get(key)
    if hit is not None:
        return hit
    s = ws.engine.table(SCORES_TABLE)
    rows = s.select("as_of", "run_id").distinct().to_pyarrow().to_pylist()
    runs = sorted(((r["as_of"], r["run_id"]) for r in rows), reverse=True)
    with _LOCK:
        for k in [k for k in _RUNS if k[0] == key[0]]:
            del _RUNS[k]
        _RUNS[key] = runs
    return runs


def _run_for(ws: Workspace, as_of: date | None) -> tuple[date | None, str | None]:
    for day, run_id in _runs(ws):
        if as_of is None or day <= as_of:
            return day, run_id
    return None, None


def _index_key(run_id: str | None, customers_version: int | None) -> str:
    raw = f"{INDEX_FORMAT}|{run_id}|{customers_version}"
    return hashlib.sha1(raw.encode()).hexdigest()[:16]


_INDEX_ROWS: dict[str, int] = {}


def ensure_index(ws: Workspace, as_of: date | None = None) -> IndexInfo:
    """The customer index of the latest run on or before ``as_of``: reused when its file
    exists for the current ``customers`` version, else built (the analysis run or a
    scheduler may call this after a run so the first request does not pay)."""
    day, run_id = _run_for(ws, as_of)
    cver = _version(ws, "customers")
    folder = ws.root / INDEX_DIR
    path = folder / f"{_index_key(run_id, cver)}.parquet"
    rows = _INDEX_ROWS.get(str(path))
    if rows is None and path.exists():
        rows = _INDEX_ROWS[str(path)] = pq.ParquetFile(path).metadata.num_rows
    if rows is not None:   # an index file is never rewritten: its name is its content's key
        return IndexInfo(path, run_id, day, cver, rows, False, 0.0)
    t0 = time.perf_counter()
    table = _with_ranks(_index_table(ws, run_id).to_pyarrow())
    meta = {b"kehu.run_id": (run_id or "").encode(), b"kehu.customers_version": str(cver).encode(),
            b"kehu.index_format": str(INDEX_FORMAT).encode(),
            b"kehu.stats": json.dumps(_stats(table), ensure_ascii=False).encode()}
    table = table.replace_schema_metadata(meta)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
    pq.write_table(table, tmp, row_group_size=128 * 1024)
    os.replace(tmp, path)   # atomic: readers see the whole file or none
    old = sorted((p for p in folder.glob("*.parquet") if p != path),
                 key=lambda p: p.stat().st_mtime, reverse=True)
    for p in old[KEEP_FILES - 1:]:
        p.unlink(missing_ok=True)
    return IndexInfo(path, run_id, day, cver, table.num_rows, True,
                     round(time.perf_counter() - t0, 3))


def _index_table(ws: Workspace, run_id: str | None) -> Table:
    """Customers with the run's scores and the search keys, sorted by customer id."""
    c = ws.engine.table("customers")
    base = c.select("customer_id", "name", "phone", "city", "region", "account_manager_id")
    if run_id is not None:
        s = ws.engine.table(SCORES_TABLE)
        s = s.filter(s.run_id == ibis.literal(run_id))
        cols = {k: (s[k].cast(t) if k in s.columns else ibis.null(t))
                for k, t in SCORE_COLUMNS.items()}
        scores = s.select("customer_id", **cols)
        j = base.left_join(scores, "customer_id")
        base = j.select(*(j[k] for k in ("customer_id", "name", "phone", "city", "region",
                                         "account_manager_id")),
                        *(j[k] for k in SCORE_COLUMNS))
    else:
        base = base.mutate(**{k: ibis.null(t) for k, t in SCORE_COLUMNS.items()})
    digits = base.phone.re_replace(r"\D", "")
    national = ibis.cases(
        (digits.startswith("0086"), digits.substr(4)),
        ((digits.length() == 13) & digits.startswith("86"), digits.substr(2)),
        else_=digits)
    return base.mutate(id_key=base.customer_id.upper(), name_key=base.name.lower(),
                       phone_digits=national)


def rank_column(sort: str, desc: bool) -> str:
    """The index column holding each customer's position in that order.

    >>> rank_column("clv", True)
    '_r_clv_desc'
    """
    return f"_r_{sort}_{'desc' if desc else 'asc'}"


def _with_ranks(table: pa.Table) -> pa.Table:
    """The index sorted by customer id with, per sort order, every customer's position in it
    (missing values last, ties by customer id): a page is then a top-k on one integer column,
    or a range of it without filters. Stable sorts of the id-sorted table break the ties."""
    table = table.sort_by("customer_id")
    for k, typ in SCORE_COLUMNS.items():   # NaN is "missing" here, not "above everything"
        if typ == "float64":
            col = table.column(k)
            i = table.schema.get_field_index(k)
            table = table.set_column(i, k, pc.if_else(pc.is_nan(col), None, col))
    n = table.num_rows
    for sort in SORTS:
        for desc in (False, True):
            order = pc.array_sort_indices(   # a stable sort
                table.column(sort).combine_chunks(),
                order="descending" if desc else "ascending", null_placement="at_end")
            rank = np.empty(n, dtype=np.int32)
            rank[order.to_numpy()] = np.arange(n, dtype=np.int32)
            table = table.append_column(rank_column(sort, desc), pa.array(rank))
    return table


def _stats(table: pa.Table) -> dict[str, Any]:
    """What lets a search skip conditions that cannot match: the ids' first characters,
    whether any id has a non-ASCII character and any name an ASCII one."""
    ids = table.column("id_key")
    names = table.column("name_key")
    return {
        "id_first": sorted(set(pc.utf8_slice_codeunits(ids, 0, 1).unique().to_pylist())
                           - {None}),
        "ids_non_ascii": bool(pc.any(pc.invert(pc.string_is_ascii(ids))).as_py()),
        "names_ascii": bool(pc.any(pc.match_substring_regex(names, r"[\x00-\x7f]"))
                            .as_py()),
    }


def _assignments_fingerprint(ws: Workspace) -> tuple[Any, ...]:
    """Changes whenever an assignment is added or ended (cheap: one aggregate query)."""
    from sqlalchemy import func, select

    from kehu.store.models import Assignment

    a = Assignment
    with ws.store.session() as s:
        row = s.execute(select(func.count(), func.max(a.id), func.count(a.valid_to),
                               func.max(a.valid_to), func.min(a.valid_to),
                               func.max(a.valid_from), func.max(a.created_at))).one()
    return tuple(str(x) for x in row)


@dataclass
class _Warm:
    """One workspace's index loaded into an in-process DuckDB, with today's managers."""

    index_key: str
    info: IndexInfo
    con: Any
    managers_key: tuple[Any, ...] | None = None
    live: str | None = None
    generation: int = 0
    segments: OrderedDict[tuple[Any, ...], str] = field(default_factory=OrderedDict)
    lock: threading.RLock = field(default_factory=threading.RLock)
    closed: bool = False
    stats: dict[str, Any] = field(default_factory=dict)
    #: compiled point queries, by live table and parameters
    sql: dict[tuple[Any, ...], Any] = field(default_factory=dict)
    #: result counts of list queries (SQL and values; the SQL names the live table)
    counts: OrderedDict[tuple[Any, ...], int] = field(default_factory=OrderedDict)
    #: Ibis tables by name (asking the backend for a table's schema costs ~1 ms)
    tables: dict[str, Table] = field(default_factory=dict)
    #: copies of the live table sorted in one order, by rank column (least recently used
    #: dropped beyond :data:`MAX_SORTED`)
    sorted: OrderedDict[str, str] = field(default_factory=OrderedDict)
    #: the account managers of the live table, with the employees version their labels
    #: came from: (live table, employees version, [(employee id, label)])
    managers: tuple[str, int | None, list[tuple[str, str]], dict[str, str]] | None = None

    def forget(self, name: str) -> None:
        """Drop what is kept of a dropped table (its Ibis table, queries naming it)."""
        self.tables.pop(name, None)
        for ck in [k for k in self.counts if f'"{name}"' in k[0]]:
            del self.counts[ck]
        for key in [k for k in self.sql if name in (k[0], *_flat(k[1]))]:
            del self.sql[key]

    def table(self, name: str | None) -> Table:
        if name is None:   # pragma: no cover - _warm sets the live table before any query
            raise EngineError("The customer index is not loaded.")
        t = self.tables.get(name)
        if t is None:
            t = self.tables[name] = self.con.table(name)
        return t

    def close(self) -> None:
        """Disconnect once no query runs on it; a request holding it retries."""
        with self.lock:
            self.closed = True
            self.con.disconnect()


def _flat(shape: Any) -> list[Any]:
    """The items of a query shape, nested tuples flattened."""
    out: list[Any] = []
    for item in shape if isinstance(shape, tuple) else (shape,):
        out += _flat(item) if isinstance(item, tuple) else [item]
    return out


_LOCK = threading.Lock()
_WARM: OrderedDict[tuple[str, str | None], _Warm] = OrderedDict()
_RUNS: dict[tuple[str, int], list[tuple[date, str]]] = {}
_VERSIONS: dict[str, tuple[int, int | None]] = {}
#: warm indexes kept per process (workspace x as-of run), least recently used dropped
MAX_WARM = 4
MAX_SEGMENTS = 16
MAX_COUNTS = 4096
#: sorted copies of the live table kept per warm index (each ~100 MB at 1 M customers)
MAX_SORTED = 4


def invalidate(ws: Workspace | None = None) -> None:
    """Drop the warm indexes of ``ws`` (all workspaces when ``None``); files stay."""
    with _LOCK:
        gone = [_WARM.pop(k) for k in [k for k in _WARM if ws is None or k[0] == str(ws.root)]]
        _RUNS.clear()
        _VERSIONS.clear()
    for w in gone:
        w.close()


def _warm(ws: Workspace, as_of: date | None) -> _Warm:
    """The warm index of the run for ``as_of``, (re)loading whatever changed. Returned with
    its lock held (the caller releases it): its live table stays the one checked here."""
    while True:
        w = _warm_slot(ws, as_of)
        w.lock.acquire()
        if not w.closed:
            break
        w.lock.release()   # evicted meanwhile by a newer index: take that one
    try:
        if w.live is None:
            idx = pq.read_table(w.info.path)
            w.stats = json.loads((idx.schema.metadata or {}).get(b"kehu.stats", b"{}"))
            w.con.create_table("idx", idx, overwrite=True)
        mkey = (_assignments_fingerprint(ws), date.today())
        if mkey != w.managers_key:
            _load_managers(ws, w)
            w.managers_key = mkey
    except BaseException:
        w.lock.release()
        raise
    return w


def _warm_slot(ws: Workspace, as_of: date | None) -> _Warm:
    info = ensure_index(ws, as_of)
    slot = (str(ws.root), info.run_id)
    key = info.path.name
    gone: list[_Warm] = []
    with _LOCK:
        w = _WARM.get(slot)
        if w is not None and w.index_key != key:
            gone.append(_WARM.pop(slot))
            w = None
        if w is None:
            con = ibis.duckdb.connect(autoinstall_known_extensions=False,
                                      autoload_known_extensions=False)
            w = _Warm(key, info, con)
            _WARM[slot] = w
            while len(_WARM) > MAX_WARM:
                gone.append(_WARM.popitem(last=False)[1])
        _WARM.move_to_end(slot)
    for old in gone:
        old.close()
    return w


class _IndexView:
    """The workspace as :func:`managers_on` sees it, with ``customers`` read from the warm
    index (it holds the warehouse's ``account_manager_id`` of the same table version), so
    the precedence runs in memory instead of over the warehouse files."""

    def __init__(self, ws: Workspace, con: Any) -> None:
        self.store = ws.store
        self.engine = self
        self._con = con

    def table(self, name: str) -> Table:
        if name != "customers":   # pragma: no cover - managers_on reads only customers
            raise EngineError(f"The customer index has no table '{name}'.")
        return self._con.table("idx")


def _load_managers(ws: Workspace, w: _Warm) -> None:
    """A new live table: the index with today's account manager of each customer."""
    from kehu.accounts.portfolio import managers_on

    w.generation += 1
    con = w.con
    m = managers_on(cast("Workspace", _IndexView(ws, con)), date.today())
    idx = con.table("idx")
    j = idx.left_join(m, "customer_id")
    live = j.select(*(j[c] for c in idx.columns if c != "account_manager_id"),
                    account_manager_id=j.employee_id)
    name = f"live_{w.generation}"
    # sorted by id: a customer page's scope check reads one row group (zone maps)
    con.create_table(name, live.order_by("customer_id"))
    old, w.live = w.live, name
    if old is not None:
        con.drop_table(old, force=True)
        w.forget(old)
    for copy in w.sorted.values():   # copies of the previous live table
        con.drop_table(copy, force=True)
        w.forget(copy)
    w.sorted.clear()


def _sorted_copy(w: _Warm, rank: str) -> Table:
    """The live table's rows in the order of ``rank`` (made on first use, under a second at
    1 M customers). A filtered page is then the first matching rows after the offset: DuckDB
    keeps a table's insertion order in a scan without ORDER BY and stops at the LIMIT, so
    a page costs a few ms instead of a top-k over every match (measured at 1 M: 2.2 against
    29 ms of CPU)."""
    name = w.sorted.get(rank)
    if name is None:
        live = w.table(w.live)
        name = f"{w.live}_by{rank}"
        w.con.create_table(name, live.select(*ROW_COLUMNS, live[rank]).order_by(rank),
                           overwrite=True)
        w.sorted[rank] = name
        while len(w.sorted) > MAX_SORTED:
            gone = w.sorted.popitem(last=False)[1]
            w.con.drop_table(gone, force=True)
            w.forget(gone)
    w.sorted.move_to_end(rank)
    return w.table(name)


def _segment_members(ws: Workspace, w: _Warm, name: str) -> Table:
    from kehu.segments import Context, SegmentSpec, compile_segment
    from kehu.store.services import get_definition

    try:
        d = get_definition(ws.store, "segment", name)
    except NotFoundError as exc:
        raise KehuInputError(_("The 'segment' parameter names no saved segment: '{name}'. "
                               "Check the name on the segments page.").format(name=name)
                             ) from exc
    spec_json = json.dumps(d.spec, sort_keys=True, default=str)
    key = (name, d.version, spec_json, w.index_key,
           *(_version(ws, t) for t in SEGMENT_SOURCES))
    with w.lock:
        table = w.segments.get(key)
        if table is None:
            spec = SegmentSpec.parse(d.spec, f"segment '{name}'")
            ids = compile_segment(spec, Context(ws.engine, spec.as_of)).to_pyarrow()
            table = f"seg_{len(w.segments)}_{w.generation}_{time.monotonic_ns()}"
            w.con.create_table(table, ids.select(["customer_id"]))
            w.segments[key] = table
            while len(w.segments) > MAX_SEGMENTS:
                gone = w.segments.popitem(last=False)[1]
                w.con.drop_table(gone, force=True)
                w.forget(gone)
        w.segments.move_to_end(key)
        return w.table(table)


# -- querying ---------------------------------------------------------------------------------


class _Params:
    """The values of one list query, bound as parameters: the query is compiled once per
    *shape* (which filters, how many values, which sort), not once per request."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.shape: list[Any] = []

    def _mark(self, value: Any) -> str:
        name = f"p{len(self.values)}"
        self.values[name] = value
        return marker(name)

    def text(self, value: str) -> Any:
        return ibis.literal(self._mark(value))

    def number(self, value: float | int, type_: str = "float64") -> Any:
        return ibis.literal(self._mark(value)).cast(type_)


def _search(t: Table, q: str, stats: dict[str, Any], p: _Params) -> BooleanValue:
    """Id prefix, name substring or phone digits; a kind the index's statistics rule out
    (no id starts with that character, no name has a Latin letter …) is left out."""
    ascii_q = q.isascii()
    parts: list[BooleanValue] = []
    up = q.upper()
    kinds = []
    if up[0] in stats.get("id_first", up[0]) and (ascii_q or stats.get("ids_non_ascii", 1)):
        parts.append(t.id_key.startswith(p.text(up)))
        kinds.append("id")
    if not ascii_q or stats.get("names_ascii", True):
        parts.append(t.name_key.contains(p.text(q.lower())))
        kinds.append("name")
    d = phone_digits(q)
    if _PHONE_CHARS.match(q) and len(d) >= MIN_PHONE_DIGITS:
        parts += [t.phone_digits.startswith(p.text(d)), t.phone_digits.endswith(p.text(d))]
        kinds.append("phone")
    p.shape.append(("q", *kinds))
    if not parts:
        return ibis.literal(False)
    out = parts[0]
    for part in parts[1:]:
        out = out | part
    return out.fill_null(False)


def _conditions(t: Table, query: CustomerQuery, scope: Scope,
                members: Table | None, stats: dict[str, Any],
                p: _Params) -> list[BooleanValue]:
    conds: list[BooleanValue] = []
    if scope.employee_id is not None:
        conds.append(t.account_manager_id == p.text(scope.employee_id))
        p.shape.append("scope")
    if query.q:
        conds.append(_search(t, query.q, stats, p))
    for col, values in (("tier", query.tiers), ("lifecycle_stage", query.lifecycle_stages),
                        ("rfm_class", query.rfm_classes)):
        if values:
            conds.append(t[col].isin([p.text(v) for v in values]))
            p.shape.append((col, len(values)))
    if query.min_risk is not None:
        conds.append(t.churn_risk >= p.number(query.min_risk))
        p.shape.append("min_risk")
    if query.max_risk is not None:
        conds.append(t.churn_risk <= p.number(query.max_risk))
        p.shape.append("max_risk")
    if query.manager is not None:
        conds.append(t.account_manager_id == p.text(query.manager))
        p.shape.append("manager")
    if members is not None:
        conds.append(t.customer_id.isin(members.customer_id))
        p.shape.append(("segment", members.get_name()))
    return conds


def _row(r: dict[str, Any], scope: Scope) -> dict[str, Any]:
    out = {k: r.get(k) for k in ROW_COLUMNS}
    for k in ("churn_risk", "clv", "total_value", "current_value"):
        v = out[k]
        if v is not None and v != v:   # NaN -> None (JSON has no NaN)
            out[k] = None
    if scope.mask_phone:
        out["phone"] = mask_phone(out["phone"])
    return out


def search(ws: Workspace, query: CustomerQuery, scope: Scope) -> CustomerPage:
    """One page of the customers matching ``query`` that ``scope`` may see.

    Sorted by ``query.sort`` (missing values last, then by customer id); names sort by
    code point, not pinyin. A page past the end has no rows and the real total.
    """
    w = _warm(ws, query.as_of)
    try:
        members = _segment_members(ws, w, query.segment) if query.segment else None
        t = w.table(w.live)
        p = _Params()
        conds = _conditions(t, query, scope, members, w.stats, p)
        rank = t[rank_column(query.sort, query.desc)]
        offset = (query.page - 1) * query.page_size
        # filters on the list's own columns read the copy sorted in the page's order; a text
        # search (few matches) and a segment (a join, which need not keep the order) do not
        by_copy = bool(conds) and not query.q and members is None
        copy = _sorted_copy(w, rank.get_name()) if by_copy else None
        # keyed by the table the page reads: dropping a copy forgets its queries
        key = (copy.get_name() if copy is not None else w.live, tuple(p.shape),
               rank.get_name())
        compiled = w.sql.get(key)
        if compiled is None:   # compiled once per shape: compiling costs more than running
            if conds:
                f = t.filter(*conds)
                count_sql = bind_markers(str(ibis.to_sql(f.count(), dialect="duckdb")),
                                         p.values)
                if copy is not None:
                    c = copy
                    cp = _Params()
                    page_sql = bind_markers(str(ibis.to_sql(
                        c.filter(*_conditions(c, query, scope, None, w.stats, cp))
                        .select(*ROW_COLUMNS, c[rank.get_name()]), dialect="duckdb")),
                        cp.values) + "\nLIMIT $limit OFFSET $offset"
                else:
                    page_sql = bind_markers(str(ibis.to_sql(
                        f.select(*ROW_COLUMNS, rank).order_by(rank), dialect="duckdb")),
                        p.values) + "\nLIMIT $limit OFFSET $offset"
            else:   # every customer: the page is a range of the order's positions
                count_sql = None
                lo = ibis.literal(marker("lo")).cast("int64")
                hi = ibis.literal(marker("hi")).cast("int64")
                page_sql = bind_markers(str(ibis.to_sql(
                    t.filter(rank.between(lo, hi)).select(*ROW_COLUMNS, rank).order_by(rank),
                    dialect="duckdb")), ["lo", "hi"])
            compiled = w.sql[key] = (count_sql, page_sql)
        count_sql, page_sql = compiled
        raw = w.con.con
        try:
            if count_sql is not None:
                # the count of a filter is the same on every page of it: kept per live table
                ckey = (count_sql, tuple(sorted(p.values.items())))
                total = w.counts.get(ckey, -1)
                if total < 0:
                    total = int(raw.execute(count_sql, p.values).fetchone()[0])
                    w.counts[ckey] = total
                    while len(w.counts) > MAX_COUNTS:
                        w.counts.popitem(last=False)
                bound = {**p.values, "limit": query.page_size, "offset": offset}
            else:
                total = w.info.rows
                bound = {"lo": offset, "hi": offset + query.page_size - 1}
            rows = []
            if total > offset:
                cur = raw.execute(page_sql, bound)
                cols = [d[0] for d in cur.description]
                rows = [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
        except Exception as exc:   # pragma: no cover - backend failure with context
            raise EngineError(f"DuckDB failed on the customer list query: {exc}") from exc
    finally:
        w.lock.release()
    info = w.info
    return CustomerPage(total, query.page, query.page_size, [_row(r, scope) for r in rows],
                        info.as_of, info.run_id)


def account_managers(ws: Workspace) -> list[tuple[str, str]]:
    """``(employee id, label)`` of every account manager customers are assigned to today, by
    id, for the customer list's manager filter; the label adds the employee's name and team
    where the ``employees`` table has them. Kept until the assignments, the customers or the
    employees change."""
    return list(managers_today(ws)[0])


def manager_names(ws: Workspace) -> dict[str, str]:
    """Employee id → name of the account managers customers are assigned to today (those
    the ``employees`` table names), for the customer list's rows; kept as
    :func:`account_managers`."""
    return managers_today(ws)[1]


def managers_today(ws: Workspace) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """:func:`account_managers` and :func:`manager_names` from one look at the cache (the
    customer list needs both on every full page)."""
    w = _warm(ws, None)
    try:
        emp_version = ws.warehouse.head_version("employees")
        got = w.managers
        if got is None or got[0] != w.live or got[1] != emp_version:
            t = w.table(w.live)
            ids = t.filter(t.account_manager_id.notnull()).select("account_manager_id") \
                .distinct().order_by("account_manager_id").to_pyarrow().column(0).to_pylist()
            labels: dict[str, str] = {}
            names: dict[str, str] = {}
            if emp_version is not None:
                cols = [c for c in ("employee_id", "name", "team")
                        if c in ws.warehouse.schema("employees").names]
                for r in ws.warehouse.read("employees", columns=cols).to_pylist():
                    emp = str(r["employee_id"])
                    labels[emp] = " · ".join(str(r[c]) for c in ("name", "team") if r.get(c))
                    if r.get("name"):
                        names[emp] = str(r["name"])
            got = w.managers = (
                str(w.live), emp_version,
                [(i, f"{labels[i]} ({i})" if labels.get(i) else i) for i in ids],
                {i: names[i] for i in ids if i in names})
        return got[2], got[3]
    finally:
        w.lock.release()


def warm_index(ws: Workspace) -> None:
    """Load the latest run's customer index and today's account managers into this
    process ahead of the first visitor (~15 s at 1 M customers on a busy machine)."""
    _warm(ws, None).lock.release()


def get_visible(ws: Workspace, customer_id: str, scope: Scope,
                as_of: date | None = None) -> dict[str, Any]:
    """The customer's list row, or :class:`NotFoundError` when the id is unknown *or* outside
    ``scope`` (the same message: another manager's customer answers 404, not 403)."""
    w = _warm(ws, as_of)
    try:
        values = {"cid": customer_id}
        if scope.employee_id is not None:
            values["emp"] = scope.employee_id
        key = (w.live, tuple(values))
        sql = w.sql.get(key)
        if sql is None:   # compiled once per live table: this runs on every customer page
            t = w.table(w.live)

            def one(v: dict[str, Any]) -> Table:
                conds = [t.customer_id == v["cid"]]
                if "emp" in v:
                    conds.append(t.account_manager_id == v["emp"])
                return t.filter(*conds).select(*ROW_COLUMNS).limit(1)

            sql = w.sql[key] = parametrised_sql(one, values)
        cur = run_point(w.con.con, sql, values)   # a constant filter prunes better
        cols = [d[0] for d in cur.description]
        rows = [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
    finally:
        w.lock.release()
    if not rows:
        raise NotFoundError(_("No customer with id '{id}'. Check the id (ids are "
                              "case-sensitive, e.g. C00000123).").format(id=customer_id))
    return _row(rows[0], scope)

