"""The FastAPI application, built by :func:`create_app` — nothing is created at import time.

>>> import tempfile
>>> from kehu.workspace import Workspace
>>> ws = Workspace.init(tempfile.mkdtemp())
>>> app = create_app(ws.settings.model_copy(update={"web": ws.settings.web.model_copy(
...     update={"demo": True})}), ws)
>>> app.title
'kehu'
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import date, datetime
from pathlib import Path

from fastapi import Depends, FastAPI
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.middleware.sessions import SessionMiddleware

from kehu.i18n import N_, gettext
from kehu.settings import Settings
from kehu.web import errors
from kehu.web.deps import WebContext
from kehu.web.i18n import FILTERS, LocaleMiddleware
from kehu.web.routes import ROUTERS
from kehu.web.security import (
    SESSION_COOKIE,
    SecurityHeaders,
    cookie_secure,
    csrf_protect,
    signing_key,
)
from kehu.workspace import Workspace

STATIC = Path(__file__).parent / "static"

ROLE_LABELS = {"admin": N_("Administrator"), "analyst": N_("Analyst"), "manager": N_("Manager"),
               "account_manager": N_("Account manager"), "viewer": N_("Viewer")}


def role_label(role: str) -> str:
    """The translated name of a role."""
    return gettext(ROLE_LABELS.get(role, role))


def _templates() -> Jinja2Templates:
    env = Environment(loader=PackageLoader("kehu.web", "templates"),
                      autoescape=select_autoescape(["html"]), trim_blocks=True,
                      lstrip_blocks=True)
    env.globals["_"] = gettext
    env.globals["role_label"] = role_label
    env.filters.update(FILTERS)
    env.tests["date_like"] = lambda v: isinstance(v, date | datetime)
    return Jinja2Templates(env=env)


def create_app(settings: Settings, workspace: Workspace) -> FastAPI:
    """The web app of ``workspace`` with ``settings`` (usually ``workspace.settings``).

    Refuses to build without a real ``[web] secret_key`` outside demo mode.
    """
    web = settings.web
    key = signing_key(web)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        workspace.store.ensure_current()
        warming: threading.Thread | None = None
        stop = _Stop()
        if web.warm_on_start:
            from kehu.dashboard import warm

            warming = threading.Thread(target=_warm_quietly, args=(warm, workspace, stop),
                                       daemon=True, name="kehu-warm-dashboard")
            warming.start()
        yield
        if warming is not None:
            # a thread left inside DuckDB when the interpreter exits aborts the process:
            # stop it between steps, interrupt the query it is in, and wait for it
            stop.stop()
            warming.join(timeout=120)
        workspace.close()

    app = FastAPI(title="kehu", version=_version(), lifespan=lifespan,
                  openapi_url=None, docs_url=None, redoc_url=None,  # served behind login
                  dependencies=[Depends(csrf_protect)])
    app.state.kehu = WebContext(settings=settings, workspace=workspace, templates=_templates())
    errors.install(app)
    # outermost last: headers on everything, then the locale, then the session
    app.add_middleware(SessionMiddleware, secret_key=key, session_cookie=SESSION_COOKIE,
                       max_age=web.session_max_age, same_site="lax",
                       https_only=cookie_secure(web))
    app.add_middleware(LocaleMiddleware, default=settings.company.locale)
    app.add_middleware(SecurityHeaders)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    for router in ROUTERS():
        app.include_router(router)
    return app


def app_from_environment() -> FastAPI:
    """The app of the workspace named by ``KEHU_WORKSPACE`` with its settings (environment
    included): what each worker process of ``kehu serve --workers N`` builds."""
    import os

    ws = Workspace.open(os.environ["KEHU_WORKSPACE"])
    return create_app(ws.settings, ws)


class _Stop:
    """Asks the warming thread to stop: no further step, and the query it is in interrupted."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.workspace: Workspace | None = None

    def stop(self) -> None:
        self.event.set()
        if self.workspace is not None:
            self.workspace.interrupt()


def _warm_quietly(warm: Callable[[Workspace], object], workspace: Workspace,
                  stop: _Stop | None = None) -> None:
    """Warm the dashboard, the 360 lookup, the customer index and the account managers'
    portfolios; a failure only costs the first visitor the wait, so it is logged.

    It works on a workspace object of its own: the app's is closed at shutdown, and closing
    DuckDB connections that this thread is still using would crash the process."""
    from kehu.accounts.portfolio import warm_portfolios
    from kehu.customer360.lookup import prepare
    from kehu.customers.search import warm_index

    stop = stop or _Stop()
    own = Workspace(workspace.root, workspace.settings)
    stop.workspace = own
    steps: list[Callable[[Workspace], object]] = [
        warm,
        prepare,     # the customer 360 page's sorted copy of the data
        warm_index,  # the customer list's and the scope check's index
        warm_portfolios,  # the team page and the account managers' dashboards
    ]
    try:
        for step in steps:
            if stop.event.is_set():
                break
            step(own)
    except Exception:  # logged: the app serves on
        if not stop.event.is_set():
            logging.getLogger("kehu.web").exception("warming the dashboard failed")
    finally:
        stop.workspace = None
        own.close()


def _version() -> str:
    import kehu

    return str(kehu.__version__)
