"""Test settings: the same stack, with what keeps the suite fast and hermetic."""

from .base import *  # noqa: F403
from .base import CACHES

SITE_URL = "https://compte.example.test"
DEMO = True
ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]
EMAIL_URL = ""
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
CACHES = {**CACHES, "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# No collected static files in tests: WhiteNoise serves them from the finders.
STATIC_ROOT = None
WHITENOISE_USE_FINDERS = True
