"""The segment builder's flat form — rows of (field, operator, value), "bought … in the last
N days" and "not contacted in N days" rules, joined by all/any — and its translation to and
from a :class:`SegmentSpec`.

The fields are the columns a segment is evaluated against (:class:`Context`: the customer
profile, custom attributes and the latest scores) and the operators are the spec's
:data:`~kehu.segments.spec.Op`; nothing here keeps a second list. A spec is *flat* when its
rule is an ``all`` or ``any`` of such rows (or one row); deeper specs (nesting, ``not``,
``min_times``, ``as_of``) are edited as YAML.

>>> b = Builder("any", [Row(field="city", op="in", value="上海, 北京"),
...                     Row(kind="no_contact", days="60")])
>>> rule = b.rule({"city": FieldInfo("city", "text", "profile")})
>>> rule["any"]
[{'field': 'city', 'op': 'in', 'value': ['上海', '北京']}, {'no_contact': {'within_days': 60}}]
>>> Builder.from_spec(SegmentSpec(name="x", rule=rule)) == b
True
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any, get_args

import yaml
from pydantic import ValidationError

from kehu.errors import KehuInputError
from kehu.i18n import _
from kehu.segments.compile import SCORE_FIELDS, Context
from kehu.segments.spec import (
    AllOf,
    AnyOf,
    BoughtRule,
    FieldRule,
    NoContactRule,
    NotBoughtRule,
    Op,
    Rule,
    SegmentSpec,
)
from kehu.specfiles import validation_problems

#: every operator a field rule takes, in the spec's order
OPS: tuple[str, ...] = get_args(Op)
#: operators without a value, and those taking a list
NO_VALUE_OPS = frozenset({"is_null", "not_null"})
LIST_OPS = frozenset({"in", "not_in"})
#: the rule kinds a builder row can be
ROW_KINDS = ("field", "bought", "not_bought", "no_contact")
COMBINES = ("all", "any")
BOUGHT_TARGETS = ("category", "product")
_SPLIT = re.compile(r"\s*[,，、;；]\s*")
_TRUE = frozenset({"true", "yes", "1", "是", "真"})
_FALSE = frozenset({"false", "no", "0", "否", "假"})


@dataclass(frozen=True)
class FieldInfo:
    """A field a rule can compare: its name, kind (text, integer, number, date, boolean,
    other) and group (profile, attribute, score)."""

    name: str
    kind: str
    group: str


def field_catalogue(ctx: Context) -> list[FieldInfo]:
    """The fields of ``ctx`` a segment rule may use, profile first, then custom attributes,
    then scores of the latest analysis run."""
    out = []
    for name, typ in ctx.base.schema().items():
        if name.startswith("_"):
            continue
        kind = ("boolean" if typ.is_boolean() else "integer" if typ.is_integer()
                else "number" if typ.is_numeric() else "date" if typ.is_temporal()
                else "text" if typ.is_string() else "other")
        group = ("score" if name in SCORE_FIELDS else "attribute" if name.startswith("attr_")
                 else "profile")
        out.append(FieldInfo(name, kind, group))
    order = {"profile": 0, "attribute": 1, "score": 2}
    return sorted(out, key=lambda f: order[f.group])


def ops_for(kind: str) -> tuple[str, ...]:
    """The operators that make sense for a field of ``kind`` (``contains`` needs text)."""
    return OPS if kind == "text" else tuple(o for o in OPS if o != "contains")


@dataclass
class Row:
    """One row of the builder, as the form sends it (every input is text)."""

    kind: str = "field"
    field: str = ""
    op: str = "="
    value: str = ""
    target: str = "category"
    item: str = ""
    days: str = ""
    channel: str = ""
    error: str | None = dc_field(default=None, compare=False)


#: the form's inputs per row, in the order the page renders them
ROW_INPUTS = ("kind", "field", "op", "value", "target", "item", "days", "channel")


@dataclass
class Builder:
    combine: str = "all"
    rows: list[Row] = dc_field(default_factory=list)
    error: str | None = dc_field(default=None, compare=False)

    @classmethod
    def from_form(cls, getlist: Callable[[str], list[str]], combine: str | None) -> Builder:
        """The builder from the form's parallel lists (``kind``, ``field``, ``op`` …)."""
        cols = {k: [str(v) for v in getlist(k)] for k in ROW_INPUTS}
        n = len(cols["kind"])
        rows = [Row(**{k: (cols[k][i].strip() if i < len(cols[k]) else "")
                       for k in ROW_INPUTS}) for i in range(n)]
        for r in rows:
            r.kind = r.kind or "field"
            r.op = r.op or "="
            r.target = r.target or "category"
        return cls(combine if combine in COMBINES else "all", rows)

    @classmethod
    def from_spec(cls, spec: SegmentSpec) -> Builder | None:
        """The builder showing ``spec``, or None when the spec is not flat."""
        if spec.as_of is not None:
            return None
        rule = spec.rule
        if isinstance(rule, AllOf | AnyOf):
            combine, children = ("all", rule.all) if isinstance(rule, AllOf) \
                else ("any", rule.any)
        else:
            combine, children = "all", [rule]
        rows = [_row(r) for r in children]
        if any(r is None for r in rows):
            return None
        return cls(combine, [r for r in rows if r is not None])

    def rule(self, fields: dict[str, FieldInfo],
             check: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any] | None:
        """The rule of the rows (``{all: [...]}`` or ``{any: [...]}``), or None after setting
        ``error`` on each row that is wrong (and on the builder when it has no rows).
        ``check(rule)`` may refuse a row's rule with a KehuInputError (e.g. by compiling it)."""
        self.error = None
        if not self.rows:
            self.error = _("Add at least one rule.")
            return None
        rules: list[dict[str, Any]] = []
        for r in self.rows:
            r.error = None
            try:
                one = _rule_of(r, fields)
                SegmentSpec.model_validate({"name": "row", "rule": one})
                if check is not None:
                    check(one)
                rules.append(one)
            except KehuInputError as exc:
                r.error = str(exc)
            except ValidationError as exc:
                r.error = validation_problems(exc)
        if any(r.error for r in self.rows):
            return None
        return {self.combine: rules}


def _number(text: str, integer: bool) -> Any:
    """``text`` as an int (or, unless ``integer``, a float), or unchanged when it is not a
    number (the compiler then names the field and its type)."""
    if re.fullmatch(r"[+-]?\d+", text):
        return int(text)
    if not integer:
        try:
            x = float(text)
        except ValueError:
            return text
        return x if math.isfinite(x) else text
    return text


def _typed(text: str, kind: str) -> Any:
    if kind in ("integer", "number"):
        return _number(text, kind == "integer")
    if kind == "boolean":
        low = text.lower()
        return True if low in _TRUE else False if low in _FALSE else text
    return text


def _days(text: str) -> int:
    if not re.fullmatch(r"\d{1,6}", text) or int(text) < 1:
        raise KehuInputError(_("'days' must be a whole number of days from 1 to 999999; got "
                               "'{got}'.").format(got=text))
    return int(text)


def _rule_of(r: Row, fields: dict[str, FieldInfo]) -> dict[str, Any]:
    """The spec rule of one row; KehuInputError naming what is missing or wrong."""
    if r.kind == "field":
        if not r.field:
            raise KehuInputError(_("Choose a field."))
        info = fields.get(r.field)
        if info is None:
            raise KehuInputError(_("Unknown segment field '{f}'. Choose one from the list.")
                                 .format(f=r.field))
        if r.op not in OPS:
            raise KehuInputError(_("Unknown operator '{op}'; use one of {ops}.").format(
                op=r.op, ops=", ".join(OPS)))
        if r.op in NO_VALUE_OPS:
            return {"field": r.field, "op": r.op}
        if r.op in LIST_OPS or r.op == "between":
            parts = [p for p in _SPLIT.split(r.value) if p]
            if r.op == "between" and len(parts) != 2:
                raise KehuInputError(_("'{f}' between needs two values, low and high, "
                                       "separated by a comma (e.g. 100, 500); got '{got}'.")
                                     .format(f=r.field, got=r.value))
            if not parts:
                raise KehuInputError(_("'{f}' {op} needs one or more values separated by "
                                       "commas.").format(f=r.field, op=r.op))
            return {"field": r.field, "op": r.op, "value": [_typed(p, info.kind)
                                                            for p in parts]}
        if not r.value:
            raise KehuInputError(_("'{f}' {op} needs a value.").format(f=r.field, op=r.op))
        return {"field": r.field, "op": r.op, "value": _typed(r.value, info.kind)}
    if r.kind in ("bought", "not_bought"):
        if not r.item:
            raise KehuInputError(_("Give the category or product id the customers bought."))
        key = "product_id" if r.target == "product" else "category"
        return {r.kind: {key: r.item, "within_days": _days(r.days)}}
    if r.kind == "no_contact":
        nc: dict[str, Any] = {"within_days": _days(r.days)}
        if r.channel:
            nc["channel"] = r.channel
        return {"no_contact": nc}
    raise KehuInputError(_("Unknown rule kind '{kind}'; use one of {kinds}.").format(
        kind=r.kind, kinds=", ".join(ROW_KINDS)))


def _text(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return "" if v is None else str(v)


def _row(rule: Rule) -> Row | None:
    """The builder row showing ``rule``, or None when a row cannot show it."""
    if isinstance(rule, FieldRule):
        v = rule.value
        if isinstance(v, list):
            items = [_text(x) for x in v]
            if any(not x or _SPLIT.search(x) or x != x.strip() for x in items):
                return None
            return Row(field=rule.field, op=rule.op, value=", ".join(items))
        if isinstance(v, dict):
            return None
        return Row(field=rule.field, op=rule.op, value=_text(v))
    if isinstance(rule, BoughtRule | NotBoughtRule):
        b = rule.bought if isinstance(rule, BoughtRule) else rule.not_bought
        if b.min_times != 1 or (b.product_id is None) == (b.category is None):
            return None
        kind = "bought" if isinstance(rule, BoughtRule) else "not_bought"
        return Row(kind=kind, target="product" if b.product_id else "category",
                   item=b.product_id or b.category or "", days=str(b.within_days))
    if isinstance(rule, NoContactRule):
        return Row(kind="no_contact", days=str(rule.no_contact.within_days),
                   channel=rule.no_contact.channel or "")
    return None


def spec_data(spec: SegmentSpec) -> dict[str, Any]:
    """``spec`` as plain data (what the app store keeps and YAML shows)."""
    data: dict[str, Any] = spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    return data


def canonical(spec: SegmentSpec) -> SegmentSpec:
    """``spec`` after a round trip through plain data (dates as text, as when saved): two
    ways of writing one segment give equal specs."""
    return SegmentSpec.model_validate(spec_data(spec))


def to_yaml(spec: SegmentSpec) -> str:
    """``spec`` as the YAML a segment file (``kehu segment save FILE``) holds."""
    return yaml.safe_dump(spec_data(spec), allow_unicode=True, sort_keys=False,
                          default_flow_style=None, width=100)


def from_yaml(text: str, where: str = "YAML", default_name: str | None = None) -> SegmentSpec:
    """The spec in ``text`` (named ``default_name`` when it has no name); KehuInputError
    naming the line or the field when it is wrong."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise KehuInputError(_("{path}: not valid YAML ({err}).").format(path=where, err=exc)
                             ) from exc
    if not isinstance(data, dict):
        raise KehuInputError(_("{where}: a segment is a mapping with the keys name, "
                               "description and rule; got {got}.").format(
            where=where, got=type(data).__name__))
    if default_name and not data.get("name"):
        data = {**data, "name": default_name}
    return canonical(SegmentSpec.parse(data, where))
