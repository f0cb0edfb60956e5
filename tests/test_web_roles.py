"""Who may reach which route (issue 6): one table, every route of the app in it, every role
tried on every route with its own API token. A route missing from the table fails the test,
so a new route has to say who may use it.

A refused role gets 403 (problem+json for the API) before anything is read or written; an
admitted role gets anything but 401/403 (path values here name nothing, so most answers are
404 or 422: being let in is what is checked, not the result). Anonymous requests are checked
in ``test_web.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from kehu.workspace import Workspace
from web_support import ROLES, app_routes, bearer, web_app

ALL = frozenset(ROLES.values())
ADMIN = frozenset({"admin"})
ANALYSTS = frozenset({"admin", "analyst"})
PLANNERS = frozenset({"admin", "analyst", "manager"})
APPROVERS = frozenset({"admin", "manager"})
READERS = frozenset({"admin", "analyst", "manager", "viewer"})
STAFF = frozenset({"admin", "analyst", "manager", "account_manager"})

#: (method, path) -> the roles admitted; the policy of docs/web.md, written out
TABLE: dict[tuple[str, str], frozenset[str]] = {
    ("GET", "/"): ALL,
    ("GET", "/admin/audit"): ADMIN,
    ("GET", "/customers"): ALL,
    ("GET", "/customers/{customer_id}"): ALL,
    ("POST", "/customers/{customer_id}/notes"): STAFF,
    ("POST", "/customers/{customer_id}/interactions"): STAFF,
    ("POST", "/customers/{customer_id}/tasks"): STAFF,
    ("GET", "/explorer"): READERS,
    ("GET", "/explorer/export"): READERS,
    ("GET", "/segments"): PLANNERS,
    ("GET", "/segments/new"): PLANNERS,
    ("POST", "/segments/preview"): PLANNERS,
    ("POST", "/segments/save"): ANALYSTS,
    ("GET", "/segments/compare"): PLANNERS,
    ("GET", "/segments/{name}"): PLANNERS,
    ("GET", "/segments/{name}/export"): PLANNERS,
    ("POST", "/segments/{name}/delete"): ANALYSTS,
    ("GET", "/campaigns"): PLANNERS,
    ("GET", "/campaigns/new"): ANALYSTS,
    ("POST", "/campaigns/new"): ANALYSTS,
    ("GET", "/campaigns/{campaign_id}/edit"): ANALYSTS,
    ("POST", "/campaigns/{campaign_id}/edit"): ANALYSTS,
    ("GET", "/campaigns/{campaign_id}"): PLANNERS,
    ("POST", "/campaigns/{campaign_id}/submit"): ANALYSTS,
    ("POST", "/campaigns/{campaign_id}/approve"): APPROVERS,
    ("POST", "/campaigns/{campaign_id}/reject"): APPROVERS,
    ("POST", "/campaigns/{campaign_id}/launch"): ANALYSTS,
    ("GET", "/inbox"): STAFF,
    ("GET", "/team"): PLANNERS,
    ("POST", "/inbox/{task_id}/done"): STAFF,
    ("POST", "/inbox/{task_id}/dismiss"): STAFF,
    ("POST", "/inbox/{task_id}/snooze"): STAFF,
    ("GET", "/data"): ANALYSTS,
    ("GET", "/data/imports/{import_id}"): ANALYSTS,
    ("GET", "/data/imports/{import_id}/rejects.csv"): ANALYSTS,
    ("GET", "/data/quality"): ANALYSTS,
    ("GET", "/identity"): ANALYSTS,
    ("POST", "/identity/reviews/{pair_id}"): ANALYSTS,
    ("POST", "/identity/reviews/{pair_id}/reopen"): ANALYSTS,
    ("GET", "/identity/journal"): ANALYSTS,
    ("POST", "/identity/journal/{entry_id}/undo"): ANALYSTS,
    ("GET", "/models"): ANALYSTS,
    ("GET", "/models/{model_id}"): ANALYSTS,
    ("GET", "/settings"): ANALYSTS,
    ("POST", "/settings/{key}"): ANALYSTS,
    ("GET", "/admin/users"): ADMIN,
    ("POST", "/admin/users"): ADMIN,
    ("POST", "/admin/users/{username}"): ADMIN,
    ("POST", "/admin/users/{username}/password"): ADMIN,
    ("GET", "/account"): ALL,
    ("POST", "/account/password"): ALL,
    ("POST", "/account/tokens"): ALL,
    ("POST", "/account/tokens/{token_id}/revoke"): ALL,
    # API
    ("GET", "/api/v1/openapi.json"): ALL,
    ("GET", "/api/v1/me"): ALL,
    ("GET", "/api/v1/tokens"): ALL,
    ("POST", "/api/v1/tokens"): ALL,
    ("DELETE", "/api/v1/tokens/{token_id}"): ALL,
    ("PUT", "/api/v1/me/password"): ALL,
    ("GET", "/api/v1/users"): ADMIN,
    ("POST", "/api/v1/users"): ADMIN,
    ("PATCH", "/api/v1/users/{username}"): ADMIN,
    ("GET", "/api/v1/customers"): ALL,
    ("GET", "/api/v1/customers/{customer_id}"): ALL,
    ("GET", "/api/v1/customers/{customer_id}/timeline"): ALL,
    ("POST", "/api/v1/customers/{customer_id}/notes"): STAFF,
    ("POST", "/api/v1/customers/{customer_id}/interactions"): STAFF,
    ("POST", "/api/v1/customers/{customer_id}/tasks"): STAFF,
    ("GET", "/api/v1/scores/{customer_id}"): ALL,
    ("GET", "/api/v1/dashboard"): READERS,
    ("GET", "/api/v1/tasks"): ALL,
    ("GET", "/api/v1/inbox"): STAFF,
    ("GET", "/api/v1/portfolios"): PLANNERS,
    ("POST", "/api/v1/tasks/{task_id}/done"): STAFF,
    ("POST", "/api/v1/tasks/{task_id}/snooze"): STAFF,
    ("POST", "/api/v1/tasks/{task_id}/dismiss"): STAFF,
    ("POST", "/api/v1/cube"): READERS,
    ("GET", "/api/v1/cube/schema"): READERS,
    ("GET", "/api/v1/segments"): PLANNERS,
    ("POST", "/api/v1/segments/preview"): PLANNERS,
    ("GET", "/api/v1/segments/{name}"): PLANNERS,
    ("PUT", "/api/v1/segments/{name}"): ANALYSTS,
    ("DELETE", "/api/v1/segments/{name}"): ANALYSTS,
    ("GET", "/api/v1/segments/{name}/members"): PLANNERS,
    ("GET", "/api/v1/campaigns"): PLANNERS,
    ("POST", "/api/v1/campaigns/plan"): PLANNERS,
    ("POST", "/api/v1/campaigns"): ANALYSTS,
    ("GET", "/api/v1/campaigns/{campaign_id}"): PLANNERS,
    ("PUT", "/api/v1/campaigns/{campaign_id}"): ANALYSTS,
    ("POST", "/api/v1/campaigns/{campaign_id}/submit"): ANALYSTS,
    ("POST", "/api/v1/campaigns/{campaign_id}/approve"): APPROVERS,
    ("POST", "/api/v1/campaigns/{campaign_id}/reject"): APPROVERS,
    ("POST", "/api/v1/campaigns/{campaign_id}/launch"): ANALYSTS,
    ("GET", "/api/v1/campaigns/{campaign_id}/results"): PLANNERS,
    ("GET", "/api/v1/imports"): ANALYSTS,
    ("GET", "/api/v1/imports/{import_id}/rejects"): ANALYSTS,
    ("GET", "/api/v1/identity/status"): ANALYSTS,
    ("GET", "/api/v1/identity/reviews"): ANALYSTS,
    ("POST", "/api/v1/identity/reviews/{pair_id}"): ANALYSTS,
    ("POST", "/api/v1/identity/reviews/{pair_id}/reopen"): ANALYSTS,
    ("GET", "/api/v1/identity/journal"): ANALYSTS,
    ("POST", "/api/v1/identity/journal/{entry_id}/undo"): ANALYSTS,
    ("GET", "/api/v1/models"): ANALYSTS,
    ("GET", "/api/v1/models/{model_id}"): ANALYSTS,
}
#: reachable without signing in (tested in test_web.py), or changing only the caller's own
#: session and language
OPEN = {("GET", "/login"), ("POST", "/login"), ("POST", "/logout"), ("POST", "/lang"),
        ("GET", "/api/v1/health")}
#: path values that name nothing, so an admitted request changes nothing
SAMPLES = {"customer_id": "NO-SUCH-CUSTOMER", "name": "no-such-segment",
           "campaign_id": "NO-SUCH-CAMPAIGN", "task_id": "999999", "import_id": "no-such-import",
           "model_id": "no-such-model", "key": "no-such-setting", "username": "no-such-user",
           "token_id": "999999", "pair_id": "999999", "entry_id": "999999"}


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    w = Workspace.init(Path(tmp_path_factory.mktemp("roles")) / "ws", locale="en")
    yield w
    w.close()


@pytest.fixture(scope="module")
def app(ws: Workspace) -> Iterator[FastAPI]:
    application = web_app(ws, account_manager="E0001")
    with TestClient(application):
        yield application


def test_every_route_is_in_the_table(app: FastAPI) -> None:
    routes = {(m, p) for m, p, _r in app_routes(app) if m != "HEAD"}
    assert routes - OPEN - set(TABLE) == set(), "routes without a role rule"
    assert set(TABLE) - routes == set(), "rules for routes that no longer exist"


@pytest.mark.parametrize("role", sorted(ALL))
def test_each_role_is_admitted_or_refused_as_the_table_says(app: FastAPI, ws: Workspace,
                                                             role: str) -> None:
    name = next(n for n, r in ROLES.items() if r == role)
    headers = bearer(ws, name)
    c = TestClient(app)
    wrong: list[str] = []
    for (method, path), admitted in TABLE.items():
        url = path.format(**SAMPLES)
        r = c.request(method, url, headers=headers, follow_redirects=False)
        if role in admitted:
            if r.status_code in (401, 403):
                wrong.append(f"{method} {path}: admitted, got {r.status_code}")
        elif r.status_code != 403:
            wrong.append(f"{method} {path}: refused, got {r.status_code}")
        elif path.startswith("/api/") and \
                r.headers["content-type"] != "application/problem+json":
            wrong.append(f"{method} {path}: 403 not as problem+json")
    assert wrong == []


def test_a_refused_write_changes_nothing(app: FastAPI, ws: Workspace) -> None:
    """A viewer's user creation is refused before the body is read: no user appears."""
    from kehu.store.users import list_users

    before = {u.username for u in list_users(ws.store)}
    r = TestClient(app).post("/api/v1/users", json={"username": "sneaky", "role": "admin"},
                             headers=bearer(ws, "vic"))
    assert r.status_code == 403
    assert {u.username for u in list_users(ws.store)} == before
