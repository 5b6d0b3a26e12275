"""The README's screenshots, taken by the browser on the demo data.

    UPDATE_SCREENSHOTS=1 DJANGO_SETTINGS_MODULE=config.settings.test \\
        .venv/bin/pytest tests/browser/test_screenshots.py

writes them to docs/img/ under stable names; any other run writes them to a
temporary folder, which still proves that they can be taken. Adding one is
one line in SHOTS (and, if it needs one, a step in `prepare`).
"""

import os
import re
from datetime import date, timedelta
from pathlib import Path

from portal.accounts.reset import password_reset_request
from portal.notifications.models import OutboundMessage
from tests.browser.helpers import load_demo, member_login

DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"

# (file name, path, height of the picture: the page's top, 1280 px wide)
SHOTS = [
    ("home.png", "/", 1000),
    ("reset.png", "reset link", 1000),
    ("payments.png", "/paiements/", 1500),
    # The week of free slots, next week, of an interview in LSF through the relay service.
    (
        "booking.png",
        "/agenda/nouveau/creneau/?motif=maternite-paternite&type=relay&mode=lsf"
        "&semaine={next_week}",
        1300,
    ),
]
# Pages of Mon espace: Paul logs in before the first of them.
MEMBER_PATHS = ("/paiements/", "/agenda/")


def reset_link(run_tasks) -> str:
    """Paul asks for a reset (the service the form calls); the worker emails the link."""
    password_reset_request(nir="1850578006084", birth_date=date(1985, 5, 12), ip="127.0.0.1")
    run_tasks()
    body = OutboundMessage.objects.get(template="password_reset").body_text
    return re.search(r"https?://\S+/mot-de-passe-oublie/[\w-]+", body).group(0)


def test_readme_screenshots(page, tmp_path, run_tasks):
    target = DOCS_IMG if os.environ.get("UPDATE_SCREENSHOTS") == "1" else tmp_path
    load_demo()
    logged_in = False
    for name, path, height in SHOTS:
        page.set_viewport_size({"width": 1280, "height": height})
        if path == "reset link":
            page.goto(reset_link(run_tasks))
            # Half-typed: the rules already met are ticked.
            page.locator("#id_password").fill("Nouvelle-phrase")
            page.locator("#id_password").blur()
        else:
            if path.startswith(MEMBER_PATHS) and not logged_in:
                member_login(page)
                logged_in = True
            page.goto(path.format(next_week=date.today() + timedelta(days=7)))
            # (the page gives the focus to the step's title: the picture shows it without)
            page.evaluate("() => document.activeElement && document.activeElement.blur()")
        # caret="initial": hiding the caret takes an inline style, which the CSP refuses.
        page.screenshot(path=target / name, caret="initial")
        assert (target / name).stat().st_size > 10_000
