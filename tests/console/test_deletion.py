"""Deleting the online account from the console: the member and their data stay, every
way into the old account dies, and the member can create a new account."""

import re

import pytest
import time_machine
from django.test import Client

from portal.accounts.models import Account, AccountToken, ApiToken, OneTimeCode
from portal.audit.models import AuditEntry
from portal.members.models import Beneficiary, Member
from portal.notifications.models import OutboundMessage
from tests.console.conftest import (
    MEMBER_NIR13,
    make_member_account,
    make_staff,
    member_path,
    open_with_check,
    sms_codes,
    staff_login,
)
from tests.factories import PASSWORD, CpamFactory

T0 = "2026-03-02 10:00:00+01:00"
REASON = "Plus d’accès au courriel ni au mobile, appel du 2 mars"
# The new password must not contain a part of the new email (personal data rule).
NEW_EMAIL = "mhq.2026@example.org"
NEW_PASSWORD = "Tournesol-Bleu-Azur-58"


@pytest.fixture
def account(db):
    account = make_member_account(CpamFactory())
    Beneficiary.objects.create(
        member=account.member,
        birth_date="2015-04-01",
        last_name="Quenardel",
        first_names="Léon",
    )
    return account


def advisor(cpam):
    client = Client()
    staff = make_staff("phone_advisor", cpam=cpam)
    staff_login(client, staff)
    return client, staff


def delete(client, member, **overrides):
    data = {"reason": REASON, "confirm": "on", **overrides}
    return client.post(member_path(member) + "suppression/", data, follow=True)


def reset_link(run_tasks) -> str:
    Client().post("/mot-de-passe-oublie/", {"nir": MEMBER_NIR13, "birth_date": "1979-11-23"})
    run_tasks()
    message = OutboundMessage.objects.filter(template="password_reset").latest("id")
    return re.search(
        r"https://compte\.example\.test(/mot-de-passe-oublie/\S+)", message.body_text
    ).group(1)


def test_deletion_keeps_the_member_and_closes_every_way_in(account, run_tasks):
    member = account.member
    with time_machine.travel(T0, tick=False):
        register_before = Member.objects.filter(pk=member.pk).values().get()
        # The member is logged in on the site and on the app, and has a reset link waiting.
        member_web = Client()
        assert (
            member_web.post("/connexion/", {"nir": MEMBER_NIR13, "password": PASSWORD})["Location"]
            != "/connexion/"
        )
        assert member_web.get("/mon-compte/").status_code == 200
        token = Client().post(
            "/api/v1/auth/token",
            {"nir": MEMBER_NIR13, "password": PASSWORD},
            content_type="application/json",
        )
        bearer = {"HTTP_AUTHORIZATION": f"Bearer {token.json()['access_token']}"}
        assert Client().get("/api/v1/me", **bearer).status_code == 200
        link = reset_link(run_tasks)
        # An advisor sent a code earlier; then the caller asks for deletion instead.
        client, staff = advisor(member.cpam)
        open_with_check(client, member)
        client.post(member_path(member) + "code-sms/")
        (code,) = sms_codes(member)

        response = delete(client, member)
        assert "Compte en ligne supprimé. L’assuré peut en créer un nouveau." in (
            response.content.decode()
        )

        account.refresh_from_db()
        assert account.state == Account.State.DELETED and account.nir is None
        assert account.deleted_at is not None and not account.has_usable_password()
        # The register data stays as it was, with the beneficiaries.
        assert Member.objects.filter(pk=member.pk).values().get() == register_before
        assert Beneficiary.objects.filter(member=member, first_names="Léon").exists()
        # Every way into the old account is closed.
        assert member_web.get("/mon-compte/")["Location"].startswith("/connexion/")
        assert Client().get("/api/v1/me", **bearer).status_code == 401
        assert not ApiToken.objects.filter(account=account, revoked_at__isnull=True).exists()
        opened = Client()
        opened.get(link)
        refused = opened.get("/mot-de-passe-oublie/nouveau-mot-de-passe/")
        assert refused.status_code == 400 and "Ce lien n’est pas valide" in refused.content.decode()
        assert not AccountToken.objects.filter(
            account=account, used_at__isnull=True, revoked_at__isnull=True
        ).exists()
        assert not OneTimeCode.objects.filter(
            account=account, used_at__isnull=True, revoked_at__isnull=True
        ).exists()
        assert (
            Client()
            .post("/mot-de-passe-oublie/code-sms", {"nir": MEMBER_NIR13, "code": code})
            .status_code
            == 400
        )
        login = Client().post("/connexion/", {"nir": MEMBER_NIR13, "password": PASSWORD})
        assert login.status_code != 302
        # The console says there is no account any more, and offers nothing to delete.
        page = client.get(member_path(member)).content.decode()
        assert "aucun compte en ligne" in page
        assert "suppression/" not in page and "code-sms/" not in page

    entry = AuditEntry.objects.get(action="console.account.deleted")
    assert entry.actor == f"staff:{staff.pk}" and entry.member == member
    assert entry.data["reason"] == REASON and entry.data["outcome"] == "deleted"
    run_tasks()
    notice = OutboundMessage.objects.get(template="account_deleted")
    assert notice.recipient == "mh.quenardel@example.net"


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"confirm": ""}, id="not-confirmed"),
        pytest.param({"reason": " "}, id="no-reason"),
    ],
)
def test_deletion_needs_a_reason_and_a_confirmation(account, overrides):
    client, _ = advisor(account.member.cpam)
    open_with_check(client, account.member)
    response = delete(client, account.member, **overrides)
    assert "Saisie incomplète." in response.content.decode()
    account.refresh_from_db()
    assert account.state == Account.State.ACTIVE
    assert not AuditEntry.objects.filter(action="console.account.deleted").exists()


def test_the_member_creates_a_new_account_after_deletion(account, run_tasks):
    member = account.member
    with time_machine.travel(T0, tick=False):
        client, _ = advisor(member.cpam)
        open_with_check(client, member)
        delete(client, member)

        signup = Client()
        identity = signup.post(
            "/compte/creer/",
            {"nir": member.nir, "birth_date": "1979-11-23", "iban_last7": "7890143"},
        )
        assert identity.status_code == 302
        credentials = signup.post(
            "/compte/creer/identifiants/",
            {
                "email": NEW_EMAIL,
                "mobile_phone": "07 81 22 33 44",
                "password": NEW_PASSWORD,
                "password2": NEW_PASSWORD,
            },
        )
        assert credentials.status_code == 302
        assert credentials["Location"] == "/compte/creer/envoye/"
        run_tasks()
        message = OutboundMessage.objects.get(template="account_confirmation")
        assert message.recipient == NEW_EMAIL
        path = re.search(
            r"https://compte\.example\.test(/compte/confirmer/\S+)", message.body_text
        ).group(1)
        signup.get(path)
        assert signup.post("/compte/confirmer/")["Location"] == "/connexion/"

        new = Account.objects.get(member=member, state=Account.State.ACTIVE)
        assert new.pk != account.pk and new.email == NEW_EMAIL
        assert Account.objects.get(pk=account.pk).state == Account.State.DELETED
        login = Client().post("/connexion/", {"nir": MEMBER_NIR13, "password": NEW_PASSWORD})
        assert login.status_code == 302 and login["Location"] != "/connexion/"
        assert (
            Client().post("/connexion/", {"nir": MEMBER_NIR13, "password": PASSWORD}).status_code
            != 302
        )
