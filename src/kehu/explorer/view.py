"""One view of the explorer: which measures, which dimension on the rows and the columns, the
filters and the date range — a plain, serialisable object that round-trips through a URL's
query string (so a view can be bookmarked and shared), and the views one drill step away.

>>> v = ExplorerView(measures=["revenue"], rows="year")
>>> d = v.drilled("rows", "2024")
>>> d.rows, d.where
('quarter', {'year': ['2024']})
>>> [(c.dimension, c.value, c.view.rows) for c in d.crumbs("rows")]
[('year', None, 'year'), ('year', '2024', 'quarter')]
>>> ExplorerView.from_params(d.to_params()) == d
True
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from kehu.analytics.cube import DIMENSIONS, HIERARCHIES, CubeQuery, Filter, drill_down
from kehu.errors import KehuInputError
from kehu.explorer.labels import MEASURES
from kehu.i18n import _

Axis = Literal["rows", "cols"]

#: the most values one filter may hold, and the longest value
MAX_FILTER_VALUES = 200
MAX_VALUE_LENGTH = 200


def check_value(value: str, field: str) -> str:
    """``value`` when a dimension value can hold it (not empty, no control characters, valid
    Unicode, not too long); otherwise a KehuInputError naming ``field``."""
    ok = 0 < len(value) <= MAX_VALUE_LENGTH and value.isprintable()
    if ok:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            ok = False
    if not ok:
        raise KehuInputError(_("The '{field}' value {v!r} is not a dimension value: use 1 to "
                               "{n} printable characters.").format(
            field=field, v=value[:40], n=MAX_VALUE_LENGTH))
    return value


@dataclass(frozen=True)
class Crumb:
    """One step of the way back up a hierarchy: ``value`` None is its top ("all")."""

    dimension: str
    value: str | None
    view: ExplorerView


class ExplorerView(BaseModel):
    """What the explorer shows. ``show`` is the measure in the cells when both rows and
    columns are set (with rows only, every measure is a column)."""

    model_config = ConfigDict(frozen=True)

    measures: list[str] = Field(min_length=1)
    rows: str | None = None
    cols: str | None = None
    show: str | None = None
    where: dict[str, list[str]] = Field(default_factory=dict)
    start: date | None = None
    end: date | None = None

    # -- URL ------------------------------------------------------------------------------------

    @classmethod
    def from_params(cls, params: Iterable[tuple[str, str]]) -> ExplorerView:
        """A view from query-string pairs: ``m`` (measure, repeat), ``rows``, ``cols``,
        ``show``, ``f`` (filter ``dimension=value``, repeat), ``from``, ``to``; ``fd`` and
        ``fv`` (the form's "add a filter" pair) add one more filter. Empty values are
        ignored; a bad value is a KehuInputError naming its parameter."""
        got: dict[str, list[str]] = {}
        for k, v in params:
            if v.strip():
                got.setdefault(k, []).append(v.strip())
        measures = list(dict.fromkeys(got.get("m", []))) or ["revenue"]
        where: dict[str, list[str]] = {}
        pairs = [tuple(f.split("=", 1)) for f in got.get("f", [])]
        bad = [f for f, p in zip(got.get("f", []), pairs, strict=True) if len(p) != 2]
        if bad:
            raise KehuInputError(_("The filter {f!r} must look like region=广东 (a dimension, "
                                   "'=', a value).").format(f=bad[0]))
        if got.get("fd") and got.get("fv"):
            pairs.append((got["fd"][0], got["fv"][0]))
        for dim, value in pairs:
            dim, value = dim.strip(), check_value(value.strip(), "f")
            if value not in where.setdefault(dim, []):
                where[dim].append(value)
        one = {k: got[k][0] for k in ("rows", "cols", "show", "from", "to") if got.get(k)}
        view = cls(measures=measures, rows=one.get("rows"), cols=one.get("cols"),
                   show=one.get("show"), where=where, start=_day("from", one.get("from")),
                   end=_day("to", one.get("to")))
        view.check()
        return view

    def to_params(self) -> list[tuple[str, str]]:
        """The view as query-string pairs (the inverse of :meth:`from_params`)."""
        out = [("m", m) for m in self.measures]
        out += [(k, v) for k, v in (("rows", self.rows), ("cols", self.cols),
                                    ("show", self.show if self.cols else None)) if v]
        out += [("f", f"{d}={v}") for d, values in self.where.items() for v in values]
        out += [(k, v.isoformat()) for k, v in (("from", self.start), ("to", self.end)) if v]
        return out

    # -- meaning --------------------------------------------------------------------------------

    def check(self) -> None:
        """Names must be the cube's; the grain rules are the cube service's to enforce."""
        unknown = [m for m in self.measures if m not in MEASURES]
        if unknown:
            raise KehuInputError(_("Unknown measure {m!r}. Pick from: {all}.").format(
                m=unknown[0], all=", ".join(MEASURES)))
        for field, dim in (("rows", self.rows), ("cols", self.cols),
                           *(("f", d) for d in self.where)):
            if dim is not None and dim not in DIMENSIONS:
                raise KehuInputError(_("The '{field}' parameter names an unknown dimension "
                                       "{d!r}. Pick from: {all}.").format(
                    field=field, d=dim, all=", ".join(DIMENSIONS)))
        if self.rows and self.rows == self.cols:
            raise KehuInputError(_("Rows and columns are both {d!r}: pick another dimension "
                                   "for the columns, or none.").format(d=self.rows))
        if self.cols and not self.rows:
            raise KehuInputError(_("Columns need rows: pick a dimension for the rows first."))
        if self.show is not None and self.show not in self.measures:
            raise KehuInputError(_("The measure shown in the cells ({m!r}) must be one of the "
                                   "chosen measures: {all}.").format(
                m=self.show, all=", ".join(self.measures)))
        too_many = [d for d, v in self.where.items() if len(v) > MAX_FILTER_VALUES]
        if too_many:
            raise KehuInputError(_("The filter on {d} has more than {n} values; narrow it "
                                   "down.").format(d=too_many[0], n=MAX_FILTER_VALUES))
        if self.start and self.end and self.end < self.start:
            raise KehuInputError(_("The date range ends ({end}) before it starts ({start}); "
                                   "swap the dates.").format(end=self.end, start=self.start))

    @property
    def cell_measure(self) -> str:
        """The measure in a two-dimensional table's cells."""
        return self.show if self.show in self.measures else self.measures[0]

    @property
    def by(self) -> list[str]:
        return [d for d in (self.rows, self.cols) if d]

    def query(self, by: list[str] | None = None,
              measures: list[str] | None = None) -> CubeQuery:
        """The cube query of this view (``by`` defaults to the rows and columns)."""
        return CubeQuery(measures=measures or self.measures,
                         by=self.by if by is None else by,
                         where=[Filter(dimension=d, values=v) for d, v in self.where.items()],
                         start=self.start, end=self.end)

    def axis(self, axis: Axis) -> str | None:
        return self.rows if axis == "rows" else self.cols

    def _with_axis(self, axis: Axis, dimension: str, where: dict[str, list[str]]) -> ExplorerView:
        return self.model_copy(update={axis: dimension, "where": where})

    def drilled(self, axis: Axis, value: str | None) -> ExplorerView | None:
        """The view one level down from ``value`` on ``axis``: that axis moves to the next
        level of its hierarchy and ``value`` becomes a filter (None at the bottom, for a
        missing value, or when the next level is already on the other axis)."""
        dim = self.axis(axis)
        child = drill_down(dim) if dim else None
        other = self.cols if axis == "rows" else self.rows
        if dim is None or child is None or value is None or child == other:
            return None
        where = {d: v for d, v in self.where.items() if d not in _below(dim)}
        where[dim] = [value]
        return self._with_axis(axis, child, where)

    def crumbs(self, axis: Axis) -> list[Crumb]:
        """The way back up the hierarchy of the dimension on ``axis``: "all" at the top, then
        every level above it filtered to one value (empty when there is nothing to go back
        to)."""
        dim = self.axis(axis)
        h = next((h for h in HIERARCHIES if dim in h), None)
        if dim is None or h is None:
            return []
        i = h.index(dim)
        if i == 0 and not any(lvl in self.where for lvl in h):
            return []
        other = self.cols if axis == "rows" else self.rows
        out: list[Crumb] = []
        if h[0] != other:
            out.append(Crumb(h[0], None, self._with_axis(
                axis, h[0], {d: v for d, v in self.where.items() if d not in h})))
        for j, lvl in enumerate(h[:i]):
            values = self.where.get(lvl, [])
            if len(values) == 1 and h[j + 1] != other:
                keep = {d: v for d, v in self.where.items() if d not in h[j + 1:]}
                out.append(Crumb(lvl, values[0], self._with_axis(axis, h[j + 1], keep)))
        return out

    def without_filter(self, dimension: str, value: str) -> ExplorerView:
        where = {d: [x for x in v if not (d == dimension and x == value)]
                 for d, v in self.where.items()}
        return self.model_copy(update={"where": {d: v for d, v in where.items() if v}})


def _below(dimension: str) -> tuple[str, ...]:
    """The levels below ``dimension`` in its hierarchy."""
    for h in HIERARCHIES:
        if dimension in h:
            return h[h.index(dimension) + 1:]
    return ()


def _day(name: str, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise KehuInputError(_("The '{name}' date must look like 2024-01-31. Got {v!r} "
                               "instead.").format(name=name, v=value[:40])) from None
