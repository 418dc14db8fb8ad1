"""Real-browser fixtures: Debian's Chromium driven by Playwright, logged in as a curator.

Chromium comes from the system package (`make test` installs it through
scripts/install_system_deps.sh); Playwright's own browser download is never used.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.test import Client

# The Django-Q threads and the file database of the workflow tests, reused as they are.
from tests.workflow.conftest import ThreadCluster, file_db, migrated_template  # noqa: F401

CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
OUTSIDE = re.compile(r"^https?://(?!(127\.0\.0\.1|localhost)(:\d+)?/)")
DOCS = Path(__file__).resolve().parents[2] / "docs"


@contextmanager
def chromium(monkeypatch) -> Iterator:
    """A headless Debian Chromium through Playwright.

    Playwright's sync API keeps an event loop running in this thread while the browser is
    open, and Django's connections are then looked up per async context rather than per
    thread: ORM calls made inside this block may not use the connection the test set up.
    Set the data up before, check the database after (or use pytest-django's in-memory
    database, which every connection shares).
    """
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: `make test` installs Debian's chromium")
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def browser(monkeypatch) -> Iterator:
    """A fresh browser per test (a session-wide one would keep Playwright's event loop alive
    under every later test)."""
    with chromium(monkeypatch) as browser:
        yield browser


@pytest.fixture
def curator(django_user_model):
    return django_user_model.objects.create_user("curator", password="pw", is_staff=True)


def session_cookie(user) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies[django_settings.SESSION_COOKIE_NAME].value


def logged_in_page(
    browser, base_url: str, user, *, width: int = 1440, height: int = 1000, javascript=True
):
    """A page whose browser carries the user's session cookie (no login form round trip).
    `user` is a user or a session cookie value made before the browser started."""
    cookie = user if isinstance(user, str) else session_cookie(user)
    context = browser.new_context(
        viewport={"width": width, "height": height},
        base_url=base_url,
        java_script_enabled=javascript,
    )
    context.add_cookies(
        [
            {
                "name": django_settings.SESSION_COOKIE_NAME,
                "value": cookie,
                "url": base_url,
            }
        ]
    )
    # Tests never reach the internet: anything not on this machine is refused at once.
    context.route(OUTSIDE, lambda route: route.abort())
    page = context.new_page()
    page.set_default_timeout(15_000)
    return page


def screenshot_path(tmp_path: Path, name: str) -> Path:
    """docs/<name> when DASHBOARD_SCREENSHOTS=1 (to refresh the README's pictures), else tmp."""
    if os.environ.get("DASHBOARD_SCREENSHOTS") == "1":
        return DOCS / name
    return tmp_path / name


@pytest.fixture
def file_live_server(file_db) -> Iterator[str]:  # noqa: F811 (the imported fixture)
    """Django's live server thread on the file database, for tests with Django-Q workers.

    pytest-django's `live_server` shares one in-memory connection between its threads; the
    Django-Q worker threads need their own connections to a database that waits for locks,
    so this server answers from the same WAL file database the workers use.
    """
    from django.contrib.staticfiles.handlers import StaticFilesHandler
    from django.test.testcases import LiveServerThread

    thread = LiveServerThread("127.0.0.1", StaticFilesHandler, connections_override=None, port=0)
    thread.daemon = True
    thread.start()
    thread.is_ready.wait(timeout=30)
    if thread.error:
        raise thread.error
    yield f"http://127.0.0.1:{thread.port}"
    thread.terminate()
