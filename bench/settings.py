"""Settings of the bench server (`bench/reset.py`): the dev settings plus Django's stock
password-reset view, mounted by a bench-only URLconf and never by the portal."""

from config.settings.dev import *  # noqa: F403
from config.settings.dev import BASE_DIR, TEMPLATES

ROOT_URLCONF = "bench.stock_reset_urls"
TEMPLATES = [
    {**TEMPLATES[0], "DIRS": [*TEMPLATES[0]["DIRS"], BASE_DIR / "bench" / "templates"]},
    *TEMPLATES[1:],
]
