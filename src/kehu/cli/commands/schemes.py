"""``kehu tierscheme show|set`` and ``kehu lifecyclerules show|set``: the workspace's value
tiers and lifecycle rules (the same definitions as the Settings page; the analysis run uses
them from the next ``kehu run``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from kehu.cli.common import JsonOpt, WorkspaceOpt, cli_actor, open_workspace
from kehu.cli.output import console, emit_json
from kehu.i18n import _
from kehu.specfiles import read_yaml

tiers_app = typer.Typer(help="The value tiers: basis, method, window and each tier's cut and "
                        "names (codes fixed).", no_args_is_help=True)
rules_app = typer.Typer(help="The lifecycle rules: days before new, dormant and churned.",
                        no_args_is_help=True)


def _header(what: str, version: int | None) -> None:
    console.print(_("{what}, version {v}.").format(what=what, v=version) if version else
                  _("{what}: the built-in default (none saved yet).").format(what=what))


def _show_tiers(scheme: Any, version: int | None, json: bool) -> None:
    if json:
        emit_json({"version": version, **scheme.model_dump(mode="json")})
        return
    _header(_("Value tiers"), version)
    console.print(_("Basis: {basis}; method: {method}; window: {days} days.").format(
        basis=scheme.basis, method=scheme.method, days=scheme.window_days))
    tab = Table()
    for label in (_("code"), _("name (zh)"), _("name (en)"), _("cut")):
        tab.add_column(label)
    for t in scheme.tiers:
        tab.add_row(t.code, t.name_zh, t.name_en, f"{t.cut:g}")
    console.print(tab)


def _show_rules(rules: Any, version: int | None, json: bool) -> None:
    if json:
        emit_json({"version": version, **rules.model_dump(mode="json")})
        return
    _header(_("Lifecycle rules"), version)
    tab = Table()
    tab.add_column(_("rule"))
    tab.add_column(_("days"))
    for k, v in rules.model_dump().items():
        tab.add_row(k, str(v))
    console.print(tab)


@tiers_app.command("show")
def tiers_show(workspace: WorkspaceOpt = None, json: JsonOpt = False) -> None:
    """Show the tier scheme in force."""
    from kehu.analytics.schemes import get_tier_scheme

    ws = open_workspace(workspace)
    scheme, version = get_tier_scheme(ws)
    ws.close()
    _show_tiers(scheme, version, json)


@tiers_app.command("set")
def tiers_set(
    file: Annotated[Path, typer.Argument(help="Tier scheme (YAML or JSON).")],
    workspace: WorkspaceOpt = None, json: JsonOpt = False,
) -> None:
    """Validate a tier scheme and save it as the workspace's (a new version); it applies from
    the next 'kehu run'."""
    from kehu.analytics.schemes import parse_tier_scheme, save_tier_scheme

    scheme = parse_tier_scheme(read_yaml(file, _("Tier scheme file not found: {path}.")),
                               str(file))
    ws = open_workspace(workspace)
    row = save_tier_scheme(ws, scheme, cli_actor())
    ws.close()
    _show_tiers(scheme, row.version, json)


@rules_app.command("show")
def rules_show(workspace: WorkspaceOpt = None, json: JsonOpt = False) -> None:
    """Show the lifecycle rules in force."""
    from kehu.analytics.schemes import get_lifecycle_rules

    ws = open_workspace(workspace)
    rules, version = get_lifecycle_rules(ws)
    ws.close()
    _show_rules(rules, version, json)


@rules_app.command("set")
def rules_set(
    file: Annotated[Path, typer.Argument(help="Lifecycle rules (YAML or JSON).")],
    workspace: WorkspaceOpt = None, json: JsonOpt = False,
) -> None:
    """Validate lifecycle rules and save them as the workspace's (a new version); they apply
    from the next 'kehu run'."""
    from kehu.analytics.schemes import parse_lifecycle_rules, save_lifecycle_rules

    rules = parse_lifecycle_rules(
        read_yaml(file, _("Lifecycle rules file not found: {path}.")), str(file))
    ws = open_workspace(workspace)
    row = save_lifecycle_rules(ws, rules, cli_actor())
    ws.close()
    _show_rules(rules, row.version, json)


def register(app: typer.Typer) -> None:
    app.add_typer(tiers_app, name="tierscheme")
    app.add_typer(rules_app, name="lifecyclerules")
