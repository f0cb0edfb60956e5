"""Settings: the tier scheme, the lifecycle rules, the contact policy, the service levels and
the alert rules — each shown as a table, the editable ones also as YAML in a text area,
validated by the same spec models as the CLI (``kehu policy set``, ``kehu alerts rules
--file``, the service-level file) and saved through the same services. A bad edit re-renders
the page with the problem (422) and changes nothing; a good one is audited with the spec
before and after. Admins and analysts may look and edit; everyone else gets 403.

Where each lives: every section is a definition in the app store (versioned, audited);
until one is saved, kehu's built-in one applies. The tier scheme and the lifecycle rules are
read by the analysis run, so a change to them applies from the next run (``kehu run``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

import yaml
from fastapi import APIRouter, Form, Path, Request
from fastapi.responses import RedirectResponse, Response

from kehu.errors import KehuInputError, NotFoundError
from kehu.i18n import N_, _, get_locale
from kehu.web.deps import Audit, Configurer, WorkspaceDep, apply_locale, render
from kehu.workspace import Workspace

router = APIRouter(include_in_schema=False)

#: the longest YAML accepted in a text area (characters)
MAX_SPEC = 200_000


@dataclass(frozen=True)
class Section:
    """One settings section: how to read its spec as plain data and its table, and — when
    editable — how to validate and save an edited one."""

    key: str
    title: str
    help: str
    current: Callable[[Workspace], Any]
    plain: Callable[[Any], Any]
    table: Callable[[Any, Workspace], dict[str, Any]]
    parse: Callable[[Any], Any] | None = None
    save: Callable[[Workspace, Any, str], Any] | None = None

    @property
    def editable(self) -> bool:
        return self.parse is not None and self.save is not None


# -- the specs: current value, table, parse, save -------------------------------------------


def _tiers(ws: Workspace) -> Any:
    from kehu.analytics.schemes import tier_scheme

    return tier_scheme(ws)


def _tiers_table(s: Any, ws: Workspace) -> dict[str, Any]:
    zh = get_locale() == "zh_CN"
    unit = _("share of customers from the top") if s.method == "percentiles" else \
        _("{basis} in the last {days} days at least").format(
            basis=_("spend") if s.basis == "spend" else _("margin"), days=s.window_days)
    return {"columns": [_("Code"), _("Tier"), _("Threshold")],
            "rows": [[t.code, t.name_zh if zh else t.name_en, t.cut] for t in s.tiers],
            "note": _("Threshold: {unit}.").format(unit=unit)}


def _parse_tiers(data: Any) -> Any:
    from kehu.analytics.schemes import parse_tier_scheme

    return parse_tier_scheme(data, _("Value tiers"))


def _save_tiers(ws: Workspace, scheme: Any, actor: str) -> None:
    from kehu.analytics.schemes import save_tier_scheme

    save_tier_scheme(ws, scheme, actor)


def _lifecycle(ws: Workspace) -> Any:
    from kehu.analytics.schemes import lifecycle_rules

    return lifecycle_rules(ws)


def _parse_lifecycle(data: Any) -> Any:
    from kehu.analytics.schemes import parse_lifecycle_rules

    return parse_lifecycle_rules(data, _("Lifecycle rules"))


def _save_lifecycle(ws: Workspace, rules: Any, actor: str) -> None:
    from kehu.analytics.schemes import save_lifecycle_rules

    save_lifecycle_rules(ws, rules, actor)


LIFECYCLE_HELP = {
    "new_days": N_("A customer whose first purchase is at most this many days old is new."),
    "active_days": N_("No purchase for longer than this many days: dormant."),
    "dormant_days": N_("No purchase for longer than this many days: churned (a purchase after "
                       "such a gap: won back)."),
    "trend_window_days": N_("Days over which the spending trend (growing, declining) is "
                            "measured."),
}


def _lifecycle_table(r: Any, ws: Workspace) -> dict[str, Any]:
    return {"columns": [_("Rule"), _("Days"), _("Meaning")],
            "rows": [[k, v, _(LIFECYCLE_HELP.get(k, ""))] for k, v in r.model_dump().items()]}


def _policy(ws: Workspace) -> Any:
    from kehu.campaigns.launch import get_policy

    return get_policy(ws)


def _policy_table(p: Any, ws: Workspace) -> dict[str, Any]:
    rows: list[list[Any]] = [
        [_("Contact cap"), _("at most {n} contacts in {days} days{on}").format(
            n=c.max_contacts, days=c.window_days,
            on=_(" by {c}").format(c=c.channel) if c.channel else "")] for c in p.caps]
    rows += [[_("Quiet days between contacts"), p.quiet_days],
             [_("Honour opt-out responses"), _("yes") if p.honour_opt_out_responses else _("no")],
             [_("Skip customers without an address for the channel"),
              _("yes") if p.require_address else _("no")]]
    return {"columns": [_("Rule"), _("Value")], "rows": rows}


def _parse_policy(data: Any) -> Any:
    from kehu.campaigns.spec import ContactPolicy

    return ContactPolicy.parse(data, _("Contact policy"))


def _save_policy(ws: Workspace, p: Any, actor: str) -> None:
    from kehu.campaigns.launch import set_policy

    set_policy(ws, p, actor)


def _levels(ws: Workspace) -> Any:
    from kehu.accounts.service_levels import load_service_levels

    return load_service_levels(ws.store)


def _levels_table(levels: Any, ws: Workspace) -> dict[str, Any]:
    from kehu.accounts.service_levels import tier_name, tier_scheme

    scheme = tier_scheme(ws)
    yes, no = _("yes"), _("no")
    return {"columns": [_("Tier"), _("Dedicated manager"), _("Response time (hours)"),
                        _("Maximum discount"), _("Priority queue"), _("Channels")],
            "rows": [[tier_name(code, scheme), yes if lv.dedicated_manager else no,
                      lv.response_hours, f"{lv.max_discount:.0%}", yes if lv.priority_queue else no,
                      ", ".join(lv.channels) if lv.channels else _("all")]
                     for code, lv in levels.tiers.items()]}


def _parse_levels(data: Any) -> Any:
    from kehu.accounts.service_levels import ServiceLevels

    return ServiceLevels.parse(data, _("Service levels"))


def _save_levels(ws: Workspace, levels: Any, actor: str) -> None:
    from kehu.accounts.service_levels import save_service_levels

    save_service_levels(ws.store, levels, actor)


def _rules(ws: Workspace) -> Any:
    from kehu.alerts import rules_in_force

    return rules_in_force(ws.store)


RULE_COMMON = frozenset({"name", "kind", "enabled", "priority", "assign_to", "title",
                         "description", "due_in_days", "fallback_team", "notify_email",
                         "skip_churned"})


def _rules_table(rs: Any, ws: Workspace) -> dict[str, Any]:
    from kehu.alerts.service import PRIORITY_LABELS

    rows = []
    for r in rs.rules:
        cond = ", ".join(f"{k}={v}" for k, v in r.model_dump(exclude_defaults=True).items()
                         if k not in RULE_COMMON)
        rows.append([r.name, r.kind, _("yes") if r.enabled else _("no"),
                     _(PRIORITY_LABELS.get(r.priority, r.priority)), r.assign_to, cond])
    return {"columns": [_("Rule"), _("Kind"), _("Enabled"), _("Priority"), _("Assign to"),
                        _("Condition")], "rows": rows,
            "note": _("Rules left out of an edit stay saved: set 'enabled: false' to stop "
                      "one.")}


def _parse_rules(data: Any) -> Any:
    from kehu.alerts import AlertRules

    return AlertRules.parse(data, _("Alert rules"))


def _save_rules(ws: Workspace, rules: Any, actor: str) -> None:
    from kehu.alerts import save_rules

    save_rules(ws.store, rules, actor)


def _dump(model: Any) -> Any:
    return model.model_dump(mode="json")


SECTIONS: dict[str, Section] = {s.key: s for s in (
    Section("tiers", N_("Value tiers"),
            N_("The value tiers the analysis run gives customers: basis (spend or margin), "
               "method (thresholds or percentiles), window and each tier's cut, best first. "
               "The codes stay diamond, gold, silver, regular; rename tiers with name_zh and "
               "name_en. Changes apply from the next analysis run ('kehu run')."),
            _tiers, _dump, _tiers_table, _parse_tiers, _save_tiers),
    Section("lifecycle", N_("Lifecycle rules"),
            N_("How the analysis run decides a customer's lifecycle stage (days without a "
               "purchase before dormant and churned …). Changes apply from the next analysis "
               "run ('kehu run')."),
            _lifecycle, _dump, _lifecycle_table, _parse_lifecycle, _save_lifecycle),
    Section("contact_policy", N_("Contact policy"),
            N_("Enforced whenever a campaign builds its contact list: contact caps, quiet "
               "days, opt-outs. The same as 'kehu policy set'."),
            _policy, _dump, _policy_table, _parse_policy, _save_policy),
    Section("service_levels", N_("Service levels"),
            N_("What each tier is entitled to: a dedicated manager, response time, maximum "
               "discount, priority queue, contact channels. Give every tier."),
            _levels, _dump, _levels_table, _parse_levels, _save_levels),
    Section("alert_rules", N_("Alert rules"),
            N_("Conditions that create tasks for account managers (contract maturity, usage "
               "drop, churn risk …). The same as 'kehu alerts rules --file'."),
            _rules, lambda rs: rs.dump(), _rules_table, _parse_rules, _save_rules),
)}


def to_yaml(data: Any) -> str:
    """A spec as the YAML people edit (keys in their order, Chinese kept readable).

    >>> to_yaml({"quiet_days": 7, "caps": [{"max_contacts": 2}]})
    'quiet_days: 7\\ncaps:\\n- max_contacts: 2\\n'
    """
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)


def parse_yaml(section: Section, text: str) -> Any:
    """The edited text validated by the section's spec model; :class:`KehuInputError` names
    the line (bad YAML) or the field (bad spec)."""
    assert section.parse is not None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = _(" at line {line}, column {col}").format(line=mark.line + 1,
                                                         col=mark.column + 1) if mark else ""
        raise KehuInputError(_("{title}: not valid YAML{where}: {err}. Check the indentation "
                               "and the quotes.").format(
            title=_(section.title), where=where,
            err=getattr(exc, "problem", None) or exc)) from exc
    return section.parse(data)


def _views(ws: Workspace, edited: dict[str, str] | None = None) -> list[dict[str, Any]]:
    out = []
    for s in SECTIONS.values():
        spec = s.current(ws)
        out.append({"key": s.key, "title": _(s.title), "help": _(s.help),
                    "editable": s.editable, "table": s.table(spec, ws),
                    "yaml": (edited or {}).get(s.key) or to_yaml(s.plain(spec))})
    return out


def _section(key: str) -> Section:
    s = SECTIONS.get(key)
    if s is None or not s.editable:
        raise NotFoundError(_("No editable settings section '{key}'. Editable: {keys}.")
                            .format(key=key, keys=", ".join(k for k, v in SECTIONS.items()
                                                            if v.editable)))
    return s


@router.get("/settings")
def settings_page(request: Request, user: Configurer, ws: WorkspaceDep,
                  saved: str | None = None) -> Response:
    """Every section: its table and, for the editable ones, the YAML to edit."""
    apply_locale(request)
    return render(request, "settings.html", {
        "sections": _views(ws), "saved": saved if saved in SECTIONS else None})


@router.post("/settings/{key}")
def save_section(key: Annotated[str, Path(max_length=40)], request: Request, user: Configurer,
                 ws: WorkspaceDep, audit: Audit,
                 spec: Annotated[str, Form(max_length=MAX_SPEC)] = "") -> Response:
    """Validate and save one section (CSRF-checked); 422 with the problem and the text as
    sent when it is not valid, nothing changed."""
    apply_locale(request)
    section = _section(key)
    try:
        new = parse_yaml(section, spec)
    except KehuInputError as exc:
        return render(request, "settings.html", {
            "sections": _views(ws, {key: spec}), "error": str(exc), "error_key": key},
            status_code=422)
    before = section.plain(section.current(ws))
    assert section.save is not None
    section.save(ws, new, user.actor)
    after = section.plain(section.current(ws))
    audit("update", "settings", key, {"before": before, "after": after})
    return RedirectResponse(f"/settings?saved={key}#{key}", status_code=303)
