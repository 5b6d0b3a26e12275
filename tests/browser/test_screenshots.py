"""The README's screenshots, taken by the browser on the demo data.

    UPDATE_SCREENSHOTS=1 DJANGO_SETTINGS_MODULE=config.settings.test \\
        .venv/bin/pytest tests/browser/test_screenshots.py

writes them to docs/img/ under stable names; any other run writes them to a
temporary folder, which still proves that they can be taken. Adding one is
one line in SHOTS (and, if it needs one, a step in `prepare`).
"""

import os
import re
from datetime import date
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
]


def reset_link(run_tasks) -> str:
    """Paul asks for a reset (the service the form calls); the worker emails the link."""
    password_reset_request(nir="1850578006084", birth_date=date(1985, 5, 12), ip="127.0.0.1")
    run_tasks()
    body = OutboundMessage.objects.get(template="password_reset").body_text
    return re.search(r"https?://\S+/mot-de-passe-oublie/[\w-]+", body).group(0)


def test_readme_screenshots(page, tmp_path, run_tasks):
    target = DOCS_IMG if os.environ.get("UPDATE_SCREENSHOTS") == "1" else tmp_path
    load_demo()
    for name, path, height in SHOTS:
        page.set_viewport_size({"width": 1280, "height": height})
        if path == "reset link":
            page.goto(reset_link(run_tasks))
            # Half-typed: the rules already met are ticked.
            page.locator("#id_password").fill("Nouvelle-phrase")
            page.locator("#id_password").blur()
        else:
            if path.startswith("/paiements/"):
                member_login(page)
            page.goto(path)
        # caret="initial": hiding the caret takes an inline style, which the CSP refuses.
        page.screenshot(path=target / name, caret="initial")
        assert (target / name).stat().st_size > 10_000
