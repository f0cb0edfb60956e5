"""What the browser tests (``tests/test_browser.py``) stand on: the real app served by uvicorn
on a free loopback port, Debian's chromium driven headless by Playwright, a console watcher
and full-page screenshots for review.

The browser is Debian's ``/usr/bin/chromium`` (``KEHU_CHROMIUM`` names another), launched
through Playwright's ``executable_path``: never a browser downloaded by ``playwright
install``. ``scripts/test.sh`` installs it when it is missing. Locally a missing chromium or
Playwright skips the browser tests with the reason; with ``CI=true`` they fail instead.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import pytest

if TYPE_CHECKING:
    from fastapi import FastAPI
    from playwright.sync_api import ConsoleMessage, Error, Page, Response

CHROMIUM = os.environ.get("KEHU_CHROMIUM", "/usr/bin/chromium")
INSTALL_HINT = ("install Debian's chromium with `apt-get update && apt-get install -y "
                "chromium` (scripts/test.sh does this when it is missing) and Playwright with "
                "`pip install -e '.[test]'`; never `playwright install`")
#: requests the browser makes by itself, not the page: chromium asks every site for
#: /favicon.ico, and the app has none yet (a 404 logged as a console error)
IGNORED_RESOURCES = ("/favicon.ico",)
SCREENSHOTS = Path(__file__).resolve().parents[1] / "build" / "screenshots"


def browser_unavailable(reason: str) -> NoReturn:
    """Skip locally, fail under ``CI=true``: CI must never pass without the browser tests."""
    message = f"browser tests need Debian's chromium driven by Playwright, but {reason}: " \
              f"{INSTALL_HINT}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} (CI=true never skips them)", pytrace=False)
    pytest.skip(message)


def chromium_path() -> str:
    """The chromium to drive, or a skip / CI failure that says how to install it."""
    found = shutil.which(CHROMIUM)
    if not found:
        browser_unavailable(f"{CHROMIUM} is not installed")
    return found


def launch_args() -> list[str]:
    """Chromium's sandbox refuses to run as root (containers, CI here): turn it off there."""
    args = ["--disable-dev-shm-usage"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        args.append("--no-sandbox")
    return args


# -- the app on a real socket ------------------------------------------------------------------


class LiveServer:
    """``app`` served by uvicorn in a background thread on 127.0.0.1 and a free port (the
    socket is bound before uvicorn starts, so no other process can take the port)."""

    def __init__(self, app: FastAPI) -> None:
        import uvicorn

        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
        self._thread = threading.Thread(target=self._server.run,
                                        kwargs={"sockets": [self._sock]},
                                        name="kehu-live-server", daemon=True)

    def __enter__(self) -> LiveServer:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not start on {self.url}")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=15)
        self._sock.close()


# -- pages -------------------------------------------------------------------------------------


@dataclass
class ConsoleWatch:
    """Console errors and uncaught exceptions of one page, as the browser reports them."""

    errors: list[str] = field(default_factory=list)

    def attach(self, page: Page) -> ConsoleWatch:
        page.on("console", self._console)
        page.on("pageerror", self._pageerror)
        return self

    def _console(self, msg: ConsoleMessage) -> None:
        url = msg.location.get("url", "")
        if msg.type != "error" or url.endswith(IGNORED_RESOURCES):
            return
        self.errors.append(f"console: {msg.text} ({url})")

    def _pageerror(self, exc: Error) -> None:
        self.errors.append(f"pageerror: {exc.message}")

    def take(self) -> list[str]:
        """The errors so far, forgetting them (so a test can check page by page)."""
        out, self.errors = self.errors, []
        return out


def screenshot(page: Page, name: str) -> Path:
    """A full-page PNG in ``build/screenshots/`` for review."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def sign_in(page: Page, base: str, username: str, password: str) -> None:
    """Fill in and send the sign-in form, as a person would."""
    page.goto(f"{base}/login")
    page.fill('input[name="username"]', username)
    page.fill('input[name="password"]', password)
    with page.expect_navigation():
        page.click('form[action="/login"] button[type="submit"]')


def sign_out(page: Page) -> None:
    with page.expect_navigation():
        page.click('form[action="/logout"] button[type="submit"]')


def switch_language(page: Page, lang: str) -> None:
    """Press the language switch's button for ``lang`` (``zh_CN`` or ``en``)."""
    with page.expect_navigation():
        page.click(f'form.lang-switch button[value="{lang}"]')


def open_ok(page: Page, url: str) -> Response:
    """Open ``url`` and require a successful answer."""
    response = page.goto(url)
    assert response is not None, url
    assert response.ok, (url, response.status)
    return response


def path_of(url: str) -> str:
    return re.sub(r"^https?://[^/]+", "", url)


def html_lang(page: Page) -> str | None:
    return page.get_attribute("html", "lang")
