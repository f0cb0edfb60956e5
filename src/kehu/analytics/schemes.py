"""The workspace's tier scheme and lifecycle rules: definitions in the app store (kinds
``tier_scheme`` and ``lifecycle_rules``, named ``default``; versioned, audited), edited on the
Settings page; until one is saved, the built-in :class:`TierScheme` / :class:`LifecycleRules`
apply. The analysis run (``kehu run``) reads them, so a change applies from the next run.

The tier codes are fixed (``diamond``, ``gold``, ``silver``, ``regular``, best first): the
service levels, the alert rules and the churn model refer to them. Everything else — the
names, the cuts, the basis, the method and the window — is the workspace's to choose.

>>> from kehu.store.db import AppStore
>>> store = AppStore("sqlite://"); store.upgrade()
>>> tier_scheme(store).tiers[1].cut
5000.0
>>> s = TierScheme().model_dump()
>>> s["tiers"][1]["cut"] = 8000
>>> save_tier_scheme(store, parse_tier_scheme(s), actor="admin").version
1
>>> tier_scheme(store).tiers[1].cut
8000.0
>>> parse_lifecycle_rules({"active_days": 120, "dormant_days": 100})  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
kehu.errors.KehuInputError: lifecycle rules: invalid lifecycle rules: Value error, ...
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kehu.analytics.lifecycle import LifecycleRules
from kehu.analytics.tiers import TierScheme
from kehu.errors import KehuInputError
from kehu.i18n import _
from kehu.specfiles import validated

if TYPE_CHECKING:
    from kehu.store.db import AppStore
    from kehu.store.models import Definition
    from kehu.workspace import Workspace

TIER_KIND = "tier_scheme"
LIFECYCLE_KIND = "lifecycle_rules"
NAME = "default"
#: the tier codes every scheme has, best first (service levels and alert rules use them)
TIER_CODES = tuple(t.code for t in TierScheme().tiers)


def _store(ws_or_store: Workspace | AppStore) -> AppStore:
    from kehu.store.db import AppStore

    return ws_or_store if isinstance(ws_or_store, AppStore) else ws_or_store.store


def parse_tier_scheme(data: Any, where: str = "tier scheme") -> TierScheme:
    """``data`` validated as a tier scheme with the fixed codes; a :class:`KehuInputError`
    names the field otherwise."""
    scheme = validated(TierScheme, data, where, _("tier scheme"))
    codes = tuple(t.code for t in scheme.tiers)
    if codes != TIER_CODES:
        raise KehuInputError(_(
            "{where}: invalid tier scheme: tiers.code: the tiers must be {want}, in this "
            "order (the service levels, alert rules and churn model use these codes); got "
            "{got}. Rename tiers with name_zh and name_en.").format(
            where=where, want=", ".join(TIER_CODES), got=", ".join(codes)))
    return scheme


def parse_lifecycle_rules(data: Any, where: str = "lifecycle rules") -> LifecycleRules:
    """``data`` validated as lifecycle rules; a :class:`KehuInputError` names the field."""
    return validated(LifecycleRules, data, where, _("lifecycle rules"))


def get_tier_scheme(ws_or_store: Workspace | AppStore) -> tuple[TierScheme, int | None]:
    """The saved scheme and its version, or the built-in one and ``None`` (reused for a
    second: :func:`kehu.store.services.definition_in_force`)."""
    from kehu.store.services import definition_in_force

    return definition_in_force(_store(ws_or_store), TIER_KIND, NAME, TierScheme,
                               parse_tier_scheme, _("saved tier scheme (version {v})"))


def get_lifecycle_rules(ws_or_store: Workspace | AppStore
                        ) -> tuple[LifecycleRules, int | None]:
    """The saved rules and their version, or the built-in ones and ``None`` (reused for a
    second: :func:`kehu.store.services.definition_in_force`)."""
    from kehu.store.services import definition_in_force

    return definition_in_force(_store(ws_or_store), LIFECYCLE_KIND, NAME, LifecycleRules,
                               parse_lifecycle_rules,
                               _("saved lifecycle rules (version {v})"))


def tier_scheme(ws_or_store: Workspace | AppStore | None = None) -> TierScheme:
    """The tier scheme in force: the workspace's saved one, else the built-in one (also
    when no workspace is given)."""
    return TierScheme() if ws_or_store is None else get_tier_scheme(ws_or_store)[0]


def lifecycle_rules(ws_or_store: Workspace | AppStore | None = None) -> LifecycleRules:
    """The lifecycle rules in force: the workspace's saved ones, else the built-in ones."""
    return LifecycleRules() if ws_or_store is None else get_lifecycle_rules(ws_or_store)[0]


def save_tier_scheme(ws_or_store: Workspace | AppStore, scheme: TierScheme, actor: str
                     ) -> Definition:
    """Save the scheme as the workspace's (a new version when one exists; audited)."""
    from kehu.store.services import DefinitionIn, save_definition

    scheme = parse_tier_scheme(scheme.model_dump(mode="json"))
    return save_definition(_store(ws_or_store), DefinitionIn(
        kind=TIER_KIND, name=NAME, spec=scheme.model_dump(mode="json"),
        description=_("Value tiers")), actor)


def save_lifecycle_rules(ws_or_store: Workspace | AppStore, rules: LifecycleRules,
                         actor: str) -> Definition:
    """Save the rules as the workspace's (a new version when one exists; audited)."""
    from kehu.store.services import DefinitionIn, save_definition

    return save_definition(_store(ws_or_store), DefinitionIn(
        kind=LIFECYCLE_KIND, name=NAME, spec=rules.model_dump(mode="json"),
        description=_("Lifecycle rules")), actor)
