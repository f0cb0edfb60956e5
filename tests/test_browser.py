"""The web app in a real browser (issue 6): Debian's chromium, headless, driven by Playwright
against the app served by uvicorn on a demo workspace — sign in, the dashboard's charts with
no console errors, zh ↔ en, the audit log, sign out, a wrong password, the customer list and
360 page, and an account manager refused another manager's customer.

Full-page screenshots of the main pages go to ``build/screenshots/`` for review. Pages that
are not built yet (a 404) are expected failures; once they answer, these tests hold them.
Locally a missing chromium skips this module; with ``CI=true`` it fails (see
``browser_support``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from pydantic import SecretStr

from browser_support import (
    ConsoleWatch,
    LiveServer,
    browser_unavailable,
    chromium_path,
    html_lang,
    launch_args,
    open_or_xfail,
    path_of,
    screenshot,
    sign_in,
    sign_out,
    switch_language,
)
from kehu.settings import WebSection
from kehu.store.users import UserIn, create_user
from kehu.workspace import Workspace

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.browser

PASSWORD = "correct horse battery"
SECRET = "b" * 48
#: one language to start from, whatever the workspace's default (zh_CN in the demo)
START_LOCALE = "en"


@dataclass(frozen=True)
class Site:
    """The running app and what the tests need to know about its data."""

    url: str
    #: an account manager's user name -> one customer id assigned to them
    owns: dict[str, str]
    #: customer id -> name
    names: dict[str, str]


@pytest.fixture(scope="module")
def chromium() -> str:
    """Debian's chromium and Playwright, or a skip (a failure under CI=true) saying how to
    install them. Requested first, so a missing browser costs no demo data."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as exc:
        browser_unavailable(f"the playwright package is not importable ({exc})")
    return chromium_path()


@pytest.fixture(scope="module")
def browser(chromium: str) -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium, headless=True, args=launch_args())
        yield b
        b.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """A retail demo of 2,000 customers, analysed, with an analyst, an admin and two account
    managers who own customers, served on a free loopback port."""
    from kehu.analytics.run import analysis_run
    from kehu.demo import generate
    from kehu.ingest.manifest import load_manifest
    from kehu.web import create_app

    base = tmp_path_factory.mktemp("browser")
    demo = generate("retail", 2_000, seed=7, out=base / "src")
    ws = Workspace.init(base / "ws")
    load_manifest(ws, demo.manifest)
    analysis_run(ws)

    customers = ws.warehouse.read("customers").to_pandas()
    managed = customers.dropna(subset=["account_manager_id"]).sort_values("customer_id")
    first, second = sorted(managed["account_manager_id"].unique())[:2]
    owns = {user: str(managed[managed["account_manager_id"] == emp]["customer_id"].iloc[0])
            for user, emp in (("amy", first), ("bob", second))}
    names = dict(zip(managed["customer_id"].astype(str), managed["name"].astype(str),
                     strict=True))
    for username, role, employee in [("ann", "analyst", None), ("ada", "admin", None),
                                     ("amy", "account_manager", first),
                                     ("bob", "account_manager", second)]:
        create_user(ws.store, UserIn(username=username, role=role, password=PASSWORD,
                                     employee_id=employee, locale=START_LOCALE),
                    actor="test")

    web = WebSection(secret_key=SecretStr(SECRET), cookie_secure=False)
    app = create_app(ws.settings.model_copy(update={"web": web}), ws)
    with LiveServer(app) as server:  # closes the workspace on the way out
        yield Site(server.url, owns, names)


@pytest.fixture
def page(chromium: str, browser: Browser, site: Site) -> Iterator[Page]:
    """A fresh browser context (no cookies) asking for English, as a desk browser would."""
    context = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    p = context.new_page()
    yield p
    context.close()


@pytest.fixture
def console(page: Page) -> ConsoleWatch:
    return ConsoleWatch().attach(page)


# -- sign in, dashboard, languages, audit, sign out ---------------------------------------------


def test_sign_in_and_dashboard_charts_without_console_errors(page: Page, console: ConsoleWatch,
                                                              site: Site) -> None:
    page.goto(f"{site.url}/")
    assert path_of(page.url) == "/login?next=/"
    screenshot(page, "login")
    assert console.take() == []

    sign_in(page, site.url, "ann", PASSWORD)
    assert path_of(page.url) == "/"
    # ECharts marks every container it draws in; each holds an <svg> or a <canvas>
    page.wait_for_selector("[_echarts_instance_] svg, [_echarts_instance_] canvas")
    charts = page.locator("[_echarts_instance_]")
    assert charts.count() >= 1
    assert page.locator("[_echarts_instance_] svg, [_echarts_instance_] canvas").count() >= 1
    page.wait_for_load_state("networkidle")
    screenshot(page, "dashboard")
    assert console.take() == []


def test_switch_zh_and_en(page: Page, console: ConsoleWatch, site: Site) -> None:
    sign_in(page, site.url, "ann", PASSWORD)
    assert html_lang(page) == "en"
    assert page.inner_text("main h1") == "Dashboard"

    switch_language(page, "zh_CN")
    assert html_lang(page) == "zh-CN" and path_of(page.url) == "/"
    assert page.inner_text("main h1") == "仪表盘"
    assert page.inner_text('form[action="/logout"] button') == "退出登录"
    page.wait_for_load_state("networkidle")
    screenshot(page, "dashboard-zh")

    switch_language(page, "en")
    assert html_lang(page) == "en"
    assert page.inner_text("main h1") == "Dashboard"
    assert page.inner_text('form[action="/logout"] button') == "Sign out"
    assert console.take() == []


def test_admin_reads_the_audit_log(page: Page, console: ConsoleWatch, site: Site) -> None:
    sign_in(page, site.url, "ada", PASSWORD)
    with page.expect_navigation():
        page.click('header nav a[href="/admin/audit"]')
    rows = page.locator("#audit-rows tr")
    mine = rows.filter(has=page.locator("td", has_text="ada")) \
               .filter(has=page.locator("td", has_text="login"))
    assert mine.count() >= 1
    with page.expect_response(lambda r: "/admin/audit" in r.url and r.ok):
        page.click('button[hx-get^="/admin/audit"]')  # htmx: the rows only
    assert rows.filter(has_text="ada").count() >= 1
    screenshot(page, "audit")
    assert console.take() == []


def test_analyst_has_no_audit_log(page: Page, site: Site) -> None:
    sign_in(page, site.url, "ann", PASSWORD)
    assert page.locator('header nav a[href="/admin/audit"]').count() == 0
    response = page.goto(f"{site.url}/admin/audit")
    assert response is not None and response.status == 403


def test_sign_out(page: Page, console: ConsoleWatch, site: Site) -> None:
    sign_in(page, site.url, "ann", PASSWORD)
    assert path_of(page.url) == "/"
    sign_out(page)
    assert path_of(page.url) == "/login"
    page.goto(f"{site.url}/")
    assert path_of(page.url) == "/login?next=/"
    assert page.locator('form[action="/logout"]').count() == 0
    assert console.take() == []


def test_wrong_password_is_refused(page: Page, site: Site) -> None:
    sign_in(page, site.url, "ada", "not the password")
    assert path_of(page.url) == "/login"
    assert page.inner_text("p.error[role=alert]") == "Wrong user name or password."
    assert page.input_value('input[name="username"]') == "ada"
    screenshot(page, "login-error")
    page.goto(f"{site.url}/")
    assert path_of(page.url) == "/login?next=/"  # not signed in


# -- customers: search, the 360 page, an account manager's scope ---------------------------------


def test_search_a_customer_and_open_the_360_page(page: Page, console: ConsoleWatch,
                                                 site: Site) -> None:
    customer = site.owns["amy"]
    sign_in(page, site.url, "ann", PASSWORD)
    open_or_xfail(page, f"{site.url}/customers", "the customer list")
    page.wait_for_load_state("networkidle")
    screenshot(page, "customers")
    page.fill('input[name="q"]', customer)
    page.press('input[name="q"]', "Enter")
    link = page.locator(f'a[href="/customers/{customer}"]').first
    link.wait_for()
    with page.expect_navigation():
        link.click()
    assert path_of(page.url) == f"/customers/{customer}"
    page.wait_for_load_state("networkidle")
    body = page.inner_text("main")
    assert customer in body and site.names[customer] in body
    screenshot(page, "customer-360")
    assert console.take() == []


def test_account_manager_gets_404_for_another_managers_customer(page: Page, site: Site) -> None:
    own, other = site.owns["amy"], site.owns["bob"]
    sign_in(page, site.url, "amy", PASSWORD)
    open_or_xfail(page, f"{site.url}/customers/{own}", "the customer 360 page")
    assert site.names[own] in page.inner_text("main")
    response = page.goto(f"{site.url}/customers/{other}")
    assert response is not None and response.status == 404
    assert site.names[other] not in page.content()
    screenshot(page, "customer-404-other-manager")


# -- the CI contract ------------------------------------------------------------------------------


def test_missing_browser_fails_under_ci_and_skips_locally(monkeypatch: pytest.MonkeyPatch,
                                                          tmp_path: Path) -> None:
    import browser_support

    monkeypatch.setattr(browser_support, "CHROMIUM", str(tmp_path / "no-chromium"))
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"apt-get install -y chromium"):
        browser_support.chromium_path()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="is not installed"):
        browser_support.chromium_path()
