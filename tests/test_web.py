"""The web app foundation: sign-in, sessions, CSRF, throttling, roles, tokens, errors, languages.

Runs against the real app (FastAPI's TestClient) with real argon2 hashes, on SQLite and the
PostgreSQL server (``store_url``)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from kehu.errors import KehuInputError
from kehu.settings import Settings, WebSection
from kehu.store.services import audit_log
from kehu.store.users import UserIn, create_user
from kehu.web import create_app
from kehu.workspace import Workspace

SECRET = "t" * 48
PASSWORD = "correct horse battery"


def _settings(ws: Workspace, **web: object) -> Settings:
    base = {"secret_key": SECRET, "cookie_secure": False, **web}
    return ws.settings.model_copy(update={"web": WebSection(**base)})  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def password_hash() -> str:
    """One real argon2id hash of PASSWORD, made once (hashing costs ~0.2 s by design)."""
    from kehu.store.users import hash_password

    return hash_password(PASSWORD)


@pytest.fixture
def ws(tmp_path: Path, store_url: str, password_hash: str,
       monkeypatch: pytest.MonkeyPatch) -> Iterator[Workspace]:
    import kehu.store.users

    w = Workspace.init(tmp_path / "ws", store_url=store_url, locale="en")
    monkeypatch.setattr(kehu.store.users, "hash_password", lambda _pw: password_hash)
    for name, role in [("ada", "admin"), ("vic", "viewer"), ("ann", "analyst")]:
        create_user(w.store, UserIn(username=name, role=role, password=PASSWORD, locale="en"),
                    actor="test")
    yield w
    w.close()


@pytest.fixture
def client(ws: Workspace) -> Iterator[TestClient]:
    with TestClient(create_app(_settings(ws, login_max_failures=3), ws)) as c:
        yield c


def csrf(c: TestClient, path: str = "/login") -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', c.get(path).text)
    assert m, "no CSRF token in the page"
    return m.group(1)


def login(c: TestClient, user: str = "ada", password: str = PASSWORD) -> object:
    return c.post("/login", data={"username": user, "password": password,
                                  "csrf_token": csrf(c)}, follow_redirects=False)


# -- sign-in and sessions --------------------------------------------------------------------

def test_login_logout(client: TestClient, ws: Workspace) -> None:
    r = client.get("/", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login?next=/"
    r = login(client)
    assert r.status_code == 303 and r.headers["location"] == "/"
    page = client.get("/")
    assert page.status_code == 200 and "Dashboard" in page.text and "ada" in page.text
    assert client.get("/api/v1/me").json()["username"] == "ada"
    r = client.post("/logout", data={"csrf_token": csrf(client, "/")}, follow_redirects=False)
    assert r.status_code == 303
    assert client.get("/", follow_redirects=False).status_code == 303
    assert client.get("/api/v1/me").status_code == 401
    actions = [(a.actor, a.action) for a in audit_log(ws.store)]
    assert ("ada", "login") in actions and ("ada", "logout") in actions


def test_wrong_password_and_unknown_user(client: TestClient, ws: Workspace) -> None:
    r = login(client, password="wrong password")
    assert r.status_code == 401 and "Wrong user name or password" in r.text
    assert login(client, user="nobody").status_code == 401
    assert client.get("/api/v1/me").status_code == 401
    assert ("ada", "login_failed") in [(a.actor, a.action) for a in audit_log(ws.store)]


def test_login_throttled_after_failures(client: TestClient) -> None:
    for _ in range(3):
        assert login(client, password="wrong password").status_code == 401
    r = login(client)  # even the right password is refused now
    assert r.status_code == 429
    assert 0 < int(r.headers["Retry-After"]) <= 900
    assert login(client, user="vic").status_code == 303  # other users are not locked out


def test_disabled_user_loses_session(client: TestClient, ws: Workspace) -> None:
    from kehu.store.users import disable_user

    login(client, "vic")
    assert client.get("/api/v1/me").status_code == 200
    disable_user(ws.store, "vic", actor="test")
    assert client.get("/api/v1/me").status_code == 401


def test_cookie_flags(ws: Workspace) -> None:
    with TestClient(create_app(_settings(ws, cookie_secure=True), ws),
                    base_url="https://testserver") as c:
        r = c.get("/login")
        cookie = r.headers["set-cookie"].lower()
        assert "kehu_session=" in cookie and "httponly" in cookie and "samesite=lax" in cookie
        assert "secure" in cookie
    with TestClient(create_app(_settings(ws, cookie_secure=False), ws)) as c:
        assert "secure" not in c.get("/login").headers["set-cookie"].lower()


def test_security_headers(client: TestClient) -> None:
    r = client.get("/login")
    assert r.headers["x-frame-options"] == "DENY"
    assert "script-src 'self'" in r.headers["content-security-policy"]


# -- CSRF --------------------------------------------------------------------------------------

def test_csrf_required_on_forms_and_htmx(client: TestClient) -> None:
    client.get("/login")
    r = client.post("/login", data={"username": "ada", "password": PASSWORD},
                    follow_redirects=False)
    assert r.status_code == 403 and "CSRF" in r.text
    r = client.post("/login", data={"username": "ada", "password": PASSWORD,
                                    "csrf_token": "forged"}, follow_redirects=False)
    assert r.status_code == 403
    assert login(client).status_code == 303
    token = csrf(client, "/")
    # the API with the session cookie: the header HTMX sends is required
    r = client.post("/api/v1/tokens", json={"name": "x"})
    assert r.status_code == 403
    assert r.headers["content-type"].startswith("application/problem+json")
    r = client.post("/api/v1/tokens", json={"name": "x"}, headers={"X-CSRF-Token": token})
    assert r.status_code == 201


def test_login_rotates_csrf_token(client: TestClient) -> None:
    before = csrf(client)
    login(client)
    assert csrf(client, "/") != before


# -- anonymous access and roles ----------------------------------------------------------------

def test_every_route_but_login_and_health_needs_sign_in(client: TestClient) -> None:
    from web_support import app_routes

    open_paths = {"/login", "/api/v1/health"}
    routes = app_routes(client.app)  # type: ignore[arg-type]
    assert len(routes) > 50  # every area's routes, not an empty walk
    for method, route_path, _route in routes:
        if route_path in open_paths:
            continue
        path = re.sub(r"\{\w+\}", "1", route_path)
        headers = {}
        if method not in ("GET", "HEAD"):
            headers["X-CSRF-Token"] = csrf(client)  # pass CSRF, so auth is what refuses
        r = client.request(method, path, headers=headers, follow_redirects=False)
        if path.startswith("/api/"):
            assert r.status_code == 401, (method, path, r.status_code)
            assert r.headers["www-authenticate"] == "Bearer"
        elif path in ("/logout", "/lang"):  # no private data: signs out / sets a cookie
            assert r.status_code in (303, 422), (method, path, r.status_code)
        else:
            assert r.status_code == 303, (method, path, r.status_code)
            assert r.headers["location"].startswith("/login?next=")
    assert client.get("/api/v1/health").json()["status"] == "ok"
    assert client.get("/login").status_code == 200


def test_roles(client: TestClient) -> None:
    login(client, "vic")
    r = client.get("/admin/audit")
    assert r.status_code == 403 and "viewer" in r.text
    assert client.get("/").status_code == 200
    client.post("/logout", data={"csrf_token": csrf(client, "/")})
    login(client, "ada")
    r = client.get("/admin/audit")
    assert r.status_code == 200 and "login" in r.text
    assert client.get("/admin/audit", headers={"HX-Request": "true"}).text.lstrip() \
        .startswith("<tr>")


def test_audit_log_filters_and_pages(client: TestClient, ws: Workspace) -> None:
    """Admins find entries by who, action, object and day, a page at a time; the filters
    agree with the store's log read directly."""
    from datetime import date, timedelta

    login(client, "ada")
    everything = audit_log(ws.store, limit=10_000)
    assert len({a.actor for a in everything}) > 1

    def shown(**params: object) -> list[str]:
        r = client.get("/admin/audit", params=params, headers={"HX-Request": "true"})
        assert r.status_code == 200, r.text
        return re.findall(r"<tr><td>[^<]*</td><td>([^<]*)</td><td>([^<]*)</td>", r.text)

    ada = [(a.actor, a.action) for a in everything if a.actor == "ada"]
    assert shown(actor="ada", limit=1000) == ada
    logins = [(a.actor, a.action) for a in everything if a.action == "login"]
    assert shown(action="login", limit=1000) == logins
    today = date.today()
    assert shown(since=(today + timedelta(days=1)).isoformat()) == []
    assert len(shown(since=(today - timedelta(days=1)).isoformat(),
                     until=(today + timedelta(days=1)).isoformat(), limit=1000)) == \
        len(everything)
    # a page at a time, newest first, with links to the next page keeping the filters
    yesterday = (today - timedelta(days=1)).isoformat()
    page = client.get("/admin/audit", params={"limit": 2, "since": yesterday}).text
    assert 'rel="next"' in page and f"since={yesterday}" in page and "page=2" in page
    everything = [(a.actor, a.action) for a in audit_log(ws.store, limit=10_000)]
    assert shown(limit=2, since=yesterday, page=2) == everything[2:4]
    assert client.get("/admin/audit", params={"limit": 0}).status_code in (400, 422)


# -- API tokens and errors ----------------------------------------------------------------------

def test_bearer_token_then_revoke(client: TestClient, ws: Workspace) -> None:
    login(client, "ann")
    h = {"X-CSRF-Token": csrf(client, "/")}
    made = client.post("/api/v1/tokens", json={"name": "nightly export"}, headers=h).json()
    token = made["token"]
    assert token.startswith("kehu_") and made["name"] == "nightly export"
    assert "token" not in client.get("/api/v1/tokens").json()[0]
    script = TestClient(client.app)  # no cookies: a script
    bearer = {"Authorization": f"Bearer {token}"}
    assert script.get("/api/v1/me", headers=bearer).json()["username"] == "ann"
    assert script.get("/api/v1/openapi.json", headers=bearer).json()["info"]["title"] == "kehu"
    r = script.delete(f"/api/v1/tokens/{made['id']}", headers=bearer)  # no CSRF for tokens
    assert r.status_code == 204
    r = script.get("/api/v1/me", headers=bearer)
    assert r.status_code == 401
    assert script.get("/api/v1/me", headers={"Authorization": "Bearer kehu_nope"}) \
        .status_code == 401
    log = [(a.actor, a.action, a.object_type) for a in audit_log(ws.store)]
    assert ("ann", "create", "api_token") in log
    assert ("ann (token)", "revoke", "api_token") in log


def test_problem_json(client: TestClient) -> None:
    r = client.get("/api/v1/me")
    body = r.json()
    assert r.headers["content-type"] == "application/problem+json"
    assert body["type"] == "about:blank" and body["title"] == "Unauthorized"
    assert body["status"] == 401 and body["detail"]
    login(client, "ann")
    h = {"X-CSRF-Token": csrf(client, "/")}
    r = client.delete("/api/v1/tokens/999", headers=h)
    assert r.status_code == 404 and r.json()["title"] == "Not Found"
    r = client.post("/api/v1/tokens", json={"name": ""}, headers=h)
    assert r.status_code == 422 and r.json()["errors"][0]["loc"][-1] == "name"
    assert client.get("/api/v1/nothing-here").json()["status"] == 404
    page = client.get("/nothing-here")
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")


# -- settings -----------------------------------------------------------------------------------

def test_refuses_default_secret_outside_demo(ws: Workspace) -> None:
    for bad in ("", "changethis", "short"):
        with pytest.raises(KehuInputError, match="secret_key"):
            create_app(_settings(ws, secret_key=bad), ws)
    app = create_app(_settings(ws, secret_key="", demo=True), ws)
    with TestClient(app) as c:
        r = c.get("/login")
        assert "Demo mode" in r.text and "secure" not in r.headers["set-cookie"].lower()


# -- languages ----------------------------------------------------------------------------------

def test_language_from_browser_switch_and_user(client: TestClient, ws: Workspace) -> None:
    assert 'lang="en"' in client.get("/login").text  # workspace default: en
    zh = client.get("/login", headers={"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5"}).text
    assert 'lang="zh-CN"' in zh
    assert 'lang="zh-CN"' in client.get("/login?lang=zh_CN").text
    r = client.post("/lang", data={"lang": "zh_CN", "next": "/login",
                                   "csrf_token": csrf(client)}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login"
    assert 'lang="zh-CN"' in client.get("/login").text  # the cookie remembers it
    client.post("/lang", data={"lang": "en", "csrf_token": csrf(client)})
    assert 'lang="en"' in client.get("/login").text
    # a signed-in user's choice is saved with the user and wins over the cookie
    login(client, "ann")
    client.post("/lang", data={"lang": "zh_CN", "csrf_token": csrf(client, "/")})
    client.cookies.set("kehu_lang", "en")
    assert 'lang="zh-CN"' in client.get("/").text
    assert 'lang="en"' in client.get("/?lang=en").text
    from kehu.store.users import list_users

    assert {u.username: u.locale for u in list_users(ws.store)}["ann"] == "zh_CN"


def test_locale_formatting() -> None:
    from datetime import date

    from kehu.web.i18n import day, money, number

    assert money(1234567.891, "zh_CN") == "¥1,234,567.89"
    assert money(-5, "en", digits=0) == "-¥5"
    assert number(0.1234, "zh_CN", percent=True, digits=1) == "12.3%"
    assert day(date(2025, 3, 4), "zh_CN") == "2025年3月4日"
    assert day(date(2025, 3, 4), "en") == "Mar 4, 2025"



def test_dashboard_headline_chart_and_table(tmp_path: Path, password_hash: str,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import kehu.store.users
    from kehu import datasets

    w = Workspace.init(tmp_path / "ws", locale="zh_CN")
    datasets.load(w, "cdnow_sample")
    monkeypatch.setattr(kehu.store.users, "hash_password", lambda _pw: password_hash)
    create_user(w.store, UserIn(username="mia", role="manager", password=PASSWORD),
                actor="test")
    create_user(w.store, UserIn(username="amy", role="account_manager", password=PASSWORD,
                                employee_id="E1"), actor="test")
    with TestClient(create_app(_settings(w), w)) as c:
        login(c, "mia")
        page = c.get("/").text
        assert 'lang="zh-CN"' in page and "月份" in page  # a known Chinese string
        assert "data-echarts=" in page and "vendor/echarts.min.js" in page
        assert "¥" in page and "<table" in page and "2,357" in page  # customers, as a table
        assert c.get("/static/vendor/echarts.min.js").status_code == 200
        assert "月份" not in c.get("/?lang=en").text
        c.post("/logout", data={"csrf_token": csrf(c, "/")})
        login(c, "amy")  # account managers never get the all-customer figures
        page = c.get("/").text
        assert "2,357" not in page and "data-echarts=" not in page
    w.close()
