"""``kehu serve`` (the web app) and ``kehu user create/list/disable`` (who may sign in)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.table import Table

from kehu.cli.common import JsonOpt, WorkspaceOpt, cli_actor, open_workspace
from kehu.cli.output import console, emit_json
from kehu.i18n import _

user_app = typer.Typer(help="Manage who may sign in to the web app.", no_args_is_help=True)

ROLES_HELP = "admin, analyst, manager, account_manager (sees only assigned customers) or viewer."


def serve(
    workspace: WorkspaceOpt = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on (default: [web] "
                                             "host).", show_default=False)] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: [web] port).",
                                             show_default=False)] = None,
    demo: Annotated[bool, typer.Option("--demo", help="Demo mode: no secret key needed, "
                                       "cookies over plain http on 127.0.0.1.")] = False,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Worker processes (one per "
                                         "core serves most; each keeps its own caches).")] = 1,
) -> None:
    """Start the web app (pages and the /api/v1 JSON API) with uvicorn."""
    import os
    import secrets

    import uvicorn

    from kehu.web import create_app

    ws = open_workspace(workspace)
    web = ws.settings.web.model_copy(update={k: v for k, v in
                                             {"host": host, "port": port}.items() if v})
    if demo:
        web = web.model_copy(update={"demo": True})
    if workers > 1 and not web.secret_key.get_secret_value():
        # demo without a key: one random key for all workers, or sessions break between them
        web = web.model_copy(update={"secret_key": secrets.token_urlsafe(48)})
    settings = ws.settings.model_copy(update={"web": web})
    app = create_app(settings, ws)  # refuses a missing secret key before listening
    console.print(_("kehu web app on http://{host}:{port}/ (Ctrl+C to stop)").format(
        host=web.host, port=web.port))
    if workers == 1:
        uvicorn.run(app, host=web.host, port=web.port, log_level="info",
                    timeout_keep_alive=web.keep_alive_seconds)
        return
    ws.close()
    os.environ.update({"KEHU_WORKSPACE": str(ws.root), "KEHU_WEB__DEMO": str(web.demo).lower(),
                       "KEHU_WEB__SECRET_KEY": web.secret_key.get_secret_value()})
    uvicorn.run("kehu.web.app:app_from_environment", factory=True, host=web.host,
                port=web.port, workers=workers, log_level="info",
                timeout_keep_alive=web.keep_alive_seconds)


@user_app.command("create")
def user_create(
    username: Annotated[str, typer.Argument(help="Sign-in name.")],
    role: Annotated[str, typer.Option(help=ROLES_HELP)] = "viewer",
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="Read the password "
                                                 "from standard input (else you are "
                                                 "asked).")] = False,
    employee_id: Annotated[str | None, typer.Option(help="Employee id (account managers see "
                                                    "the customers assigned to it).")] = None,
    email: Annotated[str | None, typer.Option(help="E-mail address.")] = None,
    display_name: Annotated[str | None, typer.Option(help="Name shown in the app.")] = None,
    locale: Annotated[str | None, typer.Option(help="zh_CN or en (default: [company] "
                                               "locale).", show_default=False)] = None,
    workspace: WorkspaceOpt = None,
    json: JsonOpt = False,
) -> None:
    """Create a user who may sign in to the web app."""
    from pydantic import ValidationError

    from kehu.errors import KehuInputError
    from kehu.store.users import UserIn, create_user

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt(_("Password"), hide_input=True, confirmation_prompt=True)
    ws = open_workspace(workspace)
    try:
        spec = UserIn(username=username, role=role, password=password,
                      employee_id=employee_id, email=email, display_name=display_name,
                      locale=locale or ws.settings.company.locale)
    except ValidationError as exc:
        raise KehuInputError("; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
            + ". " + _("Roles: {roles}").format(roles=ROLES_HELP)) from None
    user = create_user(ws.store, spec, actor=cli_actor())
    ws.close()
    if json:
        emit_json(user.model_dump(mode="json"))
        return
    console.print(_("User {name} created ({role}).").format(name=user.username, role=user.role))


@user_app.command("list")
def user_list(workspace: WorkspaceOpt = None, json: JsonOpt = False) -> None:
    """List the users of the web app."""
    from kehu.store.users import list_users

    ws = open_workspace(workspace)
    users = list_users(ws.store)
    ws.close()
    if json:
        emit_json([u.model_dump(mode="json") for u in users])
        return
    t = Table()
    for label in (_("user"), _("name"), _("role"), _("employee"), _("language"), _("active")):
        t.add_column(label)
    for u in users:
        t.add_row(u.username, u.display_name or "", u.role, u.employee_id or "", u.locale,
                  _("yes") if u.is_active else _("no"))
    console.print(t)


@user_app.command("disable")
def user_disable(
    username: Annotated[str, typer.Argument(help="Sign-in name.")],
    workspace: WorkspaceOpt = None,
) -> None:
    """Disable a user: their sessions and API tokens stop working at once."""
    from kehu.store.users import disable_user

    ws = open_workspace(workspace)
    disable_user(ws.store, username, actor=cli_actor())
    ws.close()
    console.print(_("User {name} disabled.").format(name=username))


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.add_typer(user_app, name="user")
