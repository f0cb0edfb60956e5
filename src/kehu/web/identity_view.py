"""What the identity pages show, apart from the routes: a review pair's fields side by side
with whether they agree, the customers that hold several records, and the translated labels
of statuses, decisions and journal actions.

A field *agrees* when both records have the same value (after the cleaning identity
resolution applies: phones, e-mails and ID numbers normalised, case and spaces ignored);
names also agree as *similar* when they are written differently but read the same (the same
pinyin, in either order: 张军秀, "Junxiu Zhang" and "Zhang Junxiu"; simplified and traditional
characters).

>>> left = {"name": "张军秀", "name_pinyin": "zhang junxiu", "phone": "13603272870",
...         "city": "南京", "email": None}
>>> right = {"name": "Junxiu Zhang", "name_pinyin": "zhang junxiu", "phone": "13603272870",
...          "city": "苏州", "email": "jz@example.cn"}
>>> {f.field: f.outcome for f in compare(left, right)}["name"]
'similar'
>>> agreed(left, right), disagreed(left, right)
(['name', 'phone'], ['city'])
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

from kehu.i18n import N_, _
from kehu.identity import tables as tb
from kehu.identity.service import JournalItem, ReviewItem
from kehu.workspace import Workspace

Outcome = Literal["same", "similar", "different", "missing", "empty"]

#: the fields a reviewer compares, in the order shown (values from ``identity_records``)
FIELDS: dict[str, str] = {
    "name": N_("Name"), "gender": N_("Gender"), "birth_date": N_("Birth date"),
    "phone": N_("Phone"), "email": N_("E-mail"), "id_number": N_("ID number"),
    "address": N_("Address"), "city": N_("City"),
}
OUTCOMES: dict[str, str] = {"same": N_("same"), "similar": N_("similar (same pinyin)"),
                            "different": N_("different"), "missing": N_("only one record has it"),
                            "empty": N_("neither record has it")}
#: queue filters (the service's pair statuses, and all of them)
STATUSES: dict[str, str] = {"pending": N_("Pending"), "merge": N_("Merged"),
                            "keep_apart": N_("Kept apart"), "all": N_("All")}
DECISIONS: dict[str, str] = {"merge": N_("Merge"), "keep_apart": N_("Keep apart")}
ACTIONS: dict[str, str] = {"merge": N_("merge"), "split": N_("split"), "undo": N_("undo")}
KINDS: dict[str, str] = {"auto": N_("by a run"), "manual": N_("by a person")}
ORIGINS: dict[str, str] = {"model": N_("the model"), "manual": N_("chosen by hand"),
                           "undo": N_("an undo")}


@dataclass(frozen=True)
class FieldRow:
    """One compared field of a pair."""

    field: str
    left: Any
    right: Any
    outcome: Outcome


def _plain(value: Any) -> str | None:
    """A value as compared: text trimmed and case-folded, dates as ISO text, empty as None.

    >>> _plain("  Zhang@Example.CN "), _plain(""), _plain(date(1980, 7, 6))
    ('zhang@example.cn', None, '1980-07-06')
    """
    if value is None:
        return None
    if isinstance(value, datetime | date):
        return value.isoformat()
    text = " ".join(str(value).split()).casefold()
    return text or None


def _outcome(field: str, left: dict[str, Any], right: dict[str, Any]) -> Outcome:
    a, b = _plain(left.get(field)), _plain(right.get(field))
    if a is None and b is None:
        return "empty"
    if a is None or b is None:
        return "missing"
    if a == b:
        return "same"
    if field == "name":
        pa_, pb = _plain(left.get("name_pinyin")), _plain(right.get("name_pinyin"))
        if pa_ is not None and pb is not None and sorted(pa_.split()) == sorted(pb.split()):
            return "similar"  # the same syllables, in either order ("Lin Gao", 高琳)
    return "different"


def compare(left: dict[str, Any], right: dict[str, Any]) -> list[FieldRow]:
    """Every field of :data:`FIELDS` of the two records, with its outcome."""
    return [FieldRow(f, left.get(f), right.get(f), _outcome(f, left, right)) for f in FIELDS]


def agreed(left: dict[str, Any], right: dict[str, Any]) -> list[str]:
    """The fields on which the two records agree (the same value, or a similar name)."""
    return [r.field for r in compare(left, right) if r.outcome in ("same", "similar")]


def disagreed(left: dict[str, Any], right: dict[str, Any]) -> list[str]:
    """The fields both records have, with different values."""
    return [r.field for r in compare(left, right) if r.outcome == "different"]


@dataclass(frozen=True)
class PairView:
    """A review pair as the page shows it."""

    item: ReviewItem
    rows: list[FieldRow]
    agreed: list[str]
    disagreed: list[str]


def pair_view(item: ReviewItem) -> PairView:
    return PairView(item, compare(item.left, item.right), agreed(item.left, item.right),
                    disagreed(item.left, item.right))


def undoable(entry: JournalItem) -> bool:
    """Whether the journal offers to undo ``entry`` (a merge or split not undone yet; the
    service may still refuse when its records changed keys since)."""
    return entry.action != "undo" and entry.undone_at is None


def merged_customers(ws: Workspace) -> int:
    """Kehu keys that hold more than one source record (customers resolution merged), as
    counted when the map was written."""
    return tb.map_counts(ws.engine)["merged_customers"]


def labels() -> dict[str, dict[str, str]]:
    """Translated labels of fields, outcomes, statuses, decisions, actions, kinds, origins."""
    return {name: {k: _(v) for k, v in table.items()} for name, table in (
        ("field", FIELDS), ("outcome", OUTCOMES), ("status", STATUSES),
        ("decision", DECISIONS), ("action", ACTIONS), ("kind", KINDS), ("origin", ORIGINS))}
