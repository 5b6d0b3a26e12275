"""The 36 46 path, end to end: console → identity check → SMS code → member's new password."""

import re

import pytest
import time_machine

from portal.accounts.models import Account
from portal.audit.models import AuditEntry
from portal.notifications.models import OutboundMessage
from tests.console.conftest import staff_login
from tests.factories import AccountFactory

NEW = "Nouvelle-Phrase-Secrete-7"
RIGHT = {
    "birth_date": "1985-05-12",
    "postal_code": "75002",
    "first_name": "jeanne",
    "iban_last4": "0189",
}


def open_member(client, account):
    response = client.post("/conseiller/recherche/", {"nir": account.nir})
    assert response.status_code == 302
    return response["Location"]


@pytest.mark.django_db
def test_the_whole_phone_path(client, phone_advisor, run_tasks):
    account = AccountFactory(member__cpam=phone_advisor.cpam, mobile_phone="+33612345642")
    member_page = None
    with time_machine.travel("2026-03-02 10:00:00+01:00", tick=False):
        staff_login(client, phone_advisor)
        member_page = open_member(client, account)
        page = client.get(member_page).content.decode()
        assert "Vérifier l’identité" in page
        assert "Envoyer le code" not in page  # nothing before the check
        client.post(member_page + "verification/", RIGHT)
        page = client.get(member_page).content.decode()
        assert "06 •• •• •• 42" in page
        assert "+33612345642" not in page and "0612345642" not in page
        assert client.post(member_page + "code-sms/").status_code == 302
        run_tasks()
        (sms,) = OutboundMessage.objects.filter(channel="sms")
        assert sms.recipient == "+33612345642"
        code = re.search(r"\b(\d{8})\b", sms.body_text).group(1)
        assert code not in client.get(member_page).content.decode()  # the advisor never reads it

        member = client.__class__()
        response = member.post("/mot-de-passe-oublie/code-sms", {"nir": account.nir, "code": code})
        assert response.status_code == 302
        response = member.post(
            "/mot-de-passe-oublie/code-sms/nouveau-mot-de-passe/",
            {"password": NEW, "password2": NEW},
        )
        assert response.status_code == 302 and response["Location"] == "/connexion/"
    account.refresh_from_db()
    assert account.check_password(NEW)
    actions = set(AuditEntry.objects.filter(member=account.member).values_list("action", flat=True))
    assert {
        "console.member.searched",
        "console.identity_check",
        "console.recovery_code.sent",
        "recovery.recovery_sms.redeemed",
        "account.password.changed",
    } <= actions


@pytest.mark.django_db
def test_api_sms_code_endpoint(client, phone_advisor):
    from portal.recovery import services as recovery

    account = AccountFactory(member__cpam=phone_advisor.cpam)
    check = recovery.identity_check_run(
        staff=phone_advisor,
        member=account.member,
        ip="10.0.0.1",
        birth_date=account.member.birth_date,
        postal_code="75002",
        first_name="Jeanne",
        iban_last4="0189",
    )
    recovery.recovery_code_send(
        staff=phone_advisor, member=account.member, check_id=check.pk, ip="10.0.0.1"
    )
    sms = OutboundMessage.objects.get(channel="sms")
    code = re.search(r"\b(\d{8})\b", sms.body_text).group(1)
    wrong = client.post(
        "/api/v1/password-reset/sms-code",
        {"nir": account.nir, "code": "00000000", "new_password": NEW},
        content_type="application/json",
    )
    assert wrong.status_code == 400 and wrong.json() == {"error": "invalid_code"}
    unknown = client.post(
        "/api/v1/password-reset/sms-code",
        {"nir": "2920675112233", "code": code, "new_password": NEW},
        content_type="application/json",
    )
    assert unknown.json() == wrong.json()
    weak = client.post(
        "/api/v1/password-reset/sms-code",
        {"nir": account.nir, "code": code, "new_password": "court"},
        content_type="application/json",
    )
    assert weak.json()["error"] == "weak_password"
    ok = client.post(
        "/api/v1/password-reset/sms-code",
        {"nir": account.nir, "code": code, "new_password": NEW},
        content_type="application/json",
    )
    assert ok.status_code == 200 and ok.json() == {"status": "password_changed"}
    again = client.post(
        "/api/v1/password-reset/sms-code",
        {"nir": account.nir, "code": code, "new_password": NEW + "x"},
        content_type="application/json",
    )
    assert again.json() == {"error": "invalid_code"}


@pytest.mark.django_db
def test_deletion_keeps_the_member_and_allows_a_new_account(client, phone_advisor, run_tasks):
    account = AccountFactory(member__cpam=phone_advisor.cpam)
    member = account.member
    staff_login(client, phone_advisor)
    member_page = open_member(client, account)
    client.post(member_page + "verification/", RIGHT)
    client.post(
        member_page + "suppression/",
        {"reason": "Plus d’accès à la messagerie ni au mobile", "confirm": "on"},
    )
    account.refresh_from_db()
    assert account.state == Account.State.DELETED and account.nir is None
    member.refresh_from_db()  # the member is still there
    signup = client.__class__()
    signup.post(
        "/compte/creer/",
        {"nir": member.nir, "birth_date": "1985-05-12", "iban_last7": member.iban[-7:]},
    )
    response = signup.post(
        "/compte/creer/identifiants/",
        {"email": "camille.b@example.org", "mobile_phone": "", "password": NEW, "password2": NEW},
    )
    assert response.status_code == 302
    assert Account.objects.filter(
        member=member, state=Account.State.PENDING, email="camille.b@example.org"
    ).exists()
