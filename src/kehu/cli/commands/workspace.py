"""``kehu init``: create a workspace."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kehu.cli.common import JsonOpt
from kehu.cli.output import console, emit_json
from kehu.i18n import _
from kehu.workspace import Workspace


def init(
    path: Annotated[Path, typer.Argument(help="Folder of the new workspace.")],
    name: Annotated[str | None, typer.Option(help="Workspace name.")] = None,
    store_url: Annotated[str | None, typer.Option(
        "--store-url", help="SQLAlchemy URL of the app store (default: SQLite file in the "
        "workspace), e.g. postgresql+psycopg://user@127.0.0.1/kehu")] = None,
    locale: Annotated[str | None, typer.Option(help="zh_CN or en.")] = None,
    json: JsonOpt = False,
) -> None:
    """Create a workspace: settings file, warehouse folder and app store."""
    ws = Workspace.init(path, name=name, store_url=store_url, locale=locale)
    info = {"workspace": str(ws.root), "store": ws.store_url, "warehouse": str(ws.warehouse.root)}
    ws.close()
    if json:
        emit_json(info)
    else:
        console.print(_("Created workspace {path}").format(path=ws.root))


def register(app: typer.Typer) -> None:
    app.command("init")(init)
