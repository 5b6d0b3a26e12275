import re

import pytest
import time_machine

from portal.accounts.models import Account
from portal.audit.models import AuditEntry
from portal.notifications.models import OutboundMessage
from tests.factories import PASSWORD, AccountFactory

GOOD_PASSWORD = "Une-Phrase-Longue-42"
GENERIC = "Les informations saisies ne permettent pas de vous identifier"


def identity(client, member, **overrides):
    data = {
        "nir": member.nir,
        "birth_date": member.birth_date.isoformat(),
        "iban_last7": member.iban[-7:],
    }
    data.update(overrides)
    return client.post("/compte/creer/", data)


def credentials(client, **overrides):
    data = {
        "email": "jeanne@example.org",
        "mobile_phone": "06 11 22 33 44",
        "password": GOOD_PASSWORD,
        "password2": GOOD_PASSWORD,
    }
    data.update(overrides)
    return client.post("/compte/creer/identifiants/", data)


def confirmation_path(message):
    return re.search(
        r"https://compte\.example\.test(/compte/confirmer/\S+)", message.body_text
    ).group(1)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "overrides",
    [{"birth_date": "1990-01-01"}, {"iban_last7": "0000000"}, {"nir": "2920675112233 55"}],
)
def test_wrong_proof_gets_one_generic_message(client, member, overrides):
    response = identity(client, member, **overrides)
    assert response.status_code == 400
    page = response.content.decode()
    assert GENERIC in page
    assert "date de naissance incorrecte" not in page.lower()
    assert AuditEntry.objects.filter(action="account.creation.identity_failed").count() == 1


@pytest.mark.django_db
def test_invalid_nir_format_is_explained_in_french(client, member):
    response = identity(client, member, nir="12345")
    assert response.status_code == 400
    assert "13 chiffres" in response.content.decode()


@pytest.mark.django_db
def test_temporary_number_is_refused_with_its_own_message(client, member):
    response = identity(client, member, nir="7850578006084")
    assert "numéro provisoire" in response.content.decode()


@pytest.mark.django_db
def test_credentials_step_needs_the_identity_step(client):
    response = credentials(client)
    assert response.status_code == 302 and response["Location"] == "/compte/creer/"
    assert not Account.objects.exists()


@pytest.mark.django_db
def test_email_is_prefilled_from_the_register(client, member):
    identity(client, member)
    assert member.email in client.get("/compte/creer/identifiants/").content.decode()


@pytest.mark.django_db
def test_weak_password_shows_each_unmet_rule(client, member):
    identity(client, member)
    response = credentials(client, password="dupont", password2="autre")
    page = response.content.decode()
    assert response.status_code == 400
    assert "Au moins 12 caractères." in page
    assert "Au moins une lettre majuscule." in page
    assert "ne sont pas identiques" in page
    assert 'aria-invalid="true"' in page
    assert 'href="#id_password"' in page  # error summary links to the field
    assert not Account.objects.exists()


@pytest.mark.django_db
def test_full_journey_with_the_link_valid_24_hours(client, member, run_tasks):
    with time_machine.travel("2026-03-02 10:00:00+01:00", tick=False) as clock:
        identity(client, member)
        assert credentials(client).status_code == 302
        run_tasks()
        message = OutboundMessage.objects.get(template="account_confirmation")
        assert "3 mars 2026 à 10 h 00" in message.body_text
        clock.shift(23 * 3600)
        path = confirmation_path(message)
        assert client.get(path)["Location"] == "/compte/confirmer/"
        assert "Activer mon compte" in client.get("/compte/confirmer/").content.decode()
        assert client.post("/compte/confirmer/")["Location"] == "/connexion/"
        account = Account.objects.get(member=member)
        assert account.state == Account.State.ACTIVE
        assert account.email == "jeanne@example.org"
        assert str(account.mobile_phone) == "+33611223344"
        # The link is single use.
        client.get(path)
        assert "Ce lien n’est pas valide" in client.get("/compte/confirmer/").content.decode()


@pytest.mark.django_db
def test_expired_link_says_it_expired(client, member, run_tasks):
    with time_machine.travel("2026-03-02 10:00:00+01:00", tick=False) as clock:
        identity(client, member)
        credentials(client)
        message = OutboundMessage.objects.get(template="account_confirmation")
        clock.shift(24 * 3600 + 1)
        client.get(confirmation_path(message))
        page = client.get("/compte/confirmer/").content.decode()
        assert "Ce lien a expiré" in page and "Recommencer" in page
        assert client.post("/compte/confirmer/").status_code == 400
        assert Account.objects.get(member=member).state == Account.State.PENDING


@pytest.mark.django_db
def test_mangled_link_is_not_valid(client):
    client.get("/compte/confirmer/nimportequoi")
    assert "Ce lien n’est pas valide" in client.get("/compte/confirmer/").content.decode()


@pytest.mark.django_db
def test_restarting_creation_kills_the_earlier_link(client, member):
    identity(client, member)
    credentials(client)
    identity(client, member)
    credentials(client, email="autre@example.org")
    first, second = OutboundMessage.objects.filter(template="account_confirmation").order_by("id")
    client.get(confirmation_path(first))
    assert "Ce lien n’est pas valide" in client.get("/compte/confirmer/").content.decode()
    client.get(confirmation_path(second))
    client.post("/compte/confirmer/")
    assert Account.objects.get(member=member).email == "autre@example.org"


@pytest.mark.django_db
def test_existing_account_same_answer_and_owner_warned(client):
    existing = AccountFactory(email="titulaire@example.org")
    identity(client, existing.member)
    response = credentials(client, email="pirate@example.org")
    assert response.status_code == 302 and response["Location"] == "/compte/creer/envoye/"
    existing.refresh_from_db()
    assert existing.email == "titulaire@example.org" and existing.check_password(PASSWORD)
    assert [m.recipient for m in OutboundMessage.objects.all()] == ["titulaire@example.org"]
    assert OutboundMessage.objects.get().template == "account_creation_attempt"


@pytest.mark.django_db
def test_identity_step_is_throttled_per_nir(client, member, settings):
    settings.ACCOUNT_CREATION_LIMIT_PER_NIR = 5
    for _ in range(5):
        identity(client, member, iban_last7="0000000")
    response = identity(client, member)
    assert response.status_code == 429
    assert "Trop de tentatives" in response.content.decode()


@pytest.mark.django_db
def test_confirmation_token_is_stored_hashed(client, member):
    from portal.accounts.models import AccountToken

    identity(client, member)
    credentials(client)
    token = confirmation_path(OutboundMessage.objects.get()).rsplit("/", 1)[1]
    assert len(token) >= 22
    assert not AccountToken.objects.filter(token_hash__contains=token).exists()


@pytest.mark.django_db
def test_pages_are_french_and_have_skip_links(client):
    for path in ["/", "/connexion/", "/compte/creer/", "/accessibilite/", "/mentions-legales/"]:
        page = client.get(path).content.decode()
        assert '<html lang="fr"' in page
        assert 'href="#contenu"' in page
        assert "Accessibilité" in page


@pytest.mark.django_db
def test_home_lists_what_the_account_gives(client):
    account = AccountFactory()
    client.force_login(account, backend="portal.accounts.backends.NirBackend")
    page = client.get("/mon-espace/").content.decode()
    assert "Mon espace" in page and "Mes paiements" in page
    assert "•" * 9 + account.nir[-4:] in page
    assert account.nir not in page


@pytest.mark.django_db
def test_unknown_page_is_a_french_404(client):
    response = client.get("/nexiste-pas/")
    assert response.status_code == 404
    assert "Page non trouvée" in response.content.decode()


@pytest.mark.django_db
def test_demo_mailbox_lists_and_shows_messages(client, member, settings):
    identity(client, member)
    credentials(client)
    box = client.get("/demo/boite-mail/").content.decode()
    message = OutboundMessage.objects.get()
    assert "Activez votre compte" in box
    page = client.get(f"/demo/boite-mail/{message.pk}/").content.decode()
    assert '<a href="https://compte.example.test/compte/confirmer/' in page
    settings.DEMO = False
    assert client.get("/demo/boite-mail/").status_code == 404


@pytest.mark.django_db
def test_neutral_brand_removes_the_state_identity(client, settings):
    assert "fr-logo" in client.get("/").content.decode()
    settings.BRAND = "neutral"
    page = client.get("/").content.decode()
    assert "fr-logo" not in page
    assert "Assurance Maladie" in page


@pytest.mark.django_db
@pytest.mark.parametrize("number", ["+1 202 555 0123", "+44 7700 900123", "01 23 45 67 89"])
def test_only_french_or_eu_mobiles_are_accepted(client, member, number):
    identity(client, member)
    response = credentials(client, mobile_phone=number)
    assert response.status_code == 400
    assert not Account.objects.exists()
