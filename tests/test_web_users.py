"""User administration and one's own account (issue 6): administrators create, change, reset
and disable users in the web app; everyone changes their own password and makes API tokens.
Checked against the app store directly (real sign-in, real argon2 hashes)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from kehu.store.services import audit_log
from kehu.store.users import authenticate, list_users
from kehu.workspace import Workspace
from web_support import PASSWORD, ROLES, assert_problem, bearer, csrf, signed_in, web_app


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workspace]:
    w = Workspace.init(tmp_path / "ws", locale="en")
    yield w
    w.close()


@pytest.fixture
def app(ws: Workspace) -> Iterator[FastAPI]:
    application = web_app(ws, account_manager="E0001")
    with TestClient(application):
        yield application


def users(ws: Workspace) -> dict[str, object]:
    return {u.username: u for u in list_users(ws.store)}


def test_only_admins_reach_user_admin(app: FastAPI) -> None:
    for name, role in ROLES.items():
        c = signed_in(app, name)
        want = 200 if role == "admin" else 403
        assert c.get("/admin/users").status_code == want, name
        assert c.get("/api/v1/users").status_code == want, name
        assert ("/admin/users" in c.get("/account").text) is (role == "admin"), name
    assert TestClient(app).get("/api/v1/users").status_code == 401


def test_admin_creates_user_whose_shown_password_signs_in(app: FastAPI, ws: Workspace) -> None:
    ada = signed_in(app, "ada")
    r = ada.post("/admin/users", data={"username": "li.lei", "role": "analyst",
                                       "display_name": "李雷", "csrf_token": csrf(ada, "/")})
    assert r.status_code == 201
    password = re.search(r'id="new-password">.*?<code>([^<]+)</code>', r.text, re.S)
    assert password, r.text
    assert authenticate(ws.store, "li.lei", password.group(1)) is not None
    signed_in(app, "li.lei", password.group(1))
    assert any(e.action == "create" and e.object_id == "li.lei" and e.actor == "ada"
               for e in audit_log(ws.store))
    # same name again: a 422 naming the problem, nothing else changed
    r = ada.post("/admin/users", data={"username": "li.lei", "role": "viewer",
                                       "csrf_token": csrf(ada, "/")})
    assert r.status_code == 422 and "li.lei" in r.text
    assert users(ws)["li.lei"].role == "analyst"  # type: ignore[attr-defined]
    r = ada.post("/admin/users", data={"username": "bad name!", "role": "viewer",
                                       "csrf_token": csrf(ada, "/")})
    assert r.status_code == 422 and "username" in r.text
    r = ada.post("/admin/users", data={"username": "am2", "role": "account_manager",
                                       "csrf_token": csrf(ada, "/")})
    assert r.status_code == 422 and "employee" in r.text
    assert "am2" not in users(ws)


def test_admin_changes_role_and_disables(app: FastAPI, ws: Workspace) -> None:
    ada = signed_in(app, "ada")
    vic = signed_in(app, "vic")
    r = ada.post("/admin/users/vic", data={"role": "analyst", "is_active": "1",
                                           "display_name": "Vic", "csrf_token": csrf(ada, "/")},
                 follow_redirects=False)
    assert r.status_code == 303
    assert users(ws)["vic"].role == "analyst"  # type: ignore[attr-defined]
    assert vic.get("/api/v1/me").json()["role"] == "analyst"
    ada.post("/admin/users/vic", data={"role": "analyst", "csrf_token": csrf(ada, "/")})
    assert users(ws)["vic"].is_active is False  # type: ignore[attr-defined]
    assert vic.get("/api/v1/me").status_code == 401  # the session ended with the account
    changes = [e.details for e in audit_log(ws.store) if e.object_id == "vic"
               and e.action == "update" and e.actor == "ada"]
    assert {"before": {"role": "viewer", "is_active": True, "display_name": None,
                       "email": None, "employee_id": None},
            "after": {"role": "analyst", "is_active": True, "display_name": "Vic",
                      "email": None, "employee_id": None}} in changes
    assert any(c["after"]["is_active"] is False and c["before"]["is_active"] is True
               for c in changes)


def test_last_admin_cannot_be_demoted(app: FastAPI, ws: Workspace) -> None:
    ada = signed_in(app, "ada")
    r = ada.post("/admin/users/ada", data={"role": "viewer", "is_active": "1",
                                           "csrf_token": csrf(ada, "/")})
    assert r.status_code == 422 and "administrator" in r.text
    assert users(ws)["ada"].role == "admin"  # type: ignore[attr-defined]
    h = bearer(ws, "ada")
    assert_problem(TestClient(app).patch("/api/v1/users/ada", json={"is_active": False},
                                         headers=h), 400)
    assert_problem(TestClient(app).patch("/api/v1/users/nobody", json={"role": "viewer"},
                                         headers=h), 404)


def test_password_reset_ends_sessions_and_shows_new_one(app: FastAPI, ws: Workspace) -> None:
    ada, ann = signed_in(app, "ada"), signed_in(app, "ann")
    r = ada.post("/admin/users/ann/password", data={"csrf_token": csrf(ada, "/")})
    new = re.search(r"<code>([^<]+)</code>", r.text)
    assert r.status_code == 200 and new
    assert ann.get("/api/v1/me").status_code == 401
    assert authenticate(ws.store, "ann", PASSWORD) is None
    assert authenticate(ws.store, "ann", new.group(1)) is not None


def test_change_own_password(app: FastAPI, ws: Workspace) -> None:
    amy, other = signed_in(app, "amy"), signed_in(app, "amy")
    form = {"current": "wrong password", "new": "a new passphrase", "repeat": "a new passphrase"}
    r = amy.post("/account/password", data={**form, "csrf_token": csrf(amy, "/account")})
    assert r.status_code == 422 and authenticate(ws.store, "amy", PASSWORD) is not None
    r = amy.post("/account/password", data={**form, "current": PASSWORD, "repeat": "typo",
                                            "csrf_token": csrf(amy, "/account")})
    assert r.status_code == 422 and authenticate(ws.store, "amy", PASSWORD) is not None
    r = amy.post("/account/password", data={**form, "current": PASSWORD,
                                            "csrf_token": csrf(amy, "/account")})
    assert r.status_code == 200
    assert authenticate(ws.store, "amy", "a new passphrase") is not None
    assert amy.get("/api/v1/me").status_code == 200  # this session goes on
    assert other.get("/api/v1/me").status_code == 401  # the other one ended
    short = {"current": "a new passphrase", "new": "short"}
    assert_problem(TestClient(app).put("/api/v1/me/password", json=short,
                                       headers=bearer(ws, "amy")), 422)


def test_tokens_on_account_page(app: FastAPI) -> None:
    ann = signed_in(app, "ann")
    r = ann.post("/account/tokens", data={"name": "nightly export",
                                          "csrf_token": csrf(ann, "/account")})
    token = re.search(r'id="new-token">.*?<code>([^<]+)</code>', r.text, re.S)
    assert token and "nightly export" in r.text
    h = {"Authorization": f"Bearer {token.group(1)}"}
    assert TestClient(app).get("/api/v1/me", headers=h).json()["username"] == "ann"
    tid = re.search(r'/account/tokens/(\d+)/revoke', r.text)
    assert tid
    ann.post(f"/account/tokens/{tid.group(1)}/revoke", data={"csrf_token": csrf(ann, "/account")})
    assert TestClient(app).get("/api/v1/me", headers=h).status_code == 401


def test_api_creates_user(app: FastAPI, ws: Workspace) -> None:
    h = bearer(ws, "ada")
    r = TestClient(app).post("/api/v1/users", json={"username": "wang", "role": "viewer"},
                             headers=h)
    assert r.status_code == 201
    assert authenticate(ws.store, "wang", r.json()["password"]) is not None
    assert_problem(TestClient(app).post("/api/v1/users", json={"username": "x", "role": "boss"},
                                        headers=h), 422)
    assert TestClient(app).post("/api/v1/users", json={"username": "y"},
                                headers=bearer(ws, "ann")).status_code == 403


def test_account_page_in_chinese(app: FastAPI) -> None:
    ada = signed_in(app, "ada")
    page = ada.get("/account?lang=zh_CN").text
    assert 'lang="zh-CN"' in page and "修改密码" in page and "Change password" not in page
