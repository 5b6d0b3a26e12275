"""Sending emails and SMS: rendered now, delivered by the task worker after commit."""

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone, translation
from phonenumbers import PhoneNumber

from portal.audit.models import AuditEntry
from portal.audit.services import record
from portal.core import metrics
from portal.members.models import Member

from . import sms
from .models import OutboundMessage
from .selectors import sms_code_usage
from .sms import SmsCapReached, SmsError, SmsRecipientRefused, sms_recipient_normalize

__all__ = [
    "SmsCapReached",
    "SmsError",
    "SmsRecipientRefused",
    "email_send",
    "message_deliver",
    "sms_code_usage_alert",
    "sms_send",
]

logger = logging.getLogger(__name__)


def email_send(
    *,
    to: str,
    template: str,
    context: dict,
    member=None,
    expires_at: datetime | None = None,
    attachment: tuple[str, str, str] | None = None,
) -> OutboundMessage:
    """Render `emails/<template>.{subject.txt,txt,html}` and queue it for delivery.

    `attachment` is one text file, as (name, content, MIME type).

    Must run inside the transaction of the change it reports: the message and
    its delivery task are committed, or rolled back, with that change.
    """
    context = {"SITE_URL": settings.SITE_URL, "SERVICE_NAME": settings.SERVICE_NAME, **context}
    with translation.override("fr"):  # messages are French, whatever the page's language
        return _email_create(
            to=to,
            template=template,
            context=context,
            member=member,
            expires_at=expires_at,
            attachment=attachment,
        )


def _email_create(*, to, template, context, member, expires_at, attachment) -> OutboundMessage:
    subject = render_to_string(f"emails/{template}.subject.txt", context).strip()
    name, content, content_type = attachment or ("", "", "")
    message = OutboundMessage.objects.create(
        channel=OutboundMessage.Channel.EMAIL,
        template=template,
        recipient=to,
        subject=" ".join(subject.split()),
        body_text=render_to_string(f"emails/{template}.txt", context),
        body_html=render_to_string(f"emails/{template}.html", context),
        member=member,
        expires_at=expires_at,
        attachment_name=name,
        attachment_type=content_type,
        attachment_body=content,
    )
    _enqueue(message)
    return message


def sms_send(
    *,
    to: str | PhoneNumber,
    template: str,
    context: dict,
    member=None,
    expires_at: datetime | None = None,
    sent_by: str = "",
) -> OutboundMessage:
    """Render `sms/<template>.txt` and queue it for delivery, like `email_send`.

    `to` is a mobile number of France (overseas included) or of another EU
    member state, as a string or a parsed number; it is stored in E.164.
    `sent_by` names the staff member who asked for it ("staff:3"), if any.

    Raises, queueing nothing:
    - `SmsRecipientRefused` for any other number (foreign, landline, garbage);
    - `SmsCapReached(scope)` when the last 24 hours already hold the daily
      cap of SMS for this member, for this sender or for the whole portal
      (`SMS_DAILY_CAP_PER_MEMBER`, `_PER_SENDER`, `_GLOBAL`): a brake on SMS
      pumping. The `notification.sms.capped` (or `.refused`) audit entry is
      written in the caller's transaction: a caller that lets the exception
      roll its transaction back and wants the entry kept catches the
      exception inside the transaction, which is still usable.
    """
    try:
        recipient = sms_recipient_normalize(to)
    except SmsRecipientRefused as exc:
        logger.warning("SMS %s refused: %s number (%s)", template, exc.reason, exc.region)
        record(
            action="notification.sms.refused",
            actor=sent_by or "system",
            member=member,
            data={"template": template, "reason": exc.reason, "region": exc.region or ""},
        )
        raise
    _sms_caps_check(member=member, sent_by=sent_by, template=template)
    context = {"SITE_URL": settings.SITE_URL, "SERVICE_NAME": settings.SERVICE_NAME, **context}
    with translation.override("fr"):
        text = render_to_string(f"sms/{template}.txt", context)
    message = OutboundMessage.objects.create(
        channel=OutboundMessage.Channel.SMS,
        template=template,
        recipient=recipient,
        body_text=" ".join(text.split()),
        member=member,
        expires_at=expires_at,
        sent_by=sent_by,
    )
    _enqueue(message)
    return message


def _sms_caps_check(*, member, sent_by: str, template: str) -> None:
    """Raise `SmsCapReached` when a rolling 24-hour cap is reached; audit it.

    Counts the SMS rows of the outbox, pending or sent: given-up ones are
    left out, so that a gateway outage does not lock members out for a day. The member's row is locked first so that two concurrent sends
    to one member cannot both pass its cap; the sender and global caps are
    the sum of many members and only need to hold roughly.
    """
    if member is not None and transaction.get_connection().in_atomic_block:
        Member.objects.select_for_update().filter(pk=member.pk).first()
    recent = OutboundMessage.objects.filter(
        channel=OutboundMessage.Channel.SMS,
        created_at__gt=timezone.now() - timedelta(hours=24),
    ).exclude(status=OutboundMessage.Status.FAILED)
    caps = [("global", getattr(settings, "SMS_DAILY_CAP_GLOBAL", 10_000), recent)]
    if sent_by:
        cap = getattr(settings, "SMS_DAILY_CAP_PER_SENDER", 100)
        caps.insert(0, ("sender", cap, recent.filter(sent_by=sent_by)))
    if member is not None:
        cap = getattr(settings, "SMS_DAILY_CAP_PER_MEMBER", 5)
        caps.insert(0, ("member", cap, recent.filter(member=member)))
    for scope, cap, rows in caps:
        if rows.count() >= cap:
            logger.error("SMS %s not sent: daily %s cap of %s reached", template, scope, cap)
            record(
                action="notification.sms.capped",
                actor=sent_by or "system",
                member=member,
                data={"template": template, "scope": scope, "cap": cap},
            )
            raise SmsCapReached(scope, cap)


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
            message.attachment_body = ""
        message.save()
        metrics.message_sent(channel=message.channel)
        record(
            action=f"notification.{message.channel}.sent",
            actor="system",
            member=message.member,
            data={
                "template": message.template,
                "message_id": message.pk,
                "attempts": message.attempts,
                **({"sent_by": message.sent_by} if message.sent_by else {}),
            },
        )


def _give_up(message: OutboundMessage, *, reason: str) -> None:
    message.status = OutboundMessage.Status.FAILED
    message.save(update_fields=["attempts", "last_error", "status"])
    metrics.message_failed(channel=message.channel)
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
        if message.attachment_name:
            email.attach(message.attachment_name, message.attachment_body, message.attachment_type)
        email.send(fail_silently=False)
    else:
        gateway = sms.backend()
        if not gateway.delivers and not settings.DEMO:
            # Outside demo mode nobody reads the outbox: keep the message pending
            # (then failed) rather than mark it sent. The check portal.notifications.E001
            # stops such a start anyway.
            raise RuntimeError(f"SMS_BACKEND={gateway.name} delivers nothing and DEMO=0")
        gateway.send(message)


# --- supervision -----------------------------------------------------------------------------

LOW_USAGE_ALERT = "notification.sms.low_usage_alert"
LOW_USAGE_RATIO = 0.5  # "fewer than half of the sent codes get used"


@transaction.atomic
def sms_code_usage_alert(*, now: datetime | None = None) -> dict:
    """Alert the supervisors when fewer than half of the codes sent by SMS get used.

    Over the last 24 hours, once at least `SMS_CODE_USAGE_MIN_SAMPLE` codes
    are settled (used, expired, revoked or exhausted), a ratio of used codes
    under 50 % is the mark of SMS pumping (codes requested for numbers nobody
    reads) or of a gateway that does not deliver. Emails every address of
    `SUPERVISOR_ALERT_EMAILS` (logs an error when there is none), at most once
    in 24 hours, and audits `notification.sms.low_usage_alert`. Meant to run
    periodically (`manage.py check_sms_usage`).

    Returns the usage (`sms_code_usage`) with `outcome`: "alerted",
    "already_alerted", "too_few_codes" or "ok".
    """
    now = now or timezone.now()
    since = now - timedelta(hours=24)
    usage = sms_code_usage(since=since, now=now)
    settled = usage["sent"] - usage["pending"]
    if settled < getattr(settings, "SMS_CODE_USAGE_MIN_SAMPLE", 20):
        return {**usage, "outcome": "too_few_codes"}
    if usage["ratio"] >= LOW_USAGE_RATIO:
        return {**usage, "outcome": "ok"}
    if AuditEntry.objects.filter(action=LOW_USAGE_ALERT, created_at__gt=since).exists():
        return {**usage, "outcome": "already_alerted"}
    recipients = list(getattr(settings, "SUPERVISOR_ALERT_EMAILS", []))
    context = {
        **usage,
        "settled": settled,
        "percent": round(usage["ratio"] * 100),
        "since": timezone.localtime(since),
        "until": timezone.localtime(now),
    }
    for address in recipients:
        email_send(to=address, template="sms_low_usage_alert", context=context)
    if not recipients:
        logger.error(
            "only %s of %s settled SMS codes used in 24 h, and SUPERVISOR_ALERT_EMAILS is empty",
            usage["used"],
            settled,
        )
    record(
        action=LOW_USAGE_ALERT,
        actor="system",
        data={
            "sent": usage["sent"],
            "used": usage["used"],
            "pending": usage["pending"],
            "ratio": round(usage["ratio"], 3),
            "recipients": len(recipients),
        },
    )
    return {**usage, "outcome": "alerted"}
