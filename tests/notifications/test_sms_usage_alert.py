"""The supervisors are alerted when fewer than half of the codes sent by SMS get used."""

import io
import logging
from datetime import timedelta

import pytest
import time_machine
from django.core.management import call_command
from django.utils import timezone

from portal.accounts.models import OneTimeCode
from portal.audit.models import AuditEntry
from portal.notifications.models import OutboundMessage
from portal.notifications.selectors import sms_code_usage
from portal.notifications.services import sms_code_usage_alert

pytestmark = pytest.mark.django_db

NOW = "2026-03-02 10:00:00+01:00"
SUPERVISORS = ["superviseur.paris@example.org", "securite@example.org"]


@pytest.fixture(autouse=True)
def _supervisors(settings):
    settings.SUPERVISOR_ALERT_EMAILS = SUPERVISORS


def _codes(account, *, used: int, unused: int, target="+33612345678", live=False):
    """Codes created now; the unused ones expired unless `live`."""
    now = timezone.now()
    for i in range(used + unused):
        OneTimeCode.objects.create(
            account=account,
            purpose="mobile_change",
            code_hash="0" * 64,
            target=target,
            expires_at=now + timedelta(minutes=10) if live else now - timedelta(seconds=1),
            max_attempts=5,
            used_at=now if i < used else None,
        )


def _alerts():
    return OutboundMessage.objects.filter(template="sms_low_usage_alert")


def _audited():
    return AuditEntry.objects.filter(action="notification.sms.low_usage_alert")


def test_usage_counts_sms_codes_and_leaves_live_ones_out_of_the_ratio(account):
    with time_machine.travel(NOW, tick=False):
        _codes(account, used=3, unused=5)
        _codes(account, used=0, unused=4, live=True)
        _codes(account, used=2, unused=2, target="")  # printed codes, not SMS
        usage = sms_code_usage(since=timezone.now() - timedelta(hours=24))
    assert usage == {"sent": 12, "used": 3, "pending": 4, "ratio": 3 / 8}


def test_alert_under_half_is_emailed_once_a_day(account):
    with time_machine.travel(NOW, tick=False) as clock:
        _codes(account, used=9, unused=11)
        assert sms_code_usage_alert()["outcome"] == "alerted"
        assert sorted(m.recipient for m in _alerts()) == sorted(SUPERVISORS)
        alert = _alerts().first()
        assert alert.subject.endswith("seuls 45 % des codes envoyés par SMS ont été utilisés")
        assert "codes utilisés : 9 sur 20, soit 45 %" in alert.body_text
        assert "45 %" in alert.body_html
        (entry,) = _audited()
        assert entry.actor == "system"
        assert entry.data == {"sent": 20, "used": 9, "pending": 0, "ratio": 0.45, "recipients": 2}

        clock.shift(3600)
        _codes(account, used=0, unused=10)
        assert sms_code_usage_alert()["outcome"] == "already_alerted"
        clock.shift(23 * 3600)  # a day after the alert, the usage is still low
        _codes(account, used=5, unused=20)
        assert sms_code_usage_alert()["outcome"] == "alerted"
    assert _alerts().count() == 4 and _audited().count() == 2


def test_no_alert_at_half_or_more(account):
    with time_machine.travel(NOW, tick=False):
        _codes(account, used=10, unused=10)
        assert sms_code_usage_alert()["outcome"] == "ok"
        _codes(account, used=5, unused=0)
        assert sms_code_usage_alert()["outcome"] == "ok"
    assert not _alerts().exists() and not _audited().exists()


def test_no_alert_without_enough_settled_codes(account, settings):
    with time_machine.travel(NOW, tick=False):
        _codes(account, used=0, unused=19)
        _codes(account, used=0, unused=30, live=True)  # still waiting to be typed
        result = sms_code_usage_alert()
        assert result["outcome"] == "too_few_codes" and result["sent"] == 49
        settings.SMS_CODE_USAGE_MIN_SAMPLE = 19
        assert sms_code_usage_alert()["outcome"] == "alerted"


def test_only_the_last_24_hours_count(account):
    with time_machine.travel(NOW, tick=False) as clock:
        _codes(account, used=0, unused=30)
        clock.shift(24 * 3600 + 1)
        _codes(account, used=15, unused=5)
        assert sms_code_usage_alert()["outcome"] == "ok"
    assert not _alerts().exists()


def test_without_supervisor_addresses_the_alert_is_logged(account, settings, caplog):
    settings.SUPERVISOR_ALERT_EMAILS = []
    with time_machine.travel(NOW, tick=False):
        _codes(account, used=2, unused=18)
        with caplog.at_level(logging.ERROR, logger="portal.notifications"):
            assert sms_code_usage_alert()["outcome"] == "alerted"
    assert "SUPERVISOR_ALERT_EMAILS is empty" in caplog.text
    assert not _alerts().exists()
    assert _audited().get().data["recipients"] == 0


def test_management_command(account):
    out = io.StringIO()
    with time_machine.travel(NOW, tick=False):
        _codes(account, used=4, unused=16)
        call_command("check_sms_usage", stdout=out)
        assert "20 sent, 4 used, 0 still pending, ratio 20%: alert sent" in out.getvalue()
        call_command("check_sms_usage", stdout=out)
        assert "alert already sent in the last 24 h" in out.getvalue()
    assert _alerts().count() == 2
