import json
import threading

import pytest
import time_machine
from django.db import connection, connections

from portal.accounts import reset, services
from portal.accounts.models import AccountToken
from portal.notifications.models import OutboundMessage
from tests.factories import AccountFactory

NEW = "Nouvelle-Phrase-Secrete-7"


def post(client, path, payload, **extra):
    body = payload if isinstance(payload, (str, bytes)) else json.dumps(payload)
    return client.post(path, body, content_type="application/json", **extra)


def issue_token(account) -> str:
    """A reset token as the worker issues it (the email holds it)."""
    reset.password_reset_process(
        nir13=account.nir, birth_date=account.member.birth_date, ip="127.0.0.1"
    )
    message = OutboundMessage.objects.filter(template="password_reset").latest("id")
    return message.body_text.split("/mot-de-passe-oublie/")[1].split()[0]


@pytest.mark.django_db
def test_request_answers_the_same_in_every_case(client, run_tasks):
    account = AccountFactory()
    known = post(client, "/api/v1/password-reset", {"nir": account.nir, "birth_date": "1985-05-12"})
    unknown = post(
        client, "/api/v1/password-reset", {"nir": "2920675112233", "birth_date": "1985-05-12"}
    )
    wrong = post(client, "/api/v1/password-reset", {"nir": account.nir, "birth_date": "1999-12-31"})
    assert known.status_code == unknown.status_code == wrong.status_code == 202
    assert known.content == unknown.content == wrong.content
    assert "30 minutes" in known.json()["detail"]
    run_tasks()
    assert OutboundMessage.objects.filter(template="password_reset").count() == 1


@pytest.mark.django_db
def test_request_is_throttled_per_ip(client):
    for _ in range(20):
        post(client, "/api/v1/password-reset", {"nir": "2920675112233", "birth_date": "1985-05-12"})
    response = post(
        client, "/api/v1/password-reset", {"nir": "2920675112233", "birth_date": "1985-05-12"}
    )
    assert response.status_code == 429
    assert response.json()["error"] == "throttled"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body",
    [
        {"nir": ["2920675112233"], "birth_date": "1985-05-12"},
        {"nir": "2920675112233", "birth_date": ["1985-05-12"]},
        {"nir": "2920675112233", "birth_date": "1985-05-12", "email": "pirate@example.org"},
        {"nir": "１８５０５７８００６０８４", "birth_date": "1985-05-12"},
        {"nir": "2920675112233", "birth_date": "１９８５-０５-１２"},
        {"nir": "2" * 100_000, "birth_date": "1985-05-12"},
        '{"nir": "2920675112233", "nir": "1850578006084", "birth_date": "1985-05-12"}',
    ],
    ids=[
        "array-nir",
        "array-date",
        "extra-email",
        "fullwidth-nir",
        "fullwidth-date",
        "oversized",
        "duplicate",
    ],
)
def test_malformed_requests_are_refused_and_send_nothing(client, run_tasks, body):
    response = post(client, "/api/v1/password-reset", body)
    assert response.status_code in (400, 422)
    assert "error" in response.json()
    run_tasks()
    assert not OutboundMessage.objects.exists()


@pytest.mark.django_db
def test_confirm_changes_the_password_once(client):
    account = AccountFactory()
    token = issue_token(account)
    response = post(client, "/api/v1/password-reset/confirm", {"token": token, "new_password": NEW})
    assert response.status_code == 200
    assert response.json() == {"status": "password_changed"}
    account.refresh_from_db()
    assert account.check_password(NEW)
    again = post(
        client, "/api/v1/password-reset/confirm", {"token": token, "new_password": NEW + "x"}
    )
    assert again.json() == {"error": "invalid_token"}


@pytest.mark.django_db
def test_confirm_error_codes(client):
    account = AccountFactory()
    with time_machine.travel("2026-03-02 10:00:00+01:00", tick=False) as clock:
        token = issue_token(account)
        weak = post(
            client, "/api/v1/password-reset/confirm", {"token": token, "new_password": "court"}
        )
        assert weak.status_code == 400
        assert weak.json() == {"error": "weak_password", "rules": ["min_length", "uppercase"]}
        clock.shift(1801)
        expired = post(
            client, "/api/v1/password-reset/confirm", {"token": token, "new_password": NEW}
        )
        assert expired.json() == {"error": "expired_token"}
    bogus = post(client, "/api/v1/password-reset/confirm", {"token": "x" * 43, "new_password": NEW})
    assert bogus.status_code == 400
    assert bogus.json() == {"error": "invalid_token"}


@pytest.mark.django_db
def test_two_tokens_only_the_newest_works(client):
    account = AccountFactory()
    first = issue_token(account)
    second = issue_token(account)
    assert post(
        client, "/api/v1/password-reset/confirm", {"token": first, "new_password": NEW}
    ).json() == {"error": "invalid_token"}
    assert (
        post(
            client, "/api/v1/password-reset/confirm", {"token": second, "new_password": NEW}
        ).status_code
        == 200
    )


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_twenty_simultaneous_submissions_change_the_password_exactly_once():
    if connection.vendor != "postgresql":
        pytest.skip(
            "needs PostgreSQL's concurrent transactions (run by .ci/run and make test-postgres)"
        )
    account = AccountFactory()
    token = issue_token(account)
    barrier = threading.Barrier(20)
    results: list[str] = []
    lock = threading.Lock()

    def submit(i: int) -> None:
        try:
            barrier.wait()
            reset.password_reset_confirm(token=token, password=f"{NEW}-{i:02d}", ip=f"10.0.0.{i}")
            outcome = f"ok:{i}"
        except services.TokenInvalid:
            outcome = "invalid"
        finally:
            connections.close_all()
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [r for r in results if r.startswith("ok:")]
    assert len(results) == 20
    assert len(winners) == 1
    account.refresh_from_db()
    assert account.check_password(f"{NEW}-{int(winners[0][3:]):02d}")
    assert OutboundMessage.objects.filter(template="password_changed").count() == 1
    assert AccountToken.objects.get(token_hash__isnull=False, purpose="password_reset").used_at
