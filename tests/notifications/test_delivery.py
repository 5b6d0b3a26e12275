from email import message_from_bytes, policy

import pytest
import time_machine
from aiosmtpd.controller import Controller
from django.db import transaction

from portal.notifications.models import OutboundMessage
from portal.notifications.services import email_send
from tests.smtp import Collector


def _send(member):
    return email_send(
        to="jeanne@example.org",
        template="account_creation_attempt",
        context={"member": member, "masked_nir": "•••••••••1234"},
    )


@pytest.mark.django_db(transaction=True)
def test_email_goes_out_through_a_real_smtp_server(smtp_server, member, run_tasks, settings):
    settings.DEMO = False
    with transaction.atomic():
        _send(member)
    run_tasks()
    assert len(smtp_server.messages) == 1
    envelope = smtp_server.messages[0]
    assert envelope.rcpt_tos == ["jeanne@example.org"]
    parsed = message_from_bytes(envelope.content, policy=policy.default)
    assert "Tentative de création" in parsed["Subject"]
    text = parsed.get_body(("plain",)).get_content()
    html = parsed.get_body(("html",)).get_content()
    assert "•••••••••1234" in text and "<p>" in html
    stored = OutboundMessage.objects.get()
    assert stored.status == OutboundMessage.Status.SENT
    assert stored.body_text == ""  # wiped once delivered outside demo mode
    run_tasks()
    assert len(smtp_server.messages) == 1  # never sent twice


@pytest.mark.django_db(transaction=True)
def test_rolled_back_change_sends_nothing(smtp_server, member, run_tasks):
    def failing_change():
        with transaction.atomic():
            _send(member)
            raise RuntimeError("the change failed")

    with pytest.raises(RuntimeError):
        failing_change()
    run_tasks()
    assert OutboundMessage.objects.count() == 0
    assert smtp_server.messages == []


@pytest.mark.django_db(transaction=True)
def test_failed_email_is_retried_then_delivered_once(smtp_settings, member, run_tasks):
    with time_machine.travel("2026-03-02 10:00:00+01:00", tick=False) as clock:
        with transaction.atomic():
            _send(member)
        run_tasks()  # nobody listens on the port yet
        message = OutboundMessage.objects.get()
        assert message.status == OutboundMessage.Status.PENDING
        assert message.attempts == 1
        assert "Error" in message.last_error or "refused" in message.last_error.lower()

        collector = Collector()
        controller = Controller(collector, hostname="127.0.0.1", port=smtp_settings)
        controller.start()
        try:
            run_tasks()  # the retry is not due yet
            assert collector.messages == []
            clock.shift(31)
            run_tasks()
            assert len(collector.messages) == 1
            message.refresh_from_db()
            assert message.status == OutboundMessage.Status.SENT and message.attempts == 2
        finally:
            controller.stop()


@pytest.mark.django_db(transaction=True)
def test_message_is_given_up_after_the_last_attempt(smtp_settings, member, run_tasks, settings):
    settings.NOTIFICATION_MAX_ATTEMPTS = 2
    with time_machine.travel("2026-03-02 10:00:00+01:00", tick=False) as clock:
        with transaction.atomic():
            _send(member)
        run_tasks()
        clock.shift(3600)
        run_tasks()
        message = OutboundMessage.objects.get()
        assert message.status == OutboundMessage.Status.FAILED
        assert message.attempts == 2


def test_retry_delay_grows_and_is_capped():
    from portal.notifications.services import retry_delay

    delays = [retry_delay(n).total_seconds() for n in range(1, 12)]
    assert delays[:3] == [30, 60, 120]
    assert delays == sorted(delays) and max(delays) == 3600
