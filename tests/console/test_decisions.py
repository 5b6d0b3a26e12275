"""Choices made while reviewing the console: each one pinned by a test."""

import pytest

from portal.notifications.models import OutboundMessage
from portal.recovery import services as recovery
from portal.recovery.models import ConsoleBlock, IdentityCheck
from tests.console.conftest import identity_check, search, staff_login


@pytest.mark.django_db
def test_an_empty_check_form_is_not_a_failed_check(client, phone_advisor, member_account):
    member = member_account.member
    member.cpam = phone_advisor.cpam
    member.save()
    staff_login(client, phone_advisor)
    search(client, member)
    for _ in range(4):
        identity_check(
            client,
            member,
            {"birth_date": "", "postal_code": "", "first_name": "", "iban_last4": ""},
        )
    assert IdentityCheck.objects.count() == 0
    assert not ConsoleBlock.objects.exists()


@pytest.mark.django_db
def test_an_email_given_at_the_desk_tells_the_old_address(front_desk, member_account):
    member = member_account.member
    member.cpam = front_desk.cpam
    member.save()
    old = member_account.email
    recovery.activation_complete(
        account=member_account,
        password="Nouvelle-Phrase-Secrete-7",
        email="jardin.bleu@example.org",
        mobile_phone="",
        ip="10.0.0.1",
    )
    notice = OutboundMessage.objects.get(template="email_change_done")
    assert notice.recipient == old
    assert "jardin.bleu@example.org" in notice.body_text
