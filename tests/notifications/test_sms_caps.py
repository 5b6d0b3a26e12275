"""Daily SMS caps against SMS pumping: per member, per sending advisor, for the whole portal."""

import pytest
import time_machine
from django.db import transaction

from portal.audit.models import AuditEntry
from portal.notifications.models import OutboundMessage
from portal.notifications.services import SmsCapReached, sms_send
from tests.factories import MemberFactory

pytestmark = pytest.mark.django_db


def _send(member, *, sent_by=""):
    """Send like a caller that shows a message on a cap: caught inside its transaction."""
    with transaction.atomic():
        try:
            sms_send(
                to=member.mobile_phone,
                template="mobile_change_code",
                context={"code": "123456", "minutes": 10},
                member=member,
                sent_by=sent_by,
            )
        except SmsCapReached as exc:
            return exc.scope
    return "sent"


def _capped():
    return [
        (entry.actor, entry.data)
        for entry in AuditEntry.objects.filter(action="notification.sms.capped").order_by("id")
    ]


def test_five_sms_per_member_per_rolling_day(member):
    other = MemberFactory()
    with time_machine.travel("2026-03-02 10:00:00+01:00", tick=False) as clock:
        assert [_send(member) for _ in range(5)] == ["sent"] * 5
        clock.shift(23 * 3600)
        assert _send(member) == "member"
        assert _send(other) == "sent"  # the others are not affected
        clock.shift(3601)  # the first five are more than 24 h old
        assert _send(member) == "sent"
    assert OutboundMessage.objects.filter(member=member).count() == 6
    assert _capped() == [
        ("system", {"template": "mobile_change_code", "scope": "member", "cap": 5})
    ]


def test_given_up_sms_do_not_count(member):
    for _ in range(5):
        _send(member)
    OutboundMessage.objects.update(status=OutboundMessage.Status.FAILED)
    assert _send(member) == "sent"


def test_member_cap_is_a_setting(member, settings):
    settings.SMS_DAILY_CAP_PER_MEMBER = 2
    assert [_send(member) for _ in range(3)] == ["sent", "sent", "member"]


def test_cap_per_sending_advisor(settings):
    settings.SMS_DAILY_CAP_PER_SENDER = 3
    members = MemberFactory.create_batch(5)
    results = [_send(m, sent_by="staff:3") for m in members[:4]]
    assert results == ["sent", "sent", "sent", "sender"]
    assert _send(members[4], sent_by="staff:4") == "sent"  # another advisor
    assert _send(members[4]) == "sent"  # the member themself
    assert OutboundMessage.objects.filter(sent_by="staff:3").count() == 3
    assert _capped() == [
        ("staff:3", {"template": "mobile_change_code", "scope": "sender", "cap": 3})
    ]


def test_sender_cap_defaults_to_100(settings):
    assert _send(MemberFactory(), sent_by="staff:3") == "sent"
    OutboundMessage.objects.bulk_create(
        [
            OutboundMessage(channel="sms", template="t", recipient="+33612345678", body_text="x",
                            sent_by="staff:3")
            for _ in range(99)
        ]
    )  # fmt: skip
    assert _send(MemberFactory(), sent_by="staff:3") == "sender"


def test_global_cap(settings):
    settings.SMS_DAILY_CAP_GLOBAL = 4
    members = MemberFactory.create_batch(3)
    results = [_send(m) for m in members] + [_send(members[0], sent_by="staff:1")]
    assert results == ["sent"] * 4
    assert _send(members[1]) == "global"
    assert _send(members[2], sent_by="staff:2") == "global"
    assert [data["scope"] for _, data in _capped()] == ["global", "global"]


def test_global_cap_defaults_to_10000():
    OutboundMessage.objects.bulk_create(
        [
            OutboundMessage(channel="sms", template="t", recipient="+33612345678", body_text="x")
            for _ in range(9_999)
        ]
    )
    assert _send(MemberFactory()) == "sent"
    assert _send(MemberFactory()) == "global"


def test_emails_do_not_count(member):
    OutboundMessage.objects.bulk_create(
        [
            OutboundMessage(channel="email", template="t", recipient="a@example.org",
                            body_text="x", member=member)
            for _ in range(10)
        ]
    )  # fmt: skip
    assert _send(member) == "sent"


def test_a_cap_that_propagates_queues_nothing(member, settings):
    settings.SMS_DAILY_CAP_PER_MEMBER = 0
    with pytest.raises(SmsCapReached) as capped, transaction.atomic():
        sms_send(to=member.mobile_phone, template="mobile_change_code", context={}, member=member)
    assert capped.value.scope == "member" and capped.value.cap == 0
    assert OutboundMessage.objects.count() == 0
