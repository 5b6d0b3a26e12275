"""System checks of the SMS gateway settings."""

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register

from . import sms


@register()
def sms_backend_configured(app_configs, **kwargs):
    name = sms.backend_name()
    try:
        backend = sms.backend_class(name)
    except (ValueError, ImportError) as exc:
        return [Error(f"SMS_BACKEND: {exc}", id="portal.notifications.E002")]
    problems = []
    if not backend.delivers and not settings.DEMO:
        problems.append(
            Error(
                f"DEMO=0 needs an SMS gateway: SMS_BACKEND={name} sends nothing "
                "(set SMS_BACKEND=webhook and SMS_WEBHOOK_URL).",
                id="portal.notifications.E001",
            )
        )
    webhook_url = getattr(settings, "SMS_WEBHOOK_URL", "")
    if backend is sms.WebhookBackend and not webhook_url:
        problems.append(
            Error("SMS_BACKEND=webhook needs SMS_WEBHOOK_URL.", id="portal.notifications.E003")
        )
    if webhook_url and backend is not sms.WebhookBackend:
        problems.append(
            Warning(
                f"SMS_WEBHOOK_URL is set but SMS_BACKEND={name}: the webhook is not used "
                "(set SMS_BACKEND=webhook).",
                id="portal.notifications.W002",
            )
        )
    return problems


@register(Tags.security, deploy=True)
def sms_backend_production(app_configs, **kwargs):
    problems = []
    try:
        backend = sms.backend_class()
    except (ValueError, ImportError):
        return []  # reported by sms_backend_configured
    if backend is sms.ConsoleBackend:
        problems.append(
            Error(
                "SMS_BACKEND=console prints every SMS, codes included, on the standard output: "
                "for a developer's machine only, never in production.",
                id="portal.notifications.E004",
            )
        )
    if backend is sms.WebhookBackend and not getattr(settings, "SMS_WEBHOOK_SECRET", ""):
        problems.append(
            Warning(
                "SMS_WEBHOOK_SECRET is empty: the gateway cannot tell the portal's SMS "
                "from forged ones.",
                id="portal.notifications.W001",
            )
        )
    return problems
