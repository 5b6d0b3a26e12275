"""The recovery code an advisor sends by SMS, from the console to the member's new password.

8 digits, to the mobile on file only, 10 minutes, single use, 5 wrong tries in
all (web and API, any session), 3 per member per day, the latest one only.
"""

import re

import pytest
import time_machine
from django.test import Client

from portal.accounts.models import Account, ApiToken, OneTimeCode
from portal.audit.models import AuditEntry
from portal.notifications.models import OutboundMessage
from tests.console.conftest import (
    MEMBER_MOBILE,
    MEMBER_NIR13,
    NEW_PASSWORD,
    make_member_account,
    make_staff,
    member_path,
    open_with_check,
    sms_codes,
    staff_login,
    without_csrf,
)
from tests.factories import PASSWORD, CpamFactory

T0 = "2026-03-02 10:00:00+01:00"
REFUSED = "Numéro ou code incorrect, expiré ou déjà utilisé."


@pytest.fixture
def account(db):
    return make_member_account(CpamFactory())


def advisor(cpam) -> Client:
    client = Client()
    staff_login(client, make_staff("phone_advisor", cpam=cpam))
    return client


def send(client, member, extra=None):
    return client.post(member_path(member) + "code-sms/", extra or {}, follow=True)


def web(client, code, nir=MEMBER_NIR13):
    return client.post("/mot-de-passe-oublie/code-sms", {"nir": nir, "code": code})


def api(client, code, nir=MEMBER_NIR13, password=NEW_PASSWORD):
    return client.post(
        "/api/v1/password-reset/sms-code",
        {"nir": nir, "code": code, "new_password": password},
        content_type="application/json",
    )


def accepted_on_web(client, code) -> bool:
    response = web(client, code)
    if response.status_code == 302:
        assert response["Location"] == "/mot-de-passe-oublie/code-sms/nouveau-mot-de-passe/"
        return True
    assert response.status_code == 400 and REFUSED in response.content.decode()
    return False


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10**8:08d}"


def sent_code(cpam_member, **kwargs) -> str:
    """A phone advisor checks the caller and sends one code; returns what the phone got."""
    client = advisor(cpam_member.cpam)
    open_with_check(client, cpam_member)
    send(client, cpam_member)
    return sms_codes(cpam_member)[-1]


def test_the_code_goes_only_to_the_mobile_on_file(account):
    member = account.member
    client = advisor(member.cpam)
    open_with_check(client, member)
    page = client.get(member_path(member)).content.decode()
    # Nothing to type a number into; the number is shown masked.
    assert 'type="tel"' not in page and "06 •• •• •• 42" in page
    response = send(
        client,
        member,
        {"to": "+33700000001", "mobile_phone": "+33700000001", "recipient": "0700000001"},
    )
    assert "Code envoyé par SMS au mobile enregistré" in response.content.decode()
    (sms,) = OutboundMessage.objects.filter(channel="sms")
    assert sms.recipient == MEMBER_MOBILE
    assert "0700000001" not in sms.body_text
    (row,) = OneTimeCode.objects.filter(purpose="recovery_sms")
    assert row.target == MEMBER_MOBILE
    code = sms_codes(member)[0]
    assert re.fullmatch(r"\d{8}", code)
    # Stored only as a keyed hash; the advisor never sees it.
    assert code not in row.code_hash and len(row.code_hash) == 64
    assert code not in client.get(member_path(member)).content.decode()
    assert code not in response.content.decode()


def test_a_member_without_mobile_gets_no_sms(db):
    account = make_member_account(CpamFactory(), mobile="")
    client = advisor(account.member.cpam)
    open_with_check(client, account.member)
    page = send(client, account.member).content.decode()
    assert "Aucun mobile enregistré" in page
    assert not OutboundMessage.objects.filter(channel="sms").exists()
    assert not OneTimeCode.objects.exists()


@pytest.mark.parametrize(
    ("after", "accepted"),
    [
        pytest.param(9 * 60 + 59, True, id="9:59"),
        pytest.param(10 * 60, False, id="10:00"),
        pytest.param(10 * 60 + 1, False, id="10:01"),
    ],
)
def test_the_code_lives_10_minutes(account, after, accepted):
    with time_machine.travel(T0, tick=False) as clock:
        code = sent_code(account.member)
        clock.shift(after)
        assert accepted_on_web(Client(), code) is accepted
        if not accepted:
            assert api(Client(), code).json() == {"error": "invalid_code"}


def test_the_code_is_single_use(account, run_tasks):
    with time_machine.travel(T0, tick=False):
        code = sent_code(account.member)
        member_client = Client()
        assert accepted_on_web(member_client, code)
        assert accepted_on_web(Client(), code) is False
        assert api(Client(), code).status_code == 400
        response = member_client.post(
            "/mot-de-passe-oublie/code-sms/nouveau-mot-de-passe/",
            {"password": NEW_PASSWORD, "password2": NEW_PASSWORD},
        )
        assert response.status_code == 302 and response["Location"] == "/connexion/"
        # The password page itself is not a second use.
        again = member_client.get("/mot-de-passe-oublie/code-sms/nouveau-mot-de-passe/")
        assert again.status_code == 302 and again["Location"] == "/mot-de-passe-oublie/code-sms"
    account.refresh_from_db()
    assert account.check_password(NEW_PASSWORD)
    run_tasks()
    (notice,) = OutboundMessage.objects.filter(template="password_changed")
    assert notice.recipient == "mh.quenardel@example.net"


@pytest.mark.parametrize(
    "channels",
    [
        pytest.param(["web"] * 5, id="web"),
        pytest.param(["api"] * 5, id="api"),
        pytest.param(["web", "api", "web", "api", "web"], id="web-and-api"),
    ],
)
def test_five_wrong_tries_kill_the_code_across_channels_and_sessions(account, channels):
    with time_machine.travel(T0, tick=False):
        code = sent_code(account.member)
        for channel in channels:
            attacker = Client()  # a new session each time
            if channel == "web":
                assert accepted_on_web(attacker, wrong(code)) is False
            else:
                assert api(attacker, wrong(code)).json() == {"error": "invalid_code"}
        # The right code is now dead, on both.
        assert accepted_on_web(Client(), code) is False
        assert api(Client(), code).json() == {"error": "invalid_code"}
    account.refresh_from_db()
    assert account.check_password(PASSWORD)
    (row,) = OneTimeCode.objects.filter(purpose="recovery_sms")
    assert row.attempts == 5 and row.used_at is None


def test_four_wrong_tries_leave_the_right_code_usable(account):
    with time_machine.travel(T0, tick=False):
        code = sent_code(account.member)
        for _ in range(2):
            assert accepted_on_web(Client(), wrong(code)) is False
            assert api(Client(), wrong(code)).status_code == 400
        assert api(Client(), code).json() == {"status": "password_changed"}
    account.refresh_from_db()
    assert account.check_password(NEW_PASSWORD)


def test_a_weak_password_on_the_api_leaves_the_code_usable(account):
    with time_machine.travel(T0, tick=False):
        code = sent_code(account.member)
        weak = api(Client(), code, password="quenardel")
        assert weak.status_code == 400 and weak.json()["error"] == "weak_password"
        assert api(Client(), code).status_code == 200


def test_at_most_three_codes_per_member_per_day(account):
    member = account.member
    with time_machine.travel(T0, tick=False) as clock:
        first = advisor(member.cpam)
        open_with_check(first, member)
        send(first, member)
        clock.shift(60)
        send(first, member)
        second = advisor(member.cpam)  # another advisor: the limit is the member's
        open_with_check(second, member)
        send(second, member)
        assert len(sms_codes(member)) == 3
        clock.shift(60)
        refused = send(first, member).content.decode()
        assert "Limite atteinte : 3 codes par jour pour cet assuré." in refused
        assert len(sms_codes(member)) == 3
        (entry,) = AuditEntry.objects.filter(action="console.recovery_code.refused")
        assert entry.data == {"outcome": "daily_limit"}
        # Still the limit 1 second before 24 hours have passed since the first code…
        clock.shift(24 * 3600 - 120 - 1)
        late = advisor(member.cpam)
        open_with_check(late, member)
        assert "Limite atteinte" in send(late, member).content.decode()
        assert len(sms_codes(member)) == 3
        # …and a new code once they have (two still count: one more is allowed).
        clock.shift(2)
        send(late, member)
        assert len(sms_codes(member)) == 4


def test_unknown_nir_and_wrong_code_get_the_same_answer(account):
    unknown_nir13 = "1850575111222"
    with time_machine.travel(T0, tick=False):
        code = sent_code(account.member)
        wrong_code = web(Client(), wrong(code))
        unknown = web(Client(), code, nir=unknown_nir13)
        assert wrong_code.status_code == unknown.status_code == 400
        # The same page, but for what was typed, echoed in the fields.
        echoed = (
            without_csrf(unknown.content.decode())
            .replace(unknown_nir13, MEMBER_NIR13)
            .replace(f'value="{code}"', f'value="{wrong(code)}"')
        )
        assert without_csrf(wrong_code.content.decode()) == echoed
        wrong_api = api(Client(), wrong(code))
        unknown_api = api(Client(), code, nir=unknown_nir13)
        assert wrong_api.status_code == unknown_api.status_code == 400
        assert wrong_api.json() == unknown_api.json() == {"error": "invalid_code"}
        # The code of one member does not open another member's account either.
        assert api(Client(), code).status_code == 200


def test_a_new_code_revokes_the_previous_one(account):
    member = account.member
    with time_machine.travel(T0, tick=False) as clock:
        client = advisor(member.cpam)
        open_with_check(client, member)
        send(client, member)
        clock.shift(60)
        send(client, member)
        old, new = sms_codes(member)
        first, second = OneTimeCode.objects.order_by("id")
        assert first.revoked_at is not None and second.revoked_at is None
        assert accepted_on_web(Client(), old) is False
        assert api(Client(), new).status_code == 200


@time_machine.travel(T0, tick=False)
def test_a_reset_by_code_ends_sessions_and_api_tokens(account):
    member_web = Client()
    member_web.force_login(account, backend="portal.accounts.backends.NirBackend")
    assert member_web.get("/mon-compte/").status_code == 200
    token = Client().post(
        "/api/v1/auth/token",
        {"nir": MEMBER_NIR13, "password": PASSWORD},
        content_type="application/json",
    )
    bearer = {"HTTP_AUTHORIZATION": f"Bearer {token.json()['access_token']}"}
    assert Client().get("/api/v1/me", **bearer).status_code == 200
    code = sent_code(account.member)
    assert api(Client(), code).status_code == 200
    assert member_web.get("/mon-compte/").status_code == 302
    assert Client().get("/api/v1/me", **bearer).status_code == 401
    assert not ApiToken.objects.filter(revoked_at__isnull=True).exists()
    assert Account.objects.get(pk=account.pk).check_password(NEW_PASSWORD)
