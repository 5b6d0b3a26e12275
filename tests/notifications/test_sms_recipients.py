"""Only mobile numbers of France (overseas included) and of the other EU states get an SMS."""

import contextlib

import phonenumbers
import pytest
from django.db import transaction
from django_tasks_db.models import DBTaskResult
from hypothesis import given
from hypothesis import strategies as st

from portal.audit.models import AuditEntry
from portal.notifications.models import OutboundMessage
from portal.notifications.services import SmsRecipientRefused, sms_send
from portal.notifications.sms import ALLOWED_REGIONS, sms_recipient_normalize


def _send(to, member=None):
    with transaction.atomic():
        return sms_send(
            to=to,
            template="mobile_change_code",
            context={"code": "123456", "minutes": 10},
            member=member,
        )


@pytest.mark.parametrize(
    ("number", "reason"),
    [
        ("+12025550123", "region"),  # United States
        ("+447400123456", "region"),  # United Kingdom, out of the EU since 2020
        ("+41791234567", "region"),  # Switzerland
        ("+2693212345", "region"),  # the Comoros (+269), not Mayotte (+262)
        ("+33140000000", "not_mobile"),  # a Paris landline
        ("01 40 00 00 00", "not_mobile"),
        ("+33890710000", "not_mobile"),  # a premium-rate number
        ("+4930123456", "not_mobile"),  # a Berlin landline
        ("+3361234567", "invalid"),  # one digit short
        ("06 12 34", "invalid"),
        ("not a number", "invalid"),
        ("", "invalid"),
        ("+33612345678<script>", "invalid"),
    ],
)
@pytest.mark.django_db
def test_refused_numbers_are_never_queued(
    number, reason, member, django_capture_on_commit_callbacks
):
    with (
        pytest.raises(SmsRecipientRefused) as refused,
        django_capture_on_commit_callbacks(execute=True),
    ):
        _send(number, member)
    assert refused.value.reason == reason
    assert OutboundMessage.objects.count() == 0
    assert DBTaskResult.objects.count() == 0


@pytest.mark.django_db
def test_a_refusal_caught_inside_the_transaction_is_audited(member):
    # What a caller does to show a message and keep the audit entry.
    with transaction.atomic(), contextlib.suppress(SmsRecipientRefused):
        sms_send(to="+12025550123", template="mobile_change_code", context={}, member=member)
    (entry,) = AuditEntry.objects.filter(action="notification.sms.refused")
    assert entry.member == member
    assert entry.data == {"template": "mobile_change_code", "reason": "region", "region": "US"}
    assert OutboundMessage.objects.count() == 0


@pytest.mark.parametrize(
    ("number", "stored"),
    [
        ("+33612345678", "+33612345678"),
        ("06 12 34 56 78", "+33612345678"),  # French national form
        ("07 81 22 33 44", "+33781223344"),
        ("+262 692 12 34 56", "+262692123456"),  # La Réunion
        ("+262639012345", "+262639012345"),  # Mayotte
        ("+590690001234", "+590690001234"),  # Guadeloupe, Saint-Martin, Saint-Barthélemy
        ("+594694201234", "+594694201234"),  # Guyane
        ("+596696201234", "+596696201234"),  # Martinique
        ("+508551234", "+508551234"),  # Saint-Pierre-et-Miquelon
        ("+4915123456789", "+4915123456789"),  # Germany
        ("+34612345678", "+34612345678"),  # Spain
        ("+353851234567", "+353851234567"),  # Ireland
    ],
)
@pytest.mark.django_db
def test_french_and_eu_mobiles_are_queued_in_e164(
    number, stored, member, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        assert _send(number, member).recipient == stored
    assert DBTaskResult.objects.count() == 1


@pytest.mark.parametrize("region", sorted(ALLOWED_REGIONS))
def test_the_example_mobile_of_every_allowed_region_passes(region):
    number = phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE)
    assert sms_recipient_normalize(number).startswith(f"+{number.country_code}")


@pytest.mark.parametrize("region", ["US", "GB", "CH", "NO", "MA", "DZ", "TN", "KM", "NC", "PF"])
def test_the_example_mobile_of_other_regions_is_refused(region):
    number = phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE)
    with pytest.raises(SmsRecipientRefused):
        sms_recipient_normalize(number)


@given(st.text(max_size=30))
def test_any_input_is_either_an_allowed_mobile_or_refused(text):
    try:
        e164 = sms_recipient_normalize(text)
    except SmsRecipientRefused:
        return
    number = phonenumbers.parse(e164)
    assert e164.startswith("+") and phonenumbers.is_valid_number(number)
    assert phonenumbers.region_code_for_number(number) in ALLOWED_REGIONS


@given(st.from_regex(r"\+(33|262|590|49|1|44|41)[0-9]{6,11}", fullmatch=True))
def test_any_phone_shaped_input_is_either_an_allowed_mobile_or_refused(text):
    test_any_input_is_either_an_allowed_mobile_or_refused.hypothesis.inner_test(text)
