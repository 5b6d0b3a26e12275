"""The SMS gateways: outbox (demo mailbox), console, and a signed webhook to a real HTTP server."""

import hashlib
import hmac
import json

import pytest
import time_machine
from django.core.checks import run_checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.db import transaction

from portal.audit.models import AuditEntry
from portal.notifications import sms
from portal.notifications.models import OutboundMessage
from portal.notifications.services import sms_send

TEXT_START = "Mon compte santé : votre code pour confirmer ce numéro de mobile est 48213907."


def _send(member, **kwargs):
    with transaction.atomic():
        return sms_send(
            to=member.mobile_phone,
            template="mobile_change_code",
            context={"code": "48213907", "minutes": 10},
            member=member,
            **kwargs,
        )


# --- outbox ----------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_outbox_keeps_the_sms_for_the_demo_mailbox(member, run_tasks, client, settings):
    assert sms.backend_name() == "outbox"  # the default
    message = _send(member)
    run_tasks()
    message.refresh_from_db()
    assert message.status == OutboundMessage.Status.SENT
    assert message.recipient == "+33612345678"
    assert message.body_text.startswith(TEXT_START)
    page = client.get(f"/demo/boite-mail/{message.pk}/").content.decode()
    assert "48213907" in page
    assert AuditEntry.objects.filter(action="notification.sms.sent").count() == 1


@pytest.mark.django_db(transaction=True)
def test_outbox_outside_demo_mode_does_not_pretend_to_deliver(member, run_tasks, settings):
    settings.DEMO = False
    message = _send(member)
    run_tasks()
    message.refresh_from_db()
    assert message.status == OutboundMessage.Status.PENDING
    assert "delivers nothing" in message.last_error
    assert message.body_text  # kept for the retry


# --- console ---------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_console_prints_the_whole_sms_code_included(member, run_tasks, settings, capsys):
    settings.SMS_BACKEND = "console"
    message = _send(member)
    run_tasks()
    out = capsys.readouterr().out
    assert f"SMS {message.pk} to +33612345678" in out
    assert TEXT_START in out  # unmasked: the developer types this code
    message.refresh_from_db()
    assert message.status == OutboundMessage.Status.SENT


def _check_ids(*, deploy: bool) -> set[str]:
    return {problem.id for problem in run_checks(include_deployment_checks=deploy)}


def test_console_backend_is_refused_by_the_deploy_check(settings):
    settings.SMS_BACKEND = "console"
    assert "portal.notifications.E004" in _check_ids(deploy=True)
    assert "portal.notifications.E004" not in _check_ids(deploy=False)  # fine on a laptop
    with pytest.raises(SystemCheckError, match="portal.notifications.E004"):
        call_command("check", "--deploy")
    settings.SMS_BACKEND = "outbox"
    assert "portal.notifications.E004" not in _check_ids(deploy=True)


def test_checks_refuse_a_backend_that_cannot_deliver(settings):
    settings.SMS_BACKEND = "outbox"
    settings.DEMO = False
    assert "portal.notifications.E001" in _check_ids(deploy=False)
    settings.DEMO = True
    assert "portal.notifications.E001" not in _check_ids(deploy=False)
    settings.SMS_BACKEND = "webhook"
    settings.SMS_WEBHOOK_URL = ""
    assert "portal.notifications.E003" in _check_ids(deploy=False)
    settings.SMS_BACKEND = "outbox"
    settings.SMS_WEBHOOK_URL = "https://sms.example.test/send"
    assert "portal.notifications.W002" in _check_ids(deploy=False)  # set but unused
    settings.SMS_BACKEND = "carrier-pigeon"
    assert "portal.notifications.E002" in _check_ids(deploy=False)


def test_a_backend_is_chosen_by_name_or_dotted_path(settings):
    settings.SMS_BACKEND = "webhook"
    assert isinstance(sms.backend(), sms.WebhookBackend)
    settings.SMS_BACKEND = "portal.notifications.sms.ConsoleBackend"
    assert isinstance(sms.backend(), sms.ConsoleBackend)


# --- webhook ---------------------------------------------------------------------------------


def _posted(request) -> dict:
    return json.loads(request["body"])


@pytest.mark.django_db(transaction=True)
def test_webhook_posts_signed_json(sms_gateway, member, run_tasks, settings):
    settings.DEMO = False
    message = _send(member)
    run_tasks()
    (request,) = sms_gateway.received
    assert request["path"] == "/sms"
    assert request["headers"]["Content-Type"] == "application/json"
    body = _posted(request)
    assert body["to"] == "+33612345678"
    assert body["text"].startswith(TEXT_START)
    assert body["id"] == message.pk
    expected = hmac.new(b"gateway-shared-key", request["body"], hashlib.sha256).hexdigest()
    assert request["headers"]["X-Signature-SHA256"] == expected
    message.refresh_from_db()
    assert message.status == OutboundMessage.Status.SENT and message.attempts == 1
    assert message.body_text == ""  # wiped once delivered outside demo mode
    run_tasks()
    assert len(sms_gateway.received) == 1  # never twice


@pytest.mark.django_db(transaction=True)
def test_webhook_500_is_retried_with_backoff(sms_gateway, member, run_tasks):
    sms_gateway.replies = [(500, 0)]
    with time_machine.travel("2026-03-02 10:00:00+01:00", tick=False) as clock:
        message = _send(member)
        run_tasks()
        message.refresh_from_db()
        assert message.status == OutboundMessage.Status.PENDING and message.attempts == 1
        assert "500" in message.last_error
        run_tasks()  # the retry is not due before 30 s
        assert len(sms_gateway.received) == 1
        clock.shift(31)
        run_tasks()
    assert len(sms_gateway.received) == 2
    first, second = (_posted(request) for request in sms_gateway.received)
    assert first == second  # same id: the gateway can tell a retry
    message.refresh_from_db()
    assert message.status == OutboundMessage.Status.SENT and message.attempts == 2
    assert AuditEntry.objects.filter(action="notification.sms.sent").count() == 1


@pytest.mark.django_db(transaction=True)
def test_webhook_timeout_is_retried(sms_gateway, member, run_tasks, settings):
    assert settings.SMS_WEBHOOK_TIMEOUT == 0.5
    sms_gateway.replies = [(200, 5)]  # answers far too late
    with time_machine.travel("2026-03-02 10:00:00+01:00", tick=False) as clock:
        message = _send(member)
        run_tasks()
        message.refresh_from_db()
        assert message.status == OutboundMessage.Status.PENDING and message.attempts == 1
        assert "timed out" in message.last_error.lower()
        clock.shift(31)
        run_tasks()
    assert len(sms_gateway.received) == 2
    message.refresh_from_db()
    assert message.status == OutboundMessage.Status.SENT and message.attempts == 2


@pytest.mark.django_db(transaction=True)
def test_webhook_redirect_is_a_failure(sms_gateway, member, run_tasks):
    sms_gateway.replies = [(302, 0)]
    message = _send(member)
    run_tasks()
    message.refresh_from_db()
    assert message.status == OutboundMessage.Status.PENDING
    assert "302" in message.last_error
    assert len(sms_gateway.received) == 1  # not replayed elsewhere as a GET


@pytest.mark.django_db(transaction=True)
def test_webhook_gives_up_when_the_code_expires(sms_gateway, member, run_tasks):
    from datetime import timedelta

    from django.utils import timezone

    sms_gateway.replies = [(503, 0)] * 10
    with time_machine.travel("2026-03-02 10:00:00+01:00", tick=False) as clock:
        message = _send(member, expires_at=timezone.now() + timedelta(minutes=2))
        for _ in range(5):
            run_tasks()
            clock.shift(130)
    message.refresh_from_db()
    assert message.status == OutboundMessage.Status.FAILED
    assert AuditEntry.objects.filter(action="notification.sms.failed").count() == 1
