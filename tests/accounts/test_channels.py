"""Rules of the recovery-channel services and of the one-time codes, below the web pages."""

import hashlib
import hmac
from datetime import timedelta

import pytest
import time_machine
from django.db import transaction
from django.utils import timezone

from portal.accounts import channels, codes, services
from portal.accounts.models import AccountToken, OneTimeCode
from portal.core.tokens import token_hash
from portal.notifications.models import OutboundMessage
from tests.factories import PASSWORD, AccountFactory

IP = "192.0.2.1"
PURPOSE = OneTimeCode.Purpose.MOBILE_CHANGE


def issue(account, **overrides):
    options = {
        "account": account,
        "purpose": PURPOSE,
        "target": "+33781223344",
        "digits": 6,
        "ttl": 600,
        "max_attempts": 5,
        "per_hour": 3,
    }
    options.update(overrides)
    with transaction.atomic():
        return codes.code_issue(**options)


def check(account, code):
    with transaction.atomic():
        return codes.code_check(account=account, purpose=PURPOSE, code=code)


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10 ** len(code):0{len(code)}d}"


# --- one-time codes -------------------------------------------------------------------------


@pytest.mark.django_db
def test_code_is_random_digits_stored_as_a_keyed_hash_bound_to_account_and_purpose(account):
    code, row = issue(account)
    assert len(code) == 6 and code.isdigit()
    row.refresh_from_db()
    assert code not in row.code_hash
    # Not a plain hash: a copy of the table cannot be brute-forced over 10^6 values.
    assert row.code_hash != hashlib.sha256(code.encode()).hexdigest()
    assert row.code_hash != hashlib.sha256(f"{account.pk}:{code}".encode()).hexdigest()
    other = AccountFactory()
    assert row.code_hash != codes.code_hash(account_id=other.pk, purpose=PURPOSE, code=code)
    assert row.code_hash != codes.code_hash(account_id=account.pk, purpose="recovery", code=code)
    assert row.code_hash == codes.code_hash(account_id=account.pk, purpose=PURPOSE, code=code)


@pytest.mark.django_db
def test_codes_are_not_predictable(account):
    seen = {issue(account, per_hour=1000)[0] for _ in range(30)}
    assert len(seen) > 25


@pytest.mark.django_db
def test_eight_digit_codes_for_other_purposes(account):
    """The assisted recovery will reuse the same table and functions with 8 digits."""
    code, row = issue(account, digits=8, target="", per_hour=5)
    assert len(code) == 8 and code.isdigit()
    assert check(account, code).ok


@pytest.mark.django_db
def test_right_code_is_consumed_once(account):
    code, _ = issue(account)
    assert check(account, code).ok
    verdict = check(account, code)
    assert isinstance(verdict.error, codes.CodeInvalid)
    assert not isinstance(verdict.error, codes.CodeWrong)


@pytest.mark.django_db
def test_wrong_tries_are_counted_then_the_code_dies(account):
    code, row = issue(account)
    for remaining in (4, 3, 2, 1):
        verdict = check(account, wrong(code))
        assert isinstance(verdict.error, codes.CodeWrong)
        assert verdict.error.remaining == remaining
    assert isinstance(check(account, wrong(code)).error, codes.CodeExhausted)
    assert isinstance(check(account, code).error, codes.CodeExhausted)
    row.refresh_from_db()
    assert row.attempts == 5 and row.revoked_at and not row.used_at


@pytest.mark.django_db
def test_expired_code_uses_no_try(account):
    with time_machine.travel("2026-03-02 10:00:00+01:00", tick=False) as clock:
        code, row = issue(account)
        clock.shift(600)
        assert isinstance(check(account, code).error, codes.CodeExpired)
        row.refresh_from_db()
        assert row.attempts == 0


@pytest.mark.django_db
def test_comparison_is_constant_time(account, monkeypatch):
    calls = []
    original = hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return original(a, b)

    monkeypatch.setattr(codes.hmac, "compare_digest", spy)
    code, row = issue(account)
    check(account, wrong(code))
    assert calls and calls[0][0] == row.code_hash


@pytest.mark.django_db
def test_new_code_revokes_the_earlier_one(account):
    first, _ = issue(account)
    second, _ = issue(account)
    if first != second:
        assert not check(account, first).ok
    assert check(account, second).ok
    assert OneTimeCode.objects.filter(revoked_at__isnull=False).count() == 1


@pytest.mark.django_db
def test_at_most_per_hour_codes(account):
    with time_machine.travel("2026-03-02 10:00:00+01:00", tick=False) as clock:
        for _ in range(3):
            issue(account)
            clock.shift(60)
        with pytest.raises(codes.TooManyCodes) as exc:
            issue(account)
        assert exc.value.retry_after == 3600 - 180 + 1
        assert OneTimeCode.objects.count() == 3
        clock.shift(3600 - 180 + 1)
        issue(account)


@pytest.mark.django_db
def test_code_issued_before_a_secret_key_rotation_still_checks(account, settings):
    code, _ = issue(account)
    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = "a-brand-new-secret-key-" + "x" * 40
    assert check(account, code).ok


@pytest.mark.django_db
def test_codes_of_one_account_do_not_count_for_another(account):
    code, _ = issue(account)
    other = AccountFactory()
    assert check(other, code).error is not None
    assert check(account, code).ok


# --- mobile ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_mobile_change_sends_the_code_to_the_new_number_only(account):
    channels.mobile_change_request(
        account=account, new_mobile="+33781223344", current_password=PASSWORD, ip=IP
    )
    (sms,) = OutboundMessage.objects.filter(channel="sms")
    assert sms.recipient == "+33781223344"
    assert sms.expires_at == OneTimeCode.objects.get().expires_at  # never delivered late
    assert not OutboundMessage.objects.filter(channel="email").exists()


@pytest.mark.django_db
def test_rolled_back_request_sends_nothing(account):
    def request_then_crash():
        with transaction.atomic():
            channels.mobile_change_request(
                account=account, new_mobile="+33781223344", current_password=PASSWORD, ip=IP
            )
            raise RuntimeError

    with pytest.raises(RuntimeError):
        request_then_crash()
    assert not OutboundMessage.objects.exists()
    assert not OneTimeCode.objects.exists()


@pytest.mark.django_db
def test_wrong_try_is_kept_although_the_service_raises(account):
    channels.mobile_change_request(
        account=account, new_mobile="+33781223344", current_password=PASSWORD, ip=IP
    )
    with pytest.raises(codes.CodeWrong):
        channels.mobile_change_confirm(account=account, code="abcdef", ip=IP)
    assert OneTimeCode.objects.get().attempts == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("number", "masked"),
    [
        ("+33612345642", "06 •• •• •• 42"),
        ("+33781223344", "07 •• •• •• 44"),
        ("+262692123456", "06•• •• •• 56"),  # La Réunion: 0692 12 34 56
        ("", ""),
    ],
)
def test_phone_mask(number, masked):
    from phonenumber_field.phonenumber import to_python

    assert channels.phone_mask(to_python(number) if number else "") == masked


# --- email ----------------------------------------------------------------------------------


@pytest.mark.django_db
@time_machine.travel("2026-03-02 10:00:00+01:00", tick=False)
def test_email_change_token_is_hashed_and_bound_to_the_new_address(account):
    channels.email_change_request(
        account=account, new_email=" nouvelle@example.net ", current_password=PASSWORD, ip=IP
    )
    token = AccountToken.objects.get(purpose=AccountToken.Purpose.EMAIL_CHANGE)
    message = OutboundMessage.objects.get(template="email_change_confirm")
    raw = message.body_text.split("/mon-compte/courriel/confirmer/")[1].split()[0]
    assert token.token_hash == token_hash(raw) and raw not in token.token_hash
    assert token.target == "nouvelle@example.net"
    assert token.expires_at - token.created_at == timedelta(hours=24)
    assert message.expires_at == token.expires_at


@pytest.mark.django_db
def test_email_change_kills_reset_links_sent_to_the_old_address(account):
    reset = AccountToken.objects.create(
        account=account,
        purpose=AccountToken.Purpose.PASSWORD_RESET,
        token_hash=token_hash("reset-link"),
        expires_at=timezone.now() + timedelta(minutes=30),
    )
    channels.email_change_request(
        account=account, new_email="nouvelle@example.net", current_password=PASSWORD, ip=IP
    )
    message = OutboundMessage.objects.get(template="email_change_confirm")
    raw = message.body_text.split("/mon-compte/courriel/confirmer/")[1].split()[0]
    channels.email_change_confirm(token=raw, ip=IP)
    reset.refresh_from_db()
    assert reset.revoked_at is not None


@pytest.mark.django_db
def test_email_change_link_of_a_deleted_account_is_invalid(account):
    channels.email_change_request(
        account=account, new_email="nouvelle@example.net", current_password=PASSWORD, ip=IP
    )
    message = OutboundMessage.objects.get(template="email_change_confirm")
    raw = message.body_text.split("/mon-compte/courriel/confirmer/")[1].split()[0]
    account.state = account.State.DELETED
    account.save()
    with pytest.raises(services.TokenInvalid):
        channels.email_change_confirm(token=raw, ip=IP)


# --- current password -----------------------------------------------------------------------


@pytest.mark.django_db
def test_current_password_check_is_nfkc_like_the_login(account):
    account.set_password("Ｍot-De-Passe-Pleine-Chasse")  # full-width M
    account.save()
    channels.current_password_check(
        account=account, password="Mot-De-Passe-Pleine-Chasse", ip=IP, purpose="email"
    )


@pytest.mark.django_db
def test_current_password_failures_share_the_login_throttle(account):
    with time_machine.travel("2026-03-02 10:00:00+01:00", tick=False):
        for _ in range(5):
            with pytest.raises(services.InvalidCredentials):
                channels.current_password_check(
                    account=account, password="Pas-Le-Bon-Mot-2", ip=IP, purpose="email"
                )
        with pytest.raises(services.Throttled):
            services.account_authenticate(nir=account.nir, password=PASSWORD, ip="192.0.2.99")
