"""System checks that stop a misconfigured production start (`manage.py check --deploy`)."""

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register


@register(Tags.security, deploy=True)
def production_settings(app_configs, **kwargs):
    problems = []
    if not settings.SITE_URL.startswith("https://"):
        problems.append(
            Warning(
                "SITE_URL should be https:// in production: links in emails use it.",
                id="portal.W001",
            )
        )
    if "locmem" in settings.CACHES["default"]["BACKEND"].lower():
        problems.append(
            Warning(
                "CACHE_URL is a per-process memory cache: with several web processes, "
                "login and creation throttling must use a shared cache (Redis).",
                id="portal.W002",
            )
        )
    if not settings.TOTP_ENCRYPTION_KEYS:
        problems.append(
            Warning(
                "TOTP_ENCRYPTION_KEYS is not set: the staff's TOTP secrets are encrypted with "
                "a key derived from SECRET_KEY, whose rotation then needs `manage.py "
                "totp_keys_rotate` before the old key leaves SECRET_KEY_FALLBACKS, or every "
                "advisor is locked out. Set a key of its own (docs/operations.md).",
                id="portal.W003",
            )
        )
    return problems


@register()
def email_configured(app_configs, **kwargs):
    if not settings.DEMO and not settings.EMAIL_URL:
        return [
            Error(
                "DEMO=0 needs EMAIL_URL (smtp://host:port): otherwise no email could be delivered.",
                id="portal.E002",
            )
        ]
    return []
