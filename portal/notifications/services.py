"""Sending emails and SMS: rendered now, delivered by the task worker after commit."""

import hashlib
import hmac
import json
import logging
import urllib.request
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone, translation

from portal.audit.services import record

from .models import OutboundMessage

logger = logging.getLogger(__name__)


def email_send(
    *,
    to: str,
    template: str,
    context: dict,
    member=None,
    expires_at: datetime | None = None,
) -> OutboundMessage:
    """Render `emails/<template>.{subject.txt,txt,html}` and queue it for delivery.

    Must run inside the transaction of the change it reports: the message and
    its delivery task are committed, or rolled back, with that change.
    """
    context = {"SITE_URL": settings.SITE_URL, "SERVICE_NAME": settings.SERVICE_NAME, **context}
    with translation.override("fr"):  # messages are French, whatever the page's language
        return _email_create(
            to=to, template=template, context=context, member=member, expires_at=expires_at
        )


def _email_create(*, to, template, context, member, expires_at) -> OutboundMessage:
    subject = render_to_string(f"emails/{template}.subject.txt", context).strip()
    message = OutboundMessage.objects.create(
        channel=OutboundMessage.Channel.EMAIL,
        template=template,
        recipient=to,
        subject=" ".join(subject.split()),
        body_text=render_to_string(f"emails/{template}.txt", context),
        body_html=render_to_string(f"emails/{template}.html", context),
        member=member,
        expires_at=expires_at,
    )
    _enqueue(message)
    return message


def sms_send(
    *,
    to: str,
    template: str,
    context: dict,
    member=None,
    expires_at: datetime | None = None,
) -> OutboundMessage:
    """Render `sms/<template>.txt` and queue it for delivery, like `email_send`."""
    context = {"SITE_URL": settings.SITE_URL, "SERVICE_NAME": settings.SERVICE_NAME, **context}
    with translation.override("fr"):
        text = render_to_string(f"sms/{template}.txt", context)
    message = OutboundMessage.objects.create(
        channel=OutboundMessage.Channel.SMS,
        template=template,
        recipient=to,
        body_text=" ".join(text.split()),
        member=member,
        expires_at=expires_at,
    )
    _enqueue(message)
    return message


def _enqueue(message: OutboundMessage, *, delay: timedelta | None = None) -> None:
    from .tasks import deliver_message

    task = deliver_message
    if delay:
        task = deliver_message.using(run_after=timezone.now() + delay)
    task.enqueue(message_id=message.pk)


def retry_delay(attempts: int) -> timedelta:
    """Exponential backoff: 30 s, 1 min, 2 min… capped at one hour."""
    return timedelta(seconds=min(30 * 2 ** (attempts - 1), 3600))


def message_deliver(*, message_id: int) -> None:
    """Deliver one message once. On failure, count the attempt and queue a retry."""
    with transaction.atomic():
        message = OutboundMessage.objects.select_for_update().filter(pk=message_id).first()
        if message is None or message.status != OutboundMessage.Status.PENDING:
            return  # already delivered or given up: never send twice
        if message.expires_at and message.expires_at <= timezone.now():
            _give_up(message, reason="expired")
            return
        message.attempts += 1
        try:
            _send(message)
        except Exception as exc:
            message.last_error = f"{type(exc).__name__}: {exc}"[:300]
            delay = retry_delay(message.attempts)
            out_of_time = message.expires_at and timezone.now() + delay >= message.expires_at
            if message.attempts >= settings.NOTIFICATION_MAX_ATTEMPTS or out_of_time:
                _give_up(message, reason="attempts" if not out_of_time else "expired")
                return
            _enqueue(message, delay=delay)
            logger.warning(
                "message %s failed (attempt %s), retry queued", message.pk, message.attempts
            )
            message.save(update_fields=["attempts", "last_error"])
            return
        message.status = OutboundMessage.Status.SENT
        message.sent_at = timezone.now()
        message.last_error = ""
        if not settings.DEMO:
            message.body_text = message.body_html = ""  # may hold a one-time link
        message.save()
        record(
            action=f"notification.{message.channel}.sent",
            actor="system",
            member=message.member,
            data={
                "template": message.template,
                "message_id": message.pk,
                "attempts": message.attempts,
            },
        )


def _give_up(message: OutboundMessage, *, reason: str) -> None:
    message.status = OutboundMessage.Status.FAILED
    message.save(update_fields=["attempts", "last_error", "status"])
    logger.error(
        "message %s (%s) given up after %s attempts: %s",
        message.pk,
        message.template,
        message.attempts,
        reason,
    )
    record(
        action=f"notification.{message.channel}.failed",
        actor="system",
        member=message.member,
        data={"template": message.template, "message_id": message.pk, "reason": reason},
    )


def _send(message: OutboundMessage) -> None:
    if message.channel == OutboundMessage.Channel.EMAIL:
        if not settings.EMAIL_URL and settings.DEMO:
            return  # the demo mailbox shows the stored message
        email = EmailMultiAlternatives(
            subject=message.subject,
            body=message.body_text,
            from_email=settings.DEFAULT_FROM_EMAIL,
            to=[message.recipient],
        )
        if message.body_html:
            email.attach_alternative(message.body_html, "text/html")
        email.send(fail_silently=False)
    elif settings.SMS_WEBHOOK_URL:
        _sms_webhook_post(message)
    elif not settings.DEMO:
        raise RuntimeError("no SMS gateway configured (SMS_WEBHOOK_URL)")


def _sms_webhook_post(message: OutboundMessage) -> None:
    """POST `{"to", "text", "id"}` to the SMS gateway, signed with HMAC-SHA256.

    The signature (hex, header `X-Signature-SHA256`) covers the exact body, so
    the gateway can refuse anything that did not come from the portal. The
    message id lets the gateway drop a duplicate after a retry.
    """
    body = json.dumps(
        {"id": message.pk, "to": message.recipient, "text": message.body_text}
    ).encode()
    signature = hmac.new(settings.SMS_WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
    request = urllib.request.Request(  # noqa: S310 (the URL is the operator's setting)
        settings.SMS_WEBHOOK_URL,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "X-Signature-SHA256": signature},
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        if not 200 <= response.status < 300:
            raise RuntimeError(f"SMS gateway answered {response.status}")
