"""Mot de passe oublié, through the member site: the journey and its defences."""

import re

import pytest
import time_machine

from portal.accounts.models import Account, AccountToken, ApiToken
from portal.audit.models import AuditEntry
from portal.notifications.models import OutboundMessage
from tests.factories import PASSWORD, AccountFactory

NEW = "Nouvelle-Phrase-Secrete-7"
T0 = "2026-03-02 14:02:00+01:00"


def ask(client, nir, birth_date="1985-05-12", **extra):
    return client.post("/mot-de-passe-oublie/", {"nir": nir, "birth_date": birth_date}, **extra)


def reset_messages():
    return list(OutboundMessage.objects.filter(template="password_reset").order_by("id"))


def link_path(message):
    found = re.search(
        r"https://compte\.example\.test(/mot-de-passe-oublie/[A-Za-z0-9_\-]+)", message.body_text
    )
    return found.group(1)


def choose(client, password=NEW, password2=None):
    return client.post(
        "/mot-de-passe-oublie/nouveau-mot-de-passe/",
        {"password": password, "password2": password2 or password},
    )


@pytest.fixture
def account(db):
    return AccountFactory(email="titulaire@example.org")


@pytest.mark.django_db
def test_the_whole_journey(client, account, run_tasks):
    with time_machine.travel(T0, tick=False):
        response = ask(client, account.nir)
        assert (
            response.status_code == 302 and response["Location"] == "/mot-de-passe-oublie/envoye/"
        )
        page = client.get("/mot-de-passe-oublie/envoye/").content.decode()
        assert "valable 30 minutes" in page and "36 46" in page
        run_tasks()
        (message,) = reset_messages()
        assert message.recipient == "titulaire@example.org"
        assert message.status == OutboundMessage.Status.SENT
        assert "valable jusqu'à 14 h 32" in message.body_text
        assert "•" * 9 + account.nir[-4:] in message.body_text
        assert account.nir not in message.body_text
        assert "Si vous n'êtes pas à l'origine de cette demande" in message.body_text
        assert '<a href="https://compte.example.test/mot-de-passe-oublie/' in message.body_html

        opened = client.get(link_path(message))
        assert opened.status_code == 302
        assert opened["Location"] == "/mot-de-passe-oublie/nouveau-mot-de-passe/"
        form = client.get(opened["Location"])
        assert 'data-rule="uppercase"' in form.content.decode()
        done = choose(client)
        assert done.status_code == 302 and done["Location"] == "/connexion/"
        login_page = client.get("/connexion/").content.decode()
        assert "Votre mot de passe a été modifié" in login_page
        assert "_auth_user_id" not in client.session  # no automatic login

    account.refresh_from_db()
    assert account.check_password(NEW)
    run_tasks()
    changed = OutboundMessage.objects.get(template="password_changed")
    assert changed.recipient == "titulaire@example.org"
    assert changed.subject == "Votre mot de passe a été modifié"
    actions = list(
        AuditEntry.objects.filter(member=account.member).values_list("action", flat=True)
    )
    for action in (
        "account.password_reset.requested",
        "account.password_reset.link_opened",
        "account.password.changed",
        "notification.email.sent",
    ):
        assert action in actions


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("shift", "valid"), [(29 * 60 + 59, True), (30 * 60 + 1, False)], ids=["29:59", "30:01"]
)
def test_the_link_lives_exactly_30_minutes(client, account, run_tasks, shift, valid):
    with time_machine.travel(T0, tick=False) as clock:
        ask(client, account.nir)
        run_tasks()
        clock.shift(shift)
        client.get(link_path(reset_messages()[0]))
        page = client.get("/mot-de-passe-oublie/nouveau-mot-de-passe/")
        if valid:
            assert page.status_code == 200
            assert choose(client).status_code == 302
        else:
            assert page.status_code == 400
            text = page.content.decode()
            assert "Ce lien a expiré : il était valable 30 minutes." in text
            assert 'href="/mot-de-passe-oublie/"' in text and "Recommencer" in text
            assert choose(client).status_code == 400
    account.refresh_from_db()
    assert account.check_password(NEW) is valid


@pytest.mark.django_db
def test_a_used_link_is_not_valid_any_more(client, account, run_tasks):
    ask(client, account.nir)
    run_tasks()
    path = link_path(reset_messages()[0])
    client.get(path)
    choose(client)
    client.get(path)
    page = client.get("/mot-de-passe-oublie/nouveau-mot-de-passe/").content.decode()
    assert "Ce lien n’est pas valide" in page
    assert "expiré" not in page


@pytest.mark.django_db
def test_a_newer_link_replaces_the_older_one(client, account, run_tasks):
    ask(client, account.nir)
    ask(client, account.nir)
    run_tasks()
    first, second = reset_messages()
    client.get(link_path(first))
    assert client.get("/mot-de-passe-oublie/nouveau-mot-de-passe/").status_code == 400
    client.get(link_path(second))
    assert choose(client).status_code == 302


@pytest.mark.django_db
def test_a_mangled_link_is_not_valid(client, account, run_tasks):
    ask(client, account.nir)
    run_tasks()
    path = link_path(reset_messages()[0])
    client.get(path[:-3] + "xyz")
    page = client.get("/mot-de-passe-oublie/nouveau-mot-de-passe/")
    assert page.status_code == 400
    assert "Ce lien n’est pas valide" in page.content.decode()
    assert AuditEntry.objects.filter(action="account.password_reset.link_invalid").exists()


@pytest.mark.django_db
def test_the_token_leaves_the_address_bar_and_the_logs(client, account, run_tasks):
    ask(client, account.nir)
    run_tasks()
    path = link_path(reset_messages()[0])
    token = path.rsplit("/", 1)[1]
    response = client.get(path, follow=True)
    assert token not in response.redirect_chain[-1][0]
    assert token not in response.content.decode()
    assert not AccountToken.objects.filter(token_hash=token).exists()  # only its hash is stored
    assert len(token) >= 22


@pytest.mark.django_db
def test_success_revokes_sessions_api_tokens_and_other_links(client, account, run_tasks):
    from django.test import Client

    other_device = Client()
    other_device.post("/connexion/", {"nir": account.nir, "password": PASSWORD})
    assert other_device.get("/mon-espace/").status_code == 200
    api = Client().post(
        "/api/v1/auth/token",
        {"nir": account.nir, "password": PASSWORD},
        content_type="application/json",
    )
    bearer = {"HTTP_AUTHORIZATION": f"Bearer {api.json()['access_token']}"}
    ask(client, account.nir)
    run_tasks()
    client.get(link_path(reset_messages()[0]))
    choose(client)
    assert other_device.get("/mon-espace/").status_code == 302
    assert Client().get("/api/v1/me", **bearer).status_code == 401
    assert ApiToken.objects.filter(account=account, revoked_at__isnull=True).count() == 0
    assert not AccountToken.objects.filter(
        account=account, purpose="password_reset", used_at__isnull=True, revoked_at__isnull=True
    ).exists()


@pytest.mark.django_db
def test_any_password_change_kills_outstanding_links(client, account, run_tasks):
    from portal.accounts.services import account_password_set

    ask(client, account.nir)
    run_tasks()
    account_password_set(account=account, password=NEW, actor="test", ip=None, reason="change")
    client.get(link_path(reset_messages()[0]))
    assert client.get("/mot-de-passe-oublie/nouveau-mot-de-passe/").status_code == 400


@pytest.mark.django_db
def test_weak_password_keeps_the_link_usable(client, account, run_tasks):
    ask(client, account.nir)
    run_tasks()
    client.get(link_path(reset_messages()[0]))
    response = choose(client, password="faible")
    assert response.status_code == 400
    page = response.content.decode()
    assert "Au moins 12 caractères." in page and "Au moins une lettre majuscule." in page
    assert choose(client, password=NEW, password2="Autre-Chose-Longue-1").status_code == 400
    assert choose(client).status_code == 302


# --- no enumeration -----------------------------------------------------------


def _body(response):
    return re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", response.content.decode())


@pytest.mark.django_db
def test_every_case_gets_the_identical_answer(client, run_tasks):
    active = AccountFactory(email="a@example.org")
    no_email = AccountFactory(email="")
    pending = AccountFactory(state=Account.State.PENDING)
    deleted = AccountFactory(state=Account.State.DELETED)
    cases = {
        "matched": (active.nir, "1985-05-12"),
        "unknown_nir": ("2920675112233", "1985-05-12"),
        "wrong_birth_date": (active.nir, "1990-01-01"),
        "no_email": (no_email.nir, "1985-05-12"),
        "pending": (pending.nir, "1985-05-12"),
        "deleted": (deleted.nir, "1985-05-12"),
    }
    answers = {}
    for name, (nir, born) in cases.items():
        first = ask(client, nir, born)
        then = client.get(first["Location"])
        answers[name] = (first.status_code, first["Location"], then.status_code, _body(then))
    assert len(set(answers.values())) == 1, answers
    run_tasks()
    assert [m.recipient for m in reset_messages()] == ["a@example.org"]
    outcomes = AuditEntry.objects.filter(action="account.password_reset.requested").values_list(
        "data__outcome", flat=True
    )
    assert sorted(outcomes) == ["matched"] + ["not_matched"] * 5


@pytest.mark.django_db
def test_the_request_does_the_same_work_whatever_the_details(client, account):
    """The matching runs in the worker: the web request's queries do not depend on the account."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def queries(nir, born):
        with CaptureQueriesContext(connection) as ctx:
            ask(client, nir, born)
        return [
            re.sub(r"'[^']*'|\b\d+\b|\"s\d+_x\d+\"", "?", q["sql"]) for q in ctx.captured_queries
        ]

    known = queries(account.nir, "1985-05-12")
    unknown = queries("2920675112233", "1985-05-12")
    assert known == unknown
    assert not any("accounts_account" in q for q in known)


@pytest.mark.django_db
def test_no_email_to_an_address_taken_from_the_request(client, account, run_tasks):
    client.post(
        "/mot-de-passe-oublie/",
        {"nir": account.nir, "birth_date": "1985-05-12", "email": "pirate@example.org"},
    )
    run_tasks()
    assert [m.recipient for m in OutboundMessage.objects.all()] == ["titulaire@example.org"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "data",
    [
        {"nir": "１８５０５７８００６０８４", "birth_date": "1985-05-12"},  # fullwidth digits
        {"nir": "PLACEHOLDER", "birth_date": "１９８５-０５-１２"},
        {"nir": "PLACEHOLDER", "birth_date": "1985-05-12\u200b"},
        {"nir": "1" * 5000, "birth_date": "1985-05-12"},
    ],
    ids=["fullwidth-nir", "fullwidth-date", "zero-width", "oversized"],
)
def test_look_alikes_and_oversized_values_are_form_errors(client, account, run_tasks, data):
    data = {key: value.replace("PLACEHOLDER", account.nir) for key, value in data.items()}
    response = client.post("/mot-de-passe-oublie/", data)
    assert response.status_code == 400
    assert "fr-input-group--error" in response.content.decode()
    run_tasks()
    assert not OutboundMessage.objects.exists()


@pytest.mark.django_db
def test_repeated_fields_send_one_email_to_the_registered_address(client, account, run_tasks):
    from urllib.parse import urlencode

    body = urlencode([("nir", account.nir), ("nir", "2920675112233"), ("birth_date", "1985-05-12")])
    client.post("/mot-de-passe-oublie/", body, content_type="application/x-www-form-urlencoded")
    run_tasks()
    assert len(OutboundMessage.objects.all()) <= 1
    assert {m.recipient for m in OutboundMessage.objects.all()} <= {"titulaire@example.org"}


# --- throttling ------------------------------------------------------------------


@pytest.mark.django_db
def test_at_most_3_emails_per_hour_and_10_per_day(client, account, run_tasks):
    with time_machine.travel(T0, tick=False) as clock:
        for _ in range(5):
            assert (
                ask(client, account.nir, REMOTE_ADDR="10.0.0.1")["Location"]
                == "/mot-de-passe-oublie/envoye/"
            )
        run_tasks()
        assert len(reset_messages()) == 3
        for hour in range(1, 8):
            clock.shift(3600)
            for _ in range(3):
                ask(client, account.nir, REMOTE_ADDR=f"10.0.1.{hour}")
            run_tasks()
        assert len(reset_messages()) == 10
        clock.shift(24 * 3600)
        ask(client, account.nir, REMOTE_ADDR="10.0.2.1")
        run_tasks()
        assert len(reset_messages()) == 11
    outcomes = set(
        AuditEntry.objects.filter(action="account.password_reset.requested").values_list(
            "data__outcome", flat=True
        )
    )
    assert outcomes == {"matched", "throttled_account"}


@pytest.mark.django_db
def test_at_most_20_requests_per_ip_per_hour(client, account):
    with time_machine.travel(T0, tick=False) as clock:
        for _ in range(20):
            assert ask(client, "2920675112233").status_code == 302
        refused = ask(client, account.nir)
        assert refused.status_code == 429
        assert "réessayez plus tard" in refused.content.decode()
        assert ask(client, account.nir, REMOTE_ADDR="10.7.7.7").status_code == 302
        clock.shift(3600)
        assert ask(client, account.nir).status_code == 302


@pytest.mark.django_db
def test_the_confirm_step_is_rate_limited(client, settings):
    settings.PASSWORD_RESET_CONFIRM_LIMIT_PER_IP = 5
    for i in range(5):
        assert client.get(f"/mot-de-passe-oublie/devine{i:04d}").status_code == 302
    assert client.get("/mot-de-passe-oublie/devine9999").status_code == 429


# --- the pages themselves --------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path",
    [
        "/mot-de-passe-oublie/",
        "/mot-de-passe-oublie/envoye/",
        "/mot-de-passe-oublie/nouveau-mot-de-passe/",
    ],
)
def test_reset_pages_send_no_referrer_to_other_sites_and_no_store(client, path):
    response = client.get(path)
    assert response["Referrer-Policy"] == "same-origin"
    assert "no-store" in response["Cache-Control"]
    page = response.content.decode()
    assert not re.search(
        r'(src|href)="https?://', page.split("<footer")[0]
    )  # no third-party resource


@pytest.mark.django_db
def test_forged_host_headers_never_change_the_link(client, account, run_tasks, settings):
    settings.ALLOWED_HOSTS = ["testserver", "evil.example"]
    ask(
        client,
        account.nir,
        HTTP_HOST="evil.example",
        HTTP_X_FORWARDED_HOST="evil.example",
        HTTP_FORWARDED="host=evil.example",
    )
    run_tasks()
    (message,) = reset_messages()
    assert "evil.example" not in message.body_text + message.body_html
    assert "https://compte.example.test/mot-de-passe-oublie/" in message.body_text


@pytest.mark.django_db
def test_a_recently_changed_address_gets_no_link(client, account, run_tasks):
    from django.utils import timezone

    account.email_previous = "ancienne@example.org"
    account.email_confirmed_at = timezone.now()
    account.save()
    ask(client, account.nir)
    run_tasks()
    assert reset_messages() == []
    entry = AuditEntry.objects.get(action="account.password_reset.requested")
    assert entry.data == {"outcome": "recent_email"}


@pytest.mark.django_db
def test_login_page_links_to_the_reset(client):
    assert 'href="/mot-de-passe-oublie/"' in client.get("/connexion/").content.decode()


# --- real SMTP ------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_journey_through_a_real_smtp_server(client, smtp_server, run_tasks, settings):
    from email import message_from_bytes, policy

    settings.DEMO = False
    account = AccountFactory(email="titulaire@example.org")
    ask(client, account.nir)
    run_tasks()
    (envelope,) = smtp_server.messages
    assert envelope.rcpt_tos == ["titulaire@example.org"]
    parsed = message_from_bytes(envelope.content, policy=policy.default)
    assert parsed["Subject"] == "Réinitialisation de votre mot de passe"
    text = parsed.get_body(("plain",)).get_content()
    path = re.search(r"https://compte\.example\.test(/mot-de-passe-oublie/\S+)", text).group(1)
    assert OutboundMessage.objects.get().body_text == ""  # the link is not kept once delivered
    client.get(path)
    assert choose(client).status_code == 302
    run_tasks()
    assert [m.rcpt_tos for m in smtp_server.messages] == [["titulaire@example.org"]] * 2
    changed = message_from_bytes(smtp_server.messages[1].content, policy=policy.default)
    assert changed["Subject"] == "Votre mot de passe a été modifié"


@pytest.mark.django_db(transaction=True)
def test_smtp_failure_is_retried_while_the_link_is_valid_then_given_up(
    client, smtp_settings, run_tasks, settings
):
    from aiosmtpd.controller import Controller

    from tests.smtp import Collector

    settings.DEMO = False
    account = AccountFactory(email="titulaire@example.org")
    with time_machine.travel(T0, tick=False) as clock:
        ask(client, account.nir)
        run_tasks()  # nobody listens: first attempt fails, a retry is queued
        message = OutboundMessage.objects.get(template="password_reset")
        assert (message.status, message.attempts) == ("pending", 1)
        collector = Collector()
        controller = Controller(collector, hostname="127.0.0.1", port=smtp_settings)
        controller.start()
        try:
            clock.shift(31)
            run_tasks()
        finally:
            controller.stop()
        assert len(collector.messages) == 1
        message.refresh_from_db()
        assert (message.status, message.attempts) == ("sent", 2)

        # A second request while the server stays down: retries stop with the link.
        clock.shift(3600)
        ask(client, account.nir)
        for _ in range(12):
            run_tasks()
            clock.shift(5 * 60)
        failed = OutboundMessage.objects.filter(template="password_reset").latest("id")
        assert failed.status == "failed"
        assert failed.attempts >= 3
    assert AuditEntry.objects.filter(
        action="notification.email.failed", member=account.member
    ).exists()


@pytest.mark.django_db
def test_emails_are_french_even_for_a_member_browsing_in_english(client, account, run_tasks):
    from django.conf import settings as django_settings

    client.cookies[django_settings.LANGUAGE_COOKIE_NAME] = "en"
    with time_machine.travel(T0, tick=False):
        ask(client, account.nir)
        run_tasks()
        client.get(link_path(reset_messages()[0]))
        assert (
            "Choose a new password"
            in client.get("/mot-de-passe-oublie/nouveau-mot-de-passe/").content.decode()
        )
        choose(client)
    changed = OutboundMessage.objects.get(template="password_changed")
    assert "2 mars 2026" in changed.body_text


@pytest.mark.django_db
def test_a_reset_cancels_a_pending_email_change(client, account, run_tasks):
    from portal.accounts.channels import email_change_request

    email_change_request(
        account=account, new_email="pirate@example.org", current_password=PASSWORD, ip="10.0.0.9"
    )
    pending = AccountToken.objects.get(account=account, purpose="email_change")
    ask(client, account.nir)
    run_tasks()
    client.get(link_path(reset_messages()[0]))
    choose(client)
    pending.refresh_from_db()
    assert pending.revoked_at is not None
