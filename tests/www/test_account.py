"""Mon compte: changing the recovery channels and the password, and logging out everywhere,
through the member site as a member (or an intruder) would."""

import json
import re

import pytest
import time_machine
from django.test import Client

from portal.accounts.models import Account, AccountToken, OneTimeCode
from portal.audit.models import AuditEntry
from tests.factories import PASSWORD, AccountFactory

NEW_PASSWORD = "Une-Autre-Phrase-Longue-7"
NEW_EMAIL = "nouvelle.adresse@example.net"
WRONG_PASSWORD = "Mot de passe actuel incorrect."


def login(client, account, password=PASSWORD):
    response = client.post("/connexion/", {"nir": account.nir, "password": password})
    assert response.status_code == 302, "login failed"
    return client


@pytest.fixture
def member_client(client, account):
    return login(client, account)


def email_change(client, email=NEW_EMAIL, password=PASSWORD):
    return client.post("/mon-compte/courriel/", {"email": email, "current_password": password})


def mobile_change(client, mobile="07 81 22 33 44", password=PASSWORD):
    return client.post(
        "/mon-compte/mobile/", {"mobile_phone": mobile, "current_password": password}
    )


def enter_code(client, code):
    return client.post("/mon-compte/mobile/code/", {"code": code})


def email_link_path(message):
    return re.search(
        r"https://compte\.example\.test(/mon-compte/courriel/confirmer/\S+)", message.body_text
    ).group(1)


def sms_code(message):
    return re.search(r"\b(\d{6})\b", message.body_text).group(1)


def audit_text() -> str:
    return json.dumps(list(AuditEntry.objects.values("action", "data")), ensure_ascii=False)


# --- the page -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_mon_compte_needs_login(client):
    for path in (
        "/mon-compte/",
        "/mon-compte/courriel/",
        "/mon-compte/mobile/",
        "/mon-compte/mobile/code/",
        "/mon-compte/mot-de-passe/",
        "/mon-compte/deconnexion-partout/",
    ):
        response = client.get(path)
        assert response.status_code == 302
        assert response["Location"] == f"/connexion/?next={path}"


@pytest.mark.django_db
def test_mon_compte_shows_the_channels_masked_mobile_and_links(member_client, account):
    response = member_client.get("/mon-compte/")
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    page = response.content.decode()
    assert account.email in page
    assert "06 •• •• •• 78" in page
    assert "06 12 34 56 78" not in page
    for href in (
        "/mon-compte/courriel/",
        "/mon-compte/mobile/",
        "/mon-compte/mot-de-passe/",
        "/mon-compte/deconnexion-partout/",
    ):
        assert f'href="{href}"' in page
    assert "Se déconnecter de tous mes appareils" in page


@pytest.mark.django_db
def test_member_space_links_to_mon_compte(member_client):
    page = member_client.get("/mon-espace/").content.decode()
    assert 'href="/mon-compte/"' in page
    assert 'href="/mon-compte/deconnexion-partout/"' in page


@pytest.mark.django_db
def test_forms_are_dsfr_with_csrf_and_no_javascript_needed(member_client):
    for path, fields in (
        ("/mon-compte/courriel/", ["email", "current_password"]),
        ("/mon-compte/mobile/", ["mobile_phone", "current_password"]),
        ("/mon-compte/mot-de-passe/", ["current_password", "password", "password2"]),
    ):
        response = member_client.get(path)
        page = response.content.decode()
        assert response["Cache-Control"] == "no-store"
        assert '<form method="post"' in page and 'name="csrfmiddlewaretoken"' in page
        for name in fields:
            assert re.search(rf'<label class="fr-label" for="id_{name}">', page)
            assert re.search(rf'<input[^>]+name="{name}"[^>]+class="fr-input"', page) or re.search(
                rf'<input[^>]+class="fr-input"[^>]+name="{name}"', page
            )
    assert 'autocomplete="current-password"' in page
    assert 'data-rule="uppercase"' in page  # the password rules, listed server-side


@pytest.mark.django_db
def test_posts_need_the_csrf_token(account):
    client = Client(enforce_csrf_checks=True)
    client.force_login(account, backend="portal.accounts.backends.NirBackend")
    for path in (
        "/mon-compte/courriel/",
        "/mon-compte/mobile/",
        "/mon-compte/mot-de-passe/",
        "/mon-compte/deconnexion-partout/",
    ):
        assert client.post(path, {"current_password": PASSWORD}).status_code == 403


@pytest.mark.django_db
def test_mon_compte_in_english_has_no_french_left(member_client):
    from tests.www.test_i18n import french_leftovers, switch_to

    switch_to(member_client, "en", next_url="/mon-compte/")
    for path in (
        "/mon-compte/",
        "/mon-compte/courriel/",
        "/mon-compte/mobile/",
        "/mon-compte/mot-de-passe/",
        "/mon-compte/deconnexion-partout/",
    ):
        response = member_client.get(path)
        assert response.status_code == 200
        assert french_leftovers(response) == [], path


# --- email ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_email_change_journey_link_valid_24_hours(member_client, account, outbox):
    old_email = account.email
    with time_machine.travel("2026-03-02 10:00:00+01:00", tick=False) as clock:
        response = email_change(member_client)
        assert response.status_code == 302 and response["Location"] == "/mon-compte/"
        page = member_client.get("/mon-compte/").content.decode()
        assert NEW_EMAIL in page  # the message and the pending change
        account.refresh_from_db()
        assert account.email == old_email  # not before the link is opened
        (message,) = outbox(template="email_change_confirm")
        assert message.recipient == NEW_EMAIL
        assert "3 mars 2026 à 10 h 00" in message.body_text

        clock.shift(24 * 3600 - 1)
        anonymous = Client()  # the link may be opened on another device, logged out
        path = email_link_path(message)
        response = anonymous.get(path)
        assert response["Location"] == "/mon-compte/courriel/confirmer/"  # token out of the URL
        page = anonymous.get("/mon-compte/courriel/confirmer/")
        assert page["Cache-Control"] == "no-store"
        assert NEW_EMAIL in page.content.decode()
        assert anonymous.post("/mon-compte/courriel/confirmer/")["Location"] == "/connexion/"

    account.refresh_from_db()
    assert account.email == NEW_EMAIL
    assert account.email_previous == old_email
    assert account.email_confirmed_at.isoformat() == "2026-03-03T08:59:59+00:00"
    (notice,) = outbox(template="email_change_done")
    assert notice.recipient == old_email
    assert NEW_EMAIL in notice.body_text
    assert "36 46" in notice.body_text and "36 46" in notice.body_html
    assert "Si vous n'êtes pas à l'origine de ce changement" in notice.body_text
    # Single use.
    anonymous.get(path)
    assert (
        "Ce lien n’est pas valide"
        in anonymous.get("/mon-compte/courriel/confirmer/").content.decode()
    )
    actions = list(AuditEntry.objects.values_list("action", flat=True))
    assert "account.email_change.requested" in actions
    assert "account.email_change.confirmed" in actions
    token = path.rsplit("/", 1)[1]
    assert token not in audit_text()
    assert PASSWORD not in audit_text()


@pytest.mark.django_db
def test_email_change_link_expired_after_24_hours(member_client, account, outbox):
    old_email = account.email
    with time_machine.travel("2026-03-02 10:00:00+01:00", tick=False) as clock:
        email_change(member_client)
        (message,) = outbox(template="email_change_confirm")
        clock.shift(24 * 3600 + 1)
        member_client.get(email_link_path(message))
        page = member_client.get("/mon-compte/courriel/confirmer/").content.decode()
        assert "Ce lien a expiré" in page and "Recommencer" in page
        assert member_client.post("/mon-compte/courriel/confirmer/").status_code == 400
    account.refresh_from_db()
    assert account.email == old_email
    assert not outbox(template="email_change_done")


@pytest.mark.django_db
def test_email_change_mangled_link_is_not_valid_and_audited(client):
    client.get("/mon-compte/courriel/confirmer/nimportequoi")
    assert (
        "Ce lien n’est pas valide" in client.get("/mon-compte/courriel/confirmer/").content.decode()
    )
    assert client.post("/mon-compte/courriel/confirmer/").status_code == 400


@pytest.mark.django_db
def test_email_change_expired_and_invalid_links_are_audited(member_client, outbox):
    with time_machine.travel("2026-03-02 10:00:00+01:00", tick=False) as clock:
        email_change(member_client)
        (message,) = outbox(template="email_change_confirm")
        link = email_link_path(message)
        clock.shift(24 * 3600 + 1)
        from portal.accounts import channels, services

        with pytest.raises(services.TokenExpired):
            channels.email_change_confirm(token=link.rsplit("/", 1)[1], ip="127.0.0.1")
        with pytest.raises(services.TokenInvalid):
            channels.email_change_confirm(token="mangled", ip="127.0.0.1")
    actions = list(AuditEntry.objects.values_list("action", flat=True))
    assert "account.email_change.link_expired" in actions
    assert "account.email_change.link_invalid" in actions


@pytest.mark.django_db
def test_email_change_needs_the_current_password(member_client, account, outbox):
    response = email_change(member_client, password="Pas-Le-Bon-Mot-2")
    assert response.status_code == 400
    page = response.content.decode()
    assert WRONG_PASSWORD in page
    assert 'href="#id_current_password"' in page
    assert not outbox(template="email_change_confirm")
    assert not AccountToken.objects.filter(purpose="email_change").exists()
    entry = AuditEntry.objects.get(action="account.reauth.failed")
    assert entry.data == {"purpose": "email"} and entry.member == account.member
    assert "Pas-Le-Bon-Mot-2" not in audit_text()


@pytest.mark.django_db
def test_wrong_current_passwords_are_throttled_like_the_login(member_client, outbox):
    with time_machine.travel("2026-03-02 10:00:00+01:00", tick=False) as clock:
        for _ in range(5):
            assert email_change(member_client, password="Pas-Le-Bon-Mot-2").status_code == 400
        # Even the right password waits now: guessing is slowed down.
        response = email_change(member_client)
        assert response.status_code == 429
        assert "Trop de tentatives" in response.content.decode()
        assert not outbox(template="email_change_confirm")
        assert AuditEntry.objects.filter(action="account.reauth.throttled").count() == 1
        clock.shift(3)
        assert email_change(member_client)["Location"] == "/mon-compte/"


@pytest.mark.django_db
def test_wrong_current_passwords_count_with_the_login_failures(member_client, account):
    with time_machine.travel("2026-03-02 10:00:00+01:00", tick=False):
        for _ in range(5):
            Client().post("/connexion/", {"nir": account.nir, "password": "Pas-Le-Bon-Mot-2"})
        assert email_change(member_client).status_code == 429


@pytest.mark.django_db
def test_email_change_to_the_same_address_is_refused(member_client, account, outbox):
    response = email_change(member_client, email=account.email.upper())
    assert response.status_code == 400
    assert "C’est déjà l’adresse de votre compte." in response.content.decode()
    assert not outbox(template="email_change_confirm")


@pytest.mark.django_db
def test_new_email_change_kills_the_earlier_link(member_client, account, outbox):
    email_change(member_client, email="premiere@example.net")
    email_change(member_client, email="seconde@example.net")
    first, second = outbox(template="email_change_confirm")
    member_client.get(email_link_path(first))
    assert (
        "Ce lien n’est pas valide"
        in member_client.get("/mon-compte/courriel/confirmer/").content.decode()
    )
    member_client.get(email_link_path(second))
    member_client.post("/mon-compte/courriel/confirmer/")
    account.refresh_from_db()
    assert account.email == "seconde@example.net"


@pytest.mark.django_db
def test_at_most_3_email_change_links_per_hour(member_client, account, outbox):
    with time_machine.travel("2026-03-02 10:00:00+01:00", tick=False) as clock:
        for i in range(3):
            assert (
                email_change(member_client, email=f"a{i}@example.net")["Location"] == "/mon-compte/"
            )
        response = email_change(member_client, email="a3@example.net")
        assert response.status_code == 429
        assert "3 changements d’adresse" in response.content.decode()
        assert len(outbox(template="email_change_confirm")) == 3
        clock.shift(3601)
        login(member_client, account)  # the session idled out meanwhile
        assert email_change(member_client, email="a4@example.net")["Location"] == "/mon-compte/"
        assert len(outbox(template="email_change_confirm")) == 4


@pytest.mark.django_db
def test_email_change_with_a_malformed_address_is_a_form_error(member_client, outbox):
    response = email_change(member_client, email="pas une adresse")
    assert response.status_code == 400
    assert "Saisissez une adresse de courriel valide." in response.content.decode()
    assert not outbox()


# --- mobile ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_mobile_change_journey_with_the_sms_code(member_client, account, outbox):
    response = mobile_change(member_client)
    assert response.status_code == 302 and response["Location"] == "/mon-compte/mobile/code/"
    (sms,) = outbox(template="mobile_change_code")
    assert sms.channel == "sms"
    assert sms.recipient == "+33781223344"  # the NEW number
    code = sms_code(sms)
    assert "10 minutes" in sms.body_text
    stored = OneTimeCode.objects.get(account=account)
    assert code not in stored.code_hash and len(stored.code_hash) == 64
    page = member_client.get("/mon-compte/mobile/code/").content.decode()
    assert "07 81 22 33 44" in page and 'autocomplete="one-time-code"' in page
    account.refresh_from_db()
    assert str(account.mobile_phone) == "+33612345678"  # not before the code

    response = enter_code(member_client, code)
    assert response.status_code == 302 and response["Location"] == "/mon-compte/"
    account.refresh_from_db()
    assert str(account.mobile_phone) == "+33781223344"
    assert "07 •• •• •• 44" in member_client.get("/mon-compte/").content.decode()
    (notice,) = outbox(template="mobile_change_done")
    assert notice.recipient == account.email
    assert "07 •• •• •• 44" in notice.body_text and "36 46" in notice.body_text
    actions = list(AuditEntry.objects.values_list("action", flat=True))
    assert "account.mobile_change.requested" in actions
    assert "account.mobile_change.confirmed" in actions
    assert code not in audit_text()
    # The code is single use.
    assert enter_code(member_client, code)["Location"] == "/mon-compte/mobile/"  # nothing pending


@pytest.mark.django_db
def test_mobile_code_valid_10_minutes(member_client, account, outbox):
    with time_machine.travel("2026-03-02 10:00:00+01:00", tick=False) as clock:
        mobile_change(member_client)
        code = sms_code(outbox(template="mobile_change_code")[0])
        clock.shift(10 * 60 + 1)
        response = enter_code(member_client, code)
        assert response.status_code == 400
        assert "Ce code a expiré : il était valable 10 minutes." in response.content.decode()
    account.refresh_from_db()
    assert str(account.mobile_phone) == "+33612345678"


@pytest.mark.django_db
def test_mobile_code_still_valid_at_9_minutes_59(member_client, account, outbox):
    with time_machine.travel("2026-03-02 10:00:00+01:00", tick=False) as clock:
        mobile_change(member_client)
        code = sms_code(outbox(template="mobile_change_code")[0])
        clock.shift(10 * 60 - 1)
        assert enter_code(member_client, code)["Location"] == "/mon-compte/"
    account.refresh_from_db()
    assert str(account.mobile_phone) == "+33781223344"


def a_wrong_code(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


@pytest.mark.django_db
def test_mobile_code_dies_after_5_wrong_tries(member_client, account, outbox):
    mobile_change(member_client)
    code = sms_code(outbox(template="mobile_change_code")[0])
    for remaining in (4, 3, 2, 1):
        response = enter_code(member_client, a_wrong_code(code))
        assert response.status_code == 400
        expected = "essais" if remaining > 1 else "essai."
        assert f"Il vous reste {remaining} {expected}" in response.content.decode()
    response = enter_code(member_client, a_wrong_code(code))
    assert "Vous avez fait 5 essais" in response.content.decode()
    # The right code no longer works either, from this session or another.
    other = login(Client(), account)
    response = enter_code(other, code)
    assert response.status_code == 400
    assert "Vous avez fait 5 essais" in response.content.decode()
    account.refresh_from_db()
    assert str(account.mobile_phone) == "+33612345678"
    assert OneTimeCode.objects.get().attempts == 5
    assert AuditEntry.objects.filter(action="account.mobile_change.rejected").count() == 6
    assert code not in audit_text()


@pytest.mark.django_db
def test_resending_a_code_invalidates_the_earlier_one(member_client, account, outbox):
    mobile_change(member_client)
    response = member_client.post("/mon-compte/mobile/nouveau-code/")
    assert response["Location"] == "/mon-compte/mobile/code/"
    first, second = outbox(template="mobile_change_code")
    assert second.recipient == first.recipient == "+33781223344"
    first_code, second_code = sms_code(first), sms_code(second)
    if first_code != second_code:  # one chance in a million that they are the same
        assert enter_code(member_client, first_code).status_code == 400
    assert enter_code(member_client, second_code)["Location"] == "/mon-compte/"
    account.refresh_from_db()
    assert str(account.mobile_phone) == "+33781223344"
    assert AuditEntry.objects.filter(action="account.mobile_change.code_resent").count() == 1


@pytest.mark.django_db
def test_tries_are_not_renewed_by_reloading_the_page(member_client, outbox):
    mobile_change(member_client)
    code = sms_code(outbox(template="mobile_change_code")[0])
    for _ in range(3):
        enter_code(member_client, a_wrong_code(code))
        member_client.get("/mon-compte/mobile/code/")
    response = enter_code(member_client, a_wrong_code(code))
    assert "Il vous reste 1 essai." in response.content.decode()


@pytest.mark.django_db
def test_at_most_3_codes_per_hour(member_client, account, outbox):
    with time_machine.travel("2026-03-02 10:00:00+01:00", tick=False) as clock:
        mobile_change(member_client)
        member_client.post("/mon-compte/mobile/nouveau-code/")
        member_client.post("/mon-compte/mobile/nouveau-code/")
        member_client.post("/mon-compte/mobile/nouveau-code/")
        page = member_client.get("/mon-compte/mobile/code/").content.decode()
        assert "3 codes en moins d’une heure" in page
        response = mobile_change(member_client, mobile="07 99 88 77 66")
        assert response.status_code == 429
        assert "3 codes en moins d’une heure" in response.content.decode()
        assert len(outbox(template="mobile_change_code")) == 3
        assert AuditEntry.objects.filter(action="account.mobile_change.throttled").count() == 2
        clock.shift(3601)
        login(member_client, account)  # the session idled out meanwhile
        response = mobile_change(member_client, mobile="07 99 88 77 66")
        assert response["Location"] == "/mon-compte/mobile/code/"
        assert len(outbox(template="mobile_change_code")) == 4


@pytest.mark.django_db
def test_mobile_change_needs_the_current_password(member_client, outbox):
    response = mobile_change(member_client, password="Pas-Le-Bon-Mot-2")
    assert response.status_code == 400
    assert WRONG_PASSWORD in response.content.decode()
    assert not outbox()
    assert AuditEntry.objects.get(action="account.reauth.failed").data == {"purpose": "mobile"}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("number", "message"),
    [
        ("01 23 45 67 89", "n’est pas un numéro de mobile"),
        ("12", "Saisissez un numéro de mobile valide"),
        ("06 12 34 56 78", "C’est déjà le numéro de votre compte."),
    ],
)
def test_mobile_number_is_checked(member_client, outbox, number, message):
    response = mobile_change(member_client, mobile=number)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not outbox()


@pytest.mark.django_db
def test_code_page_without_a_pending_change_goes_back_to_the_form(member_client):
    assert member_client.get("/mon-compte/mobile/code/")["Location"] == "/mon-compte/mobile/"
    assert (
        member_client.post("/mon-compte/mobile/nouveau-code/")["Location"] == "/mon-compte/mobile/"
    )


@pytest.mark.django_db
def test_malformed_code_uses_no_try(member_client, outbox):
    mobile_change(member_client)
    response = enter_code(member_client, "12ab")
    assert response.status_code == 400
    assert "Saisissez les 6 chiffres" in response.content.decode()
    assert OneTimeCode.objects.get().attempts == 0


@pytest.mark.django_db
def test_member_without_mobile_can_add_one(client, outbox):
    account = AccountFactory(mobile_phone="")
    login(client, account)
    page = client.get("/mon-compte/").content.decode()
    assert "non renseigné" in page and "Ajouter un numéro de téléphone mobile" in page
    mobile_change(client)
    enter_code(client, sms_code(outbox(template="mobile_change_code")[0]))
    account.refresh_from_db()
    assert str(account.mobile_phone) == "+33781223344"


# --- password -------------------------------------------------------------------------------


def password_change(client, current=PASSWORD, new=NEW_PASSWORD, confirm=None):
    return client.post(
        "/mon-compte/mot-de-passe/",
        {"current_password": current, "password": new, "password2": confirm or new},
    )


@pytest.mark.django_db
def test_password_change_keeps_this_session_and_ends_the_others(account, outbox):
    here, elsewhere = login(Client(), account), login(Client(), account)
    session_before = here.cookies["portal_session"].value
    response = password_change(here)
    assert response.status_code == 302 and response["Location"] == "/mon-compte/"
    assert here.get("/mon-compte/").status_code == 200
    assert here.cookies["portal_session"].value != session_before  # rotated
    assert elsewhere.get("/mon-compte/")["Location"].startswith("/connexion/")
    (notice,) = outbox(template="password_changed")
    assert notice.recipient == account.email
    entry = AuditEntry.objects.get(action="account.password.changed")
    assert entry.data["reason"] == "password_change"
    assert NEW_PASSWORD not in audit_text() and PASSWORD not in audit_text()
    # The new password is the one that works now.
    assert (
        Client().post("/connexion/", {"nir": account.nir, "password": PASSWORD}).status_code == 400
    )
    login(Client(), account, NEW_PASSWORD)


@pytest.mark.django_db
def test_password_change_needs_the_current_password(member_client, account, outbox):
    response = password_change(member_client, current="Pas-Le-Bon-Mot-2")
    assert response.status_code == 400
    assert WRONG_PASSWORD in response.content.decode()
    assert not outbox()
    account.refresh_from_db()
    assert account.check_password(PASSWORD)


@pytest.mark.django_db
def test_password_change_applies_the_policy(member_client, account, outbox):
    response = password_change(member_client, new="dupont", confirm="autre")
    page = response.content.decode()
    assert response.status_code == 400
    assert "Au moins 12 caractères." in page
    assert "Au moins une lettre majuscule." in page
    assert "ne sont pas identiques" in page
    response = password_change(member_client, new="Jeanne-Dupont-1985")
    assert response.status_code == 400  # personal data
    account.refresh_from_db()
    assert account.check_password(PASSWORD)
    assert not outbox()


@pytest.mark.django_db
def test_password_change_cancels_pending_channel_changes(member_client, account, outbox):
    email_change(member_client)
    mobile_change(member_client)
    password_change(member_client)
    member_client.get(email_link_path(outbox(template="email_change_confirm")[0]))
    assert (
        "Ce lien n’est pas valide"
        in member_client.get("/mon-compte/courriel/confirmer/").content.decode()
    )
    response = enter_code(member_client, sms_code(outbox(template="mobile_change_code")[0]))
    assert response.status_code == 400
    account.refresh_from_db()
    assert str(account.mobile_phone) == "+33612345678"


# --- every device ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_logout_everywhere_asks_then_ends_every_session(account):
    here, elsewhere = login(Client(), account), login(Client(), account)
    page = here.get("/mon-compte/deconnexion-partout/")
    assert page.status_code == 200
    assert here.get("/mon-compte/").status_code == 200  # GET changes nothing
    response = here.post("/mon-compte/deconnexion-partout/")
    assert response.status_code == 302 and response["Location"] == "/connexion/"
    login_page = here.get("/connexion/").content.decode()
    assert "Vous êtes déconnecté(e) de tous vos appareils" in login_page
    assert here.get("/mon-compte/")["Location"].startswith("/connexion/")
    assert elsewhere.get("/mon-compte/")["Location"].startswith("/connexion/")
    assert AuditEntry.objects.filter(action="account.sessions.revoked").count() == 1
    login(Client(), account)  # the password still works


@pytest.mark.django_db
def test_logout_everywhere_cancels_a_pending_email_change(account, outbox):
    thief, owner = login(Client(), account), login(Client(), account)
    email_change(thief, email="voleur@example.net")
    owner.post("/mon-compte/deconnexion-partout/")
    anonymous = Client()
    anonymous.get(email_link_path(outbox(template="email_change_confirm")[0]))
    assert anonymous.post("/mon-compte/courriel/confirmer/").status_code == 400
    assert Account.objects.get(pk=account.pk).email == account.email


@pytest.mark.django_db
def test_a_new_address_gets_no_reset_link_for_72_hours(member_client, account, outbox):
    """Changing the email through Mon compte feeds the reset's 72-hour rule."""
    from portal.accounts.reset import password_reset_process

    with time_machine.travel("2026-03-02 10:00:00+01:00", tick=False) as clock:
        email_change(member_client)
        anonymous = Client()
        anonymous.get(email_link_path(outbox(template="email_change_confirm")[0]))
        anonymous.post("/mon-compte/courriel/confirmer/")
        birth_date = account.member.birth_date
        outcome = password_reset_process(nir13=account.nir, birth_date=birth_date, ip="192.0.2.1")
        assert outcome == "recent_email"
        assert not outbox(template="password_reset")
        clock.shift(72 * 3600 + 1)
        outcome = password_reset_process(nir13=account.nir, birth_date=birth_date, ip="192.0.2.1")
        assert outcome == "matched"
        assert outbox(template="password_reset")[0].recipient == NEW_EMAIL


@pytest.mark.django_db
def test_the_member_turns_payment_emails_off_and_on(client):
    from portal.accounts.models import Account
    from portal.audit.models import AuditEntry
    from tests.factories import AccountFactory

    account = AccountFactory()
    client.force_login(account, backend="portal.accounts.backends.NirBackend")
    page = client.get("/mon-compte/").content.decode()
    assert 'name="notify_new_payments" value="1" checked' in page
    assert client.post("/mon-compte/notifications/", {}).status_code == 302
    assert Account.objects.get(pk=account.pk).notify_new_payments is False
    client.post("/mon-compte/notifications/", {"notify_new_payments": "1"})
    assert Account.objects.get(pk=account.pk).notify_new_payments is True
    changes = AuditEntry.objects.filter(action="account.notifications.changed").values_list(
        "data", flat=True
    )
    assert list(changes) == [{"new_payments": True}, {"new_payments": False}]
