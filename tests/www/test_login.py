import pytest
import time_machine

from portal.audit.models import AuditEntry
from tests.factories import PASSWORD, AccountFactory

INVALID = "Numéro de sécurité sociale ou mot de passe incorrect."


def login(client, nir, password, **extra):
    return client.post("/connexion/", {"nir": nir, "password": password}, **extra)


@pytest.mark.django_db
def test_login_with_the_13_digits_and_logout(client):
    account = AccountFactory()
    response = login(client, account.nir, PASSWORD)
    assert response.status_code == 302 and response["Location"] == "/mon-espace/"
    page = client.get("/mon-espace/")
    assert page.status_code == 200
    assert "Se déconnecter" in page.content.decode()
    assert client.post("/deconnexion/").status_code == 302
    assert client.get("/mon-espace/").status_code == 302
    assert AuditEntry.objects.filter(action="account.logout").count() == 1


@pytest.mark.django_db
def test_login_accepts_spaces_and_the_key(client):
    account = AccountFactory()
    spaced = " ".join([account.member.nir[:1], account.member.nir[1:5], account.member.nir[5:]])
    assert login(client, spaced, PASSWORD).status_code == 302


@pytest.mark.django_db
def test_unknown_nir_and_wrong_password_get_the_same_page(client):
    account = AccountFactory()
    wrong = login(client, account.nir, "Pas-Le-Bon-Mot-2")
    unknown = login(client, "2920675112233", "Pas-Le-Bon-Mot-2")
    assert wrong.status_code == unknown.status_code == 400
    assert INVALID in wrong.content.decode()
    strip = lambda r: r.content.decode().replace(account.nir, "").split("csrfmiddlewaretoken")[0]  # noqa: E731
    assert strip(wrong) == strip(unknown).replace("2920675112233", "")


@pytest.mark.django_db
def test_pending_account_cannot_log_in(client):
    account = AccountFactory(state="pending")
    response = login(client, account.nir, PASSWORD)
    assert response.status_code == 400
    assert INVALID in response.content.decode()


@pytest.mark.django_db
def test_unknown_nir_costs_a_password_hash(client, monkeypatch):
    """Equal time: an unknown NIR runs one Argon2 verification like a known one."""
    from django.contrib.auth import hashers

    calls = []
    original = hashers.check_password

    def spy(password, encoded, *args, **kwargs):
        calls.append(encoded.split("$")[0])
        return original(password, encoded, *args, **kwargs)

    monkeypatch.setattr(hashers, "check_password", spy)
    login(client, "2920675112233", "Pas-Le-Bon-Mot-2")
    assert calls == ["argon2"]


@pytest.mark.django_db
def test_session_key_rotates_at_login(client):
    account = AccountFactory()
    client.get("/connexion/")
    client.session["x"] = 1
    before = client.session.session_key or client.cookies.get("portal_session")
    login(client, account.nir, PASSWORD)
    after = client.cookies["portal_session"].value
    assert after and after != before
    cookie = client.cookies["portal_session"]
    assert cookie["httponly"] and cookie["samesite"] == "Lax"


@pytest.mark.django_db
def test_failures_slow_down_progressively_then_allow_again(client, settings):
    settings.LOGIN_FREE_FAILURES = 3
    settings.LOGIN_MAX_DELAY = 60
    account = AccountFactory()
    with time_machine.travel("2026-03-02 10:00:00+01:00", tick=False) as clock:
        for _ in range(3):
            assert login(client, account.nir, "Mauvais-Mot-De-2").status_code == 400
        # The 4th attempt right away is refused, even with the right password.
        refused = login(client, account.nir, PASSWORD)
        assert refused.status_code == 429
        assert "Trop de tentatives" in refused.content.decode()
        clock.shift(1)
        assert login(client, account.nir, PASSWORD).status_code == 429
        clock.shift(2)  # past the 2 s delay
        assert login(client, account.nir, "Mauvais-Mot-De-2").status_code == 400
        # The next delay is longer: 4 s.
        clock.shift(3)
        assert login(client, account.nir, PASSWORD).status_code == 429
        clock.shift(2)
        assert login(client, account.nir, PASSWORD).status_code == 302


@pytest.mark.django_db
def test_delay_is_capped_never_a_permanent_lock(client, settings):
    settings.LOGIN_FREE_FAILURES = 1
    settings.LOGIN_MAX_DELAY = 30
    account = AccountFactory()
    with time_machine.travel("2026-03-02 10:00:00+01:00", tick=False) as clock:
        for _ in range(12):
            login(client, account.nir, "Mauvais-Mot-De-2")
            clock.shift(31)
        assert login(client, account.nir, PASSWORD).status_code == 302


@pytest.mark.django_db
def test_at_most_100_failures_per_account_per_hour(client, settings):
    settings.LOGIN_FREE_FAILURES = 1000  # isolate the hourly ceiling
    settings.LOGIN_MAX_FAILURES_PER_ACCOUNT = 100
    account = AccountFactory()
    from portal.accounts.services import _throttles

    by_account, _ = _throttles()
    with time_machine.travel("2026-03-02 10:00:00+01:00", tick=False) as clock:
        for _ in range(100):
            by_account.fail(account.nir)
        assert login(client, account.nir, PASSWORD, REMOTE_ADDR="10.1.1.1").status_code == 429
        clock.shift(3601)
        assert login(client, account.nir, PASSWORD, REMOTE_ADDR="10.1.1.1").status_code == 302


@pytest.mark.django_db
def test_failures_from_one_ip_slow_that_ip_only(client, settings):
    settings.LOGIN_FREE_FAILURES_PER_IP = 3
    settings.LOGIN_FREE_FAILURES = 100
    accounts = AccountFactory.create_batch(2)
    with time_machine.travel("2026-03-02 10:00:00+01:00", tick=False):
        for _ in range(3):
            login(client, accounts[0].nir, "Mauvais-Mot-De-2", REMOTE_ADDR="10.0.0.1")
        assert login(client, accounts[1].nir, PASSWORD, REMOTE_ADDR="10.0.0.1").status_code == 429
        assert login(client, accounts[1].nir, PASSWORD, REMOTE_ADDR="10.0.0.2").status_code == 302


@pytest.mark.django_db
def test_forwarded_for_is_ignored_unless_from_a_trusted_proxy(client, settings):
    settings.LOGIN_FREE_FAILURES_PER_IP = 2
    settings.LOGIN_FREE_FAILURES = 100
    account = AccountFactory()
    with time_machine.travel("2026-03-02 10:00:00+01:00", tick=False):
        for i in range(2):
            login(client, account.nir, "Mauvais-Mot-De-2", HTTP_X_FORWARDED_FOR=f"203.0.113.{i}")
        # Rotating X-Forwarded-For does not escape the per-IP counter.
        assert (
            login(client, account.nir, PASSWORD, HTTP_X_FORWARDED_FOR="203.0.113.9").status_code
            == 429
        )


@pytest.mark.django_db
def test_idle_timeout_30_minutes(client):
    account = AccountFactory()
    with time_machine.travel("2026-03-02 10:00:00+01:00", tick=False) as clock:
        login(client, account.nir, PASSWORD)
        clock.shift(29 * 60)
        assert client.get("/mon-espace/").status_code == 200  # activity pushes the expiry back
        clock.shift(29 * 60)
        assert client.get("/mon-espace/").status_code == 200
        clock.shift(31 * 60)
        assert client.get("/mon-espace/").status_code == 302


@pytest.mark.django_db
def test_absolute_timeout_12_hours(client):
    account = AccountFactory()
    with time_machine.travel("2026-03-02 08:00:00+01:00", tick=False) as clock:
        login(client, account.nir, PASSWORD)
        for _ in range(24):  # active every 25 minutes for 10 hours
            clock.shift(25 * 60)
            assert client.get("/mon-espace/").status_code == 200
        for _ in range(6):
            clock.shift(25 * 60)
            client.get("/mon-espace/")
        assert client.get("/mon-espace/").status_code == 302


@pytest.mark.django_db
def test_open_redirect_after_login_is_refused(client):
    account = AccountFactory()
    response = client.post(
        "/connexion/?next=https://evil.example/", {"nir": account.nir, "password": PASSWORD}
    )
    assert response["Location"] == "/mon-espace/"


@pytest.mark.django_db
def test_logout_needs_post(client):
    account = AccountFactory()
    login(client, account.nir, PASSWORD)
    page = client.get("/deconnexion/")
    assert page.status_code == 200
    assert 'method="post"' in page.content.decode()
    assert client.get("/mon-espace/").status_code == 200  # a GET logs nobody out


def test_the_space_links_to_the_documents(client, account):
    """Mon espace leads to the certificate and the monthly statements (no "soon" card left)."""
    from tests.factories import PASSWORD

    client.post("/connexion/", {"nir": account.nir, "password": PASSWORD})
    page = client.get("/mon-espace/").content.decode()
    assert "Bientôt" not in page
    assert 'href="/paiements/attestation-droits.pdf"' in page
    assert 'href="/paiements/#documents-titre"' in page
