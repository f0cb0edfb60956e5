"""Saved segments: specs kept in the app store as ``definitions`` of kind ``segment`` — the
rows ``kehu segment save`` writes and campaigns (``audience.segment``) and response models
read. Every save and delete leaves an audit entry.

>>> check_name("  高价值客户 ")
'高价值客户'
>>> check_name("a/b")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
kehu.errors.KehuInputError: The segment name 'a/b' contains '/'. Names may not contain ...
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from kehu.errors import KehuInputError, NotFoundError
from kehu.i18n import _
from kehu.segments.preview import check
from kehu.segments.spec import SegmentSpec
from kehu.store import services as sv
from kehu.store.models import AuditEntry, Definition

if TYPE_CHECKING:
    from kehu.store import AppStore
    from kehu.workspace import Workspace

KIND = "segment"
#: names the web pages use as paths under /segments/
RESERVED_NAMES = frozenset({"new", "compare", "preview", "save"})
NAME_MAX = 200


class SegmentInUseError(KehuInputError):
    """A saved segment that campaigns still name cannot be deleted."""


@dataclass
class SavedSegment:
    name: str
    description: str | None
    version: int
    created_at: datetime | None
    updated_at: datetime | None
    spec: dict[str, Any]

    def parsed(self) -> SegmentSpec:
        """The stored spec, validated (its name is the saved name)."""
        return SegmentSpec.parse({**self.spec, "name": self.name},
                                 _("saved segment '{name}'").format(name=self.name))


def _saved(row: Definition) -> SavedSegment:
    return SavedSegment(row.name, row.description, row.version, row.created_at,
                        row.updated_at, dict(row.spec))


def check_name(name: str) -> str:
    """``name`` without surrounding spaces, or a KehuInputError saying what is wrong."""
    n = name.strip()
    if not n:
        raise KehuInputError(_("The segment needs a name. Type one, e.g. 高价值流失风险."))
    if len(n) > NAME_MAX:
        raise KehuInputError(_("The segment name is {n} characters long; at most {max} are "
                               "allowed. Shorten it.").format(n=len(n), max=NAME_MAX))
    bad = next((c for c in n if c in "/\\" or unicodedata.category(c).startswith("C")), None)
    if bad is not None:
        raise KehuInputError(_("The segment name '{name}' contains {char!r}. Names may not "
                               "contain '/', '\\' or control characters; use letters, digits, "
                               "spaces, '-' or '_'.").format(name=n, char=bad))
    if n.lower() in RESERVED_NAMES:
        raise KehuInputError(_("'{name}' is reserved for a page of the web app; choose "
                               "another segment name.").format(name=n))
    return n


def list_saved(store: AppStore) -> list[SavedSegment]:
    """Every saved segment, by name."""
    with store.session() as s:
        rows = s.scalars(select(Definition).where(Definition.kind == KIND)
                         .order_by(Definition.name))
        return [_saved(r) for r in rows]


def get_saved(store: AppStore, name: str) -> SavedSegment:
    """The saved segment ``name`` (NotFoundError when there is none)."""
    return _saved(sv.get_definition(store, KIND, name))


def exists(store: AppStore, name: str) -> bool:
    with store.session() as s:
        return s.scalars(select(Definition.id).where(Definition.kind == KIND,
                                                     Definition.name == name)).first() \
            is not None


def save(ws: Workspace, spec: SegmentSpec, actor: str) -> tuple[SavedSegment, bool]:
    """Save ``spec`` under its name (a new version when the name exists), after checking the
    name and that the rule compiles against the workspace; the saved segment, and whether it
    is new."""
    name = check_name(spec.name)
    spec = spec.model_copy(update={"name": name})
    check(ws, spec)
    created = not exists(ws.store, name)
    d = sv.save_definition(ws.store, sv.DefinitionIn(
        kind=KIND, name=name, description=spec.description,
        spec=spec.model_dump(mode="json", by_alias=True, exclude_none=True)), actor)
    return _saved(d), created


def using_campaigns(store: AppStore, name: str) -> list[str]:
    """Names of the campaign definitions, and the ids of the campaign drafts not yet launched,
    whose audience is the saved segment ``name``."""
    from kehu.store.models import CampaignDraft

    def uses(spec: object) -> bool:
        return isinstance(spec, dict) and isinstance(spec.get("audience"), dict) \
            and spec["audience"].get("segment") == name

    with store.session() as s:
        rows = s.scalars(select(Definition).where(Definition.kind == "campaign"))
        found = {r.name for r in rows if uses(r.spec)}
        drafts = s.scalars(select(CampaignDraft).where(CampaignDraft.status != "launched"))
        found |= {d.campaign_id for d in drafts if uses(d.spec)}
        return sorted(found)


def delete(store: AppStore, name: str, actor: str) -> None:
    """Delete the saved segment ``name`` (audited); refused while campaigns name it."""
    users = using_campaigns(store, name)
    if users:
        raise SegmentInUseError(_("Segment '{name}' is the audience of the campaign(s) "
                                  "{campaigns}; change their audience before deleting it.")
                                .format(name=name, campaigns=", ".join(users)))
    with store.session() as s:
        row = s.scalars(select(Definition).where(Definition.kind == KIND,
                                                 Definition.name == name)).first()
        if row is None:
            raise NotFoundError(_("No {kind} named '{name}'.").format(kind=KIND, name=name))
        version = row.version
        s.delete(row)
        s.add(AuditEntry(actor=actor, action="delete", object_type=KIND, object_id=name,
                         details={"version": version}))
