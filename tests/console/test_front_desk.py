"""The front-desk path: identity document seen at a reception site, a printed activation
code (24 h, single use), and the member sets a new password, email and mobile."""

import re

import pytest
import time_machine
from django.test import Client

from portal.accounts.models import Account, OneTimeCode
from portal.audit.models import AuditEntry
from portal.recovery.models import DeskVisit
from tests.console.conftest import (
    MEMBER_NIR13,
    NEW_PASSWORD,
    make_member_account,
    make_staff,
    member_path,
    open_with_check,
    staff_login,
)
from tests.factories import PASSWORD, CpamFactory

T0 = "2026-03-02 10:00:00+01:00"
NEW_EMAIL = "mhq.accueil@example.org"


@pytest.fixture
def account(db):
    return make_member_account(CpamFactory(), mobile="")


def desk(cpam, role="front_desk"):
    client = Client()
    staff = make_staff(role, cpam=cpam)
    staff_login(client, staff)
    return client, staff


def record_visit(client, member, last_chars="12AB"):
    return client.post(
        member_path(member) + "visite/", {"document_type": "passport", "last_chars": last_chars}
    )


def slip_code(response) -> str:
    return re.search(r'<p class="fr-h2">(\d{8})</p>', response.content.decode()).group(1)


def printed_code(member) -> str:
    client, _ = desk(member.cpam)
    open_with_check(client, member)
    response = record_visit(client, member)
    assert response.status_code == 200
    return slip_code(response)


def redeem(client, code, nir=MEMBER_NIR13):
    return client.post("/mot-de-passe-oublie/code-activation", {"nir": nir, "code": code})


def choose(client, **extra):
    return client.post(
        "/mot-de-passe-oublie/code-activation/nouveau-mot-de-passe/",
        {"password": NEW_PASSWORD, "password2": NEW_PASSWORD, **extra},
    )


def test_only_the_front_desk_records_a_visit(account):
    advisor, _ = desk(account.member.cpam, role="phone_advisor")
    open_with_check(advisor, account.member)
    page = advisor.get(member_path(account.member)).content.decode()
    assert "visite/" not in page
    assert record_visit(advisor, account.member).status_code == 403
    assert not DeskVisit.objects.exists()
    assert not OneTimeCode.objects.exists()


def test_the_slip_shows_the_code_once(account):
    client, staff = desk(account.member.cpam)
    open_with_check(client, account.member)
    assert (
        "Enregistrer la visite et imprimer le code"
        in client.get(member_path(account.member)).content.decode()
    )
    response = record_visit(client, account.member, last_chars="x97k")
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    code = slip_code(response)
    page = response.content.decode()
    assert "Le code ne pourra plus être affiché." in page
    assert "•" * 9 + MEMBER_NIR13[-4:] in page and MEMBER_NIR13 not in page
    visit = DeskVisit.objects.get()
    assert (visit.document_type, visit.document_last_chars, visit.staff) == (
        "passport",
        "X97K",
        staff,
    )
    # Stored only as a keyed hash, shown nowhere else.
    row = OneTimeCode.objects.get(purpose="desk_activation")
    assert code not in row.code_hash
    assert code not in client.get(member_path(account.member)).content.decode()
    assert code not in client.get("/conseiller/").content.decode()
    # Printing again means a new code: the first one dies.
    second = slip_code(record_visit(client, account.member))
    assert redeem(Client(), code).status_code == 400
    assert redeem(Client(), second).status_code == 302


def test_an_incomplete_document_records_nothing(account):
    client, _ = desk(account.member.cpam)
    open_with_check(client, account.member)
    response = record_visit(client, account.member, last_chars="12")
    assert response.status_code == 302
    assert "Saisie incomplète." in client.get(response["Location"]).content.decode()
    assert not DeskVisit.objects.exists() and not OneTimeCode.objects.exists()


def test_the_member_sets_a_new_password_email_and_mobile(account, run_tasks):
    with time_machine.travel(T0, tick=False):
        code = printed_code(account.member)
        member = Client()
        response = redeem(member, code)
        assert response.status_code == 302
        assert response["Location"] == "/mot-de-passe-oublie/code-activation/nouveau-mot-de-passe/"
        form = member.get(response["Location"]).content.decode()
        assert 'name="email"' in form and 'name="mobile_phone"' in form
        done = choose(member, email=NEW_EMAIL, mobile_phone="07 81 22 33 44")
        assert done.status_code == 302 and done["Location"] == "/connexion/"
    account.refresh_from_db()
    assert account.check_password(NEW_PASSWORD)
    assert account.email == NEW_EMAIL and account.email_previous == "mh.quenardel@example.net"
    assert str(account.mobile_phone) == "+33781223344"
    assert (
        Client().post("/connexion/", {"nir": MEMBER_NIR13, "password": NEW_PASSWORD})["Location"]
        != "/connexion/"
    )
    assert AuditEntry.objects.filter(action="recovery.desk_activation.channels_updated").exists()


def test_a_weak_password_is_refused_on_the_activation_page(account):
    with time_machine.travel(T0, tick=False):
        member = Client()
        redeem(member, printed_code(account.member))
        response = member.post(
            "/mot-de-passe-oublie/code-activation/nouveau-mot-de-passe/",
            {"password": "quenardel", "password2": "quenardel", "email": NEW_EMAIL},
        )
        assert response.status_code == 400
    account.refresh_from_db()
    assert account.check_password(PASSWORD) and account.email == "mh.quenardel@example.net"


@pytest.mark.parametrize(
    ("after", "accepted"),
    [
        pytest.param(24 * 3600 - 1, True, id="23:59:59"),
        pytest.param(24 * 3600 + 1, False, id="24:00:01"),
    ],
)
def test_the_activation_code_lives_24_hours(account, after, accepted):
    with time_machine.travel(T0, tick=False) as clock:
        code = printed_code(account.member)
        clock.shift(after)
        assert (redeem(Client(), code).status_code == 302) is accepted


def test_the_activation_code_is_single_use(account):
    with time_machine.travel(T0, tick=False):
        code = printed_code(account.member)
        first = Client()
        assert redeem(first, code).status_code == 302
        assert choose(first).status_code == 302
        again = redeem(Client(), code)
        assert again.status_code == 400
        assert "Numéro ou code incorrect, expiré ou déjà utilisé." in again.content.decode()


def test_an_activation_code_is_not_an_sms_code(account):
    with time_machine.travel(T0, tick=False):
        code = printed_code(account.member)
        sms_page = Client().post(
            "/mot-de-passe-oublie/code-sms", {"nir": MEMBER_NIR13, "code": code}
        )
        assert sms_page.status_code == 400
        api = Client().post(
            "/api/v1/password-reset/sms-code",
            {"nir": MEMBER_NIR13, "code": code, "new_password": NEW_PASSWORD},
            content_type="application/json",
        )
        assert api.status_code == 400
        assert redeem(Client(), code).status_code == 302
    assert Account.objects.get(pk=account.pk).check_password(PASSWORD)
