"""Real-browser tests: Debian's Chromium, driven by Playwright, against a live server.

The server is pytest-django's `live_server` (Django's threaded WSGI server in
the test process) rather than a separate gunicorn: each test gets the same
throwaway test database as the rest of the suite (SQLite in memory or the CI's
PostgreSQL), emptied after it, builds its data with the factories and the
demo loader, runs the task queue with `run_tasks` and reads the outbox
directly. What is under test is what the browser shows and how it behaves,
not the production WSGI server.

One Chromium per session, one fresh context (cookies, storage) per test. No
test tool downloads a browser: without Chromium at CHROMIUM (default
/usr/bin/chromium, `apt-get install chromium`), these tests are skipped with
that message, and fail under CI (CI=true), where .ci/run installs it.
"""

import os
import re
import shutil
from importlib import import_module
from pathlib import Path

import pytest
from django.apps import apps

from portal.appointments.models import Motive

HERE = Path(__file__).resolve().parent
SKIP_REASON = pytest.StashKey[str]()
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
DESKTOP = {"width": 1280, "height": 800}
# The machine's network is closed and the tests must not depend on it.
CHROMIUM_ARGS = [
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    try:
        import_module("playwright.sync_api")
        import_module("axe_playwright_python")
    except ImportError as exc:
        return f"{exc.name} is not installed (make install-dev)"
    if not (os.access(CHROMIUM, os.X_OK) or shutil.which(CHROMIUM)):
        return (
            f"no Chromium at {CHROMIUM}: install Debian's (apt-get install chromium) "
            "or set CHROMIUM; the tests never download a browser"
        )
    return None


def pytest_collection_modifyitems(config, items):
    reason = _missing()
    if reason is None:
        return
    mine = [item for item in items if HERE in Path(str(item.path)).parents]
    if not mine:
        return
    if os.environ.get("CI") == "true":
        # CI installs Chromium (.ci/run): a silent skip there would hide a lost suite.
        raise pytest.UsageError(f"browser tests cannot run under CI: {reason}")
    config.stash[SKIP_REASON] = reason
    for item in mine:
        item.add_marker(pytest.mark.skip(reason=f"browser tests skipped: {reason}"))


def pytest_terminal_summary(terminalreporter, config):
    reason = config.stash.get(SKIP_REASON, None)
    if reason:
        terminalreporter.write_line(
            f"Browser tests (tests/browser) skipped: {reason}.", yellow=True
        )


@pytest.fixture(scope="package")
def browser(django_db_setup, live_server):
    """One Chromium for the tests of this package, stopped before the other packages run.

    Playwright's sync API keeps its asyncio loop registered as running in this
    thread between calls, and Django refuses ORM calls when it sees a running
    loop: the database and the live server are set up first, the ORM calls of
    these tests (factories, flushes) are allowed meanwhile, and the loop is gone
    before the rest of the suite runs.
    """
    from playwright.sync_api import sync_playwright

    args = list(CHROMIUM_ARGS)
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        args.append("--no-sandbox")  # Chromium refuses to run its sandbox as root
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            # Playwright's default launch: a fresh temporary profile, deleted on close.
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
            yield browser
            browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture(autouse=True)
def _browser_test_settings(settings, live_server):
    # Links in emails and SMS must lead back to this server.
    settings.SITE_URL = live_server.url
    _ensure_motives()


def _ensure_motives() -> None:
    """The fund's motives come from a data migration that a transactional test's flush empties."""
    if not Motive.objects.exists():
        import_module("portal.appointments.migrations.0002_motives").create(apps, None)


class BrowserErrors(list):
    """Console errors and uncaught exceptions of the pages (CSP refusals show there)."""

    # A page's own 4xx (a form sent back with its errors is a 400); a static file's is an error.
    PAGE_STATUS = re.compile(
        r"Failed to load resource: the server responded with a status of 4\d\d"
    )

    def on_console(self, message):
        url = message.location.get("url", "")
        if message.type != "error" or (
            self.PAGE_STATUS.search(message.text) and "/static/" not in url
        ):
            return
        self.append(f"console: {message.text} ({url})")

    def on_page_error(self, error):
        self.append(f"page error: {error}")


def new_page(browser, live_server, errors: BrowserErrors | None = None):
    """A page in a fresh context: French, desktop width, no cookies."""
    context = browser.new_context(
        base_url=live_server.url, locale="fr-FR", viewport=DESKTOP, timezone_id="Europe/Paris"
    )
    context.set_default_timeout(15_000)
    page = context.new_page()
    if errors is not None:
        page.on("console", errors.on_console)
        page.on("pageerror", errors.on_page_error)
    return page


@pytest.fixture
def browser_errors():
    return BrowserErrors()


@pytest.fixture
def page(browser, live_server, browser_errors):
    page = new_page(browser, live_server, browser_errors)
    yield page
    page.context.close()
    assert list(browser_errors) == [], "\n".join(browser_errors)


@pytest.fixture
def other_page(browser, live_server, browser_errors):
    """A second person's browser (e.g. the advisor while `page` is the member)."""
    page = new_page(browser, live_server, browser_errors)
    yield page
    page.context.close()
