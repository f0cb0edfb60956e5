"""What the segment builder shows while someone edits a rule: the segment's size and value
(:func:`kehu.segments.evaluate`), how it splits by tier and RFM class, and its members a page
at a time.

A rule that cannot be compiled against the workspace (an unknown field, a value of the wrong
type, a date outside the calendar) is a :class:`~kehu.errors.KehuInputError` naming the
field, raised by :func:`check` before anything runs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import ibis
from ibis.common.exceptions import IbisError
from ibis.expr.types import Table

from kehu.errors import KehuInputError
from kehu.i18n import _
from kehu.segments.compile import Context, compile_segment
from kehu.segments.service import SegmentResult, evaluate
from kehu.segments.spec import SegmentSpec

if TYPE_CHECKING:
    from kehu.workspace import Workspace

#: the score columns a preview splits the segment by (when the latest run has them)
BREAKDOWNS = ("tier", "rfm_class")


@dataclass
class Group:
    """One value of a breakdown column: its customers in the segment and their value."""

    key: str | None
    customers: int
    revenue: float | None
    clv: float | None


@dataclass
class Preview:
    result: SegmentResult
    breakdown: dict[str, list[Group]]

    def to_dict(self) -> dict[str, Any]:
        return {**self.result.to_dict(),
                "breakdown": {k: [asdict(g) for g in v] for k, v in self.breakdown.items()}}


def check(ws: Workspace, spec: SegmentSpec, ctx: Context | None = None
          ) -> tuple[Context, Table]:
    """The evaluation context (``ctx`` when given) and the compiled members of ``spec``
    (nothing runs yet); a KehuInputError naming the field when the rule does not fit the
    workspace."""
    nul = _nul_path(spec.model_dump(by_alias=True)["rule"])
    if nul:
        raise KehuInputError(_("Segment '{name}': {path} contains a NUL character (\\x00); "
                               "remove it.").format(name=spec.name, path=nul))
    try:
        ctx = ctx or Context(ws.engine, spec.as_of)
        return ctx, compile_segment(spec, ctx)
    except KehuInputError:
        raise
    except OverflowError as exc:  # a number too large, or a date before year 1
        raise KehuInputError(_("Segment '{name}': a number or date in the rule is out of "
                               "range ({err}); check the values, within_days and as_of.")
                             .format(name=spec.name, err=exc)) from exc
    except (IbisError, TypeError, ValueError) as exc:
        raise KehuInputError(_("Segment '{name}': the rule does not fit the data: {err}")
                             .format(name=spec.name, err=exc)) from exc


def _nul_path(data: Any, path: str = "rule") -> str | None:
    """Where in the spec's data a text holds a NUL (databases refuse it in literals)."""
    if isinstance(data, str):
        return path if "\x00" in data else None
    if isinstance(data, dict):
        items: Any = data.items()
    elif isinstance(data, list):
        items = enumerate(data)
    else:
        return None
    for k, v in items:
        found = _nul_path(v, f"{path}.{k}" if isinstance(data, dict) else f"{path}[{k}]")
        if found:
            return found
    return None


def preview(ws: Workspace, spec: SegmentSpec, ctx: Context | None = None) -> Preview:
    """Size, share and value of ``spec`` (the segment service's :func:`evaluate`) and its
    customers and value by tier and by RFM class (``ctx``: a context to reuse, for specs
    without ``as_of``)."""
    ctx, members = check(ws, spec, ctx if spec.as_of is None else None)
    result = evaluate(ws, spec)
    base = ctx.base
    joined = base.filter(base.customer_id.isin(members.customer_id))
    breakdown: dict[str, list[Group]] = {}
    for col in BREAKDOWNS:
        if col not in base.columns:
            continue
        aggs: dict[str, Any] = {"customers": joined.count()}
        aggs["revenue"] = joined.monetary_total.sum() if "monetary_total" in base.columns \
            else ibis.null().cast("float64")
        aggs["clv"] = joined.clv.sum() if "clv" in base.columns \
            else ibis.null().cast("float64")
        rows = joined.group_by(col).aggregate(**aggs) \
            .order_by([ibis.desc("customers"), col]).to_pyarrow().to_pylist()
        breakdown[col] = [Group(r[col], int(r["customers"]), r["revenue"], r["clv"])
                          for r in rows]
    return Preview(result, breakdown)


def member_ids(ws: Workspace, spec: SegmentSpec, page: int = 1,
               page_size: int = 100) -> tuple[int, list[str]]:
    """How many customers the segment has, and the ids on ``page`` (by customer id)."""
    _ctx, members = check(ws, spec)
    total = int(members.count().to_pyarrow().as_py())
    start = (page - 1) * page_size
    if start >= total:
        return total, []
    ids = members.order_by("customer_id").limit(page_size, offset=start) \
        .to_pyarrow().column("customer_id").to_pylist()
    return total, [str(x) for x in ids]
