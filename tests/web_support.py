"""What the web tests share: a demo workspace with one analysis run, the app built over it
with one user per role, and signed-in clients (real sign-in through the login form).

>>> ROLES["amy"]
'account_manager'
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

from kehu.analytics.run import analysis_run
from kehu.dashboard import clear_cache
from kehu.demo import generate
from kehu.ingest.manifest import load_manifest
from kehu.settings import WebSection
from kehu.store.users import TokenIn, UserIn, create_token, create_user, list_users
from kehu.web import create_app
from kehu.workspace import Workspace

SECRET = "p" * 48
PASSWORD = "correct horse battery"
#: test users by name and their roles (``amy`` is an account manager, ``max`` a manager)
ROLES = {"ada": "admin", "ann": "analyst", "max": "manager", "amy": "account_manager",
         "vic": "viewer"}


#: workspaces generated in this test session, by (customers, seed): each module gets a copy
_TEMPLATES: dict[tuple[int, int], Path] = {}


def demo_workspace(base: Path, customers: int = 3_000, seed: int = 21) -> Workspace:
    """A generated retail workspace under ``base`` with its data loaded and analysed.

    Generating, importing and analysing takes ~40 s, so it happens once per test session
    and size; every caller gets its own copy (files and app store), free to change it."""
    import atexit
    import shutil
    import tempfile

    key = (customers, seed)
    template = _TEMPLATES.get(key)
    if template is None:
        root = Path(tempfile.mkdtemp(prefix="kehu-web-demo-"))
        atexit.register(shutil.rmtree, root, True)
        s = generate("retail", customers, seed=seed, out=root / "src")
        w = Workspace.init(root / "ws", locale="en")
        load_manifest(w, s.manifest)
        analysis_run(w)
        w.close()
        template = _TEMPLATES[key] = root
    for part in ("src", "ws"):
        shutil.copytree(template / part, base / part)
    clear_cache()
    return Workspace.open(base / "ws")


def busiest_manager(ws: Workspace) -> str:
    """The employee id of the account manager with the most customers."""
    customers = ws.warehouse.read("customers").to_pandas()
    return str(customers.account_manager_id.value_counts().index[0])


def web_app(ws: Workspace, account_manager: str | None = None) -> FastAPI:
    """The app over ``ws`` with the users of :data:`ROLES` (password :data:`PASSWORD`);
    ``amy`` looks after ``account_manager``'s customers (default: the busiest manager)."""
    emp = account_manager or busiest_manager(ws)
    known = {u.username for u in list_users(ws.store)}
    for name, role in ROLES.items():
        if name not in known:
            create_user(ws.store, UserIn(username=name, role=role, password=PASSWORD,
                                         locale="en",
                                         employee_id=emp if role == "account_manager" else None),
                        actor="test")
    settings = ws.settings.model_copy(update={"web": WebSection(
        secret_key=SECRET, cookie_secure=False, login_max_failures=1000)})
    return create_app(settings, ws)


def csrf(c: TestClient, path: str = "/login") -> str:
    """The CSRF token of the page at ``path`` (send it as the form field ``csrf_token`` or the
    ``X-CSRF-Token`` header)."""
    m = re.search(r'name="csrf_token" value="([^"]+)"', c.get(path).text)
    assert m, "no CSRF token in the page"
    return m.group(1)


def signed_in(app: FastAPI, user: str, password: str = PASSWORD) -> TestClient:
    """A client signed in as ``user`` through the login form."""
    c = TestClient(app)
    r = c.post("/login", data={"username": user, "password": password, "csrf_token": csrf(c)},
               follow_redirects=False)
    assert r.status_code == 303, r.text
    return c


def bearer(ws: Workspace, user: str) -> dict[str, str]:
    """An ``Authorization`` header with a new API token of ``user``."""
    uid = {u.username: u.id for u in list_users(ws.store)}[user]
    made = create_token(ws.store, uid, TokenIn(name=f"test {user}"), actor="test")
    return {"Authorization": f"Bearer {made.token}"}


def assert_problem(r: Any, status: int) -> dict[str, Any]:
    """``r`` is an RFC 9457 problem with ``status`` and a detail; its body."""
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = r.json()
    assert body["status"] == status and body["detail"]
    return body


def app_routes(app: FastAPI) -> list[tuple[str, str, Any]]:
    """Every (method, path, route) of ``app``, routers included. FastAPI 0.165 keeps included
    routers as lazy ``_IncludedRouter`` entries in ``app.routes``, so a plain walk over
    ``app.routes`` finds no ``APIRoute`` at all."""
    from fastapi.routing import APIRoute

    found: list[tuple[str, str, Any]] = []

    def walk(routes: Any) -> None:
        for r in routes:
            if isinstance(r, APIRoute):
                found.extend((m, r.path, r) for m in sorted(r.methods or ()))
            elif hasattr(r, "effective_route_contexts"):
                for c in r.effective_route_contexts():
                    if hasattr(c, "effective_route_contexts"):
                        walk([c])
                    elif getattr(c, "methods", None):
                        found.extend((m, c.path, c) for m in sorted(c.methods))

    walk(app.routes)
    assert found, "no routes found: has FastAPI changed how it keeps them?"
    return found
