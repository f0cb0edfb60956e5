"""Options shared by commands, declared once."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated

import typer

from kehu.workspace import Workspace

WorkspaceOpt = Annotated[
    Path | None,
    typer.Option("--workspace", "-w", help="Workspace folder (default: $KEHU_WORKSPACE or the "
                 "current folder).", show_default=False),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]


#: workspaces opened by the running command, closed by ``kehu.cli.main.run`` at the end
_OPENED: list[Workspace] = []


def open_workspace(path: Path | None) -> Workspace:
    ws = Workspace.find(path)
    _OPENED.append(ws)
    return ws


def close_workspaces() -> None:
    """Close every workspace the command opened (their engines' native threads must stop
    before the interpreter exits, or a C++ runtime may abort the process at exit)."""
    while _OPENED:
        _OPENED.pop().close()


def parse_date(name: str, value: str | None) -> date | None:
    """A date option (``None`` stays ``None``), or the standard message naming it."""
    from kehu.errors import KehuInputError
    from kehu.i18n import _

    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise KehuInputError(_("The '{name}' parameter must be a date like 2025-06-30. Got "
                               "{v!r} instead.").format(name=name, v=value)) from None


def require_positive(name: str, value: int) -> None:
    """Refuse a count parameter below 1 with the standard message."""
    from kehu.errors import KehuInputError
    from kehu.i18n import _

    if value < 1:
        raise KehuInputError(_("The '{name}' parameter must be an int >= 1. Got {v} instead.")
                             .format(name=name, v=value))


def cli_actor() -> str:
    """Who the audit log names for a command run from the shell: ``cli:<login>``."""
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no login name (containers)
        return "cli"
