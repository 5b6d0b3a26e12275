import json

import pytest

from portal.accounts.models import Account
from portal.members.nir import key_for
from portal.notifications.models import OutboundMessage
from tests.factories import PASSWORD, AccountFactory, random_nir13

GOOD_PASSWORD = "Une-Phrase-Longue-42"


def post(client, path, payload, **extra):
    body = payload if isinstance(payload, (str, bytes)) else json.dumps(payload)
    return client.post(path, body, content_type="application/json", **extra)


def creation_payload(member, **overrides):
    payload = {
        "nir": member.nir,
        "birth_date": member.birth_date.isoformat(),
        "iban_last7": member.iban[-7:],
        "email": "nouvelle@example.org",
        "mobile_phone": "+33611223344",
        "password": GOOD_PASSWORD,
    }
    payload.update(overrides)
    return payload


@pytest.mark.django_db
def test_account_creation_sends_a_confirmation_link(client, member):
    response = post(client, "/api/v1/accounts", creation_payload(member))
    assert response.status_code == 202
    account = Account.objects.get(member=member)
    assert account.state == Account.State.PENDING
    assert account.nir == member.nir[:13]
    message = OutboundMessage.objects.get(template="account_confirmation")
    assert message.recipient == "nouvelle@example.org"
    assert "https://compte.example.test/compte/confirmer/" in message.body_text


@pytest.mark.django_db
def test_existing_account_gets_the_same_answer_and_its_owner_an_email(client):
    existing = AccountFactory(email="titulaire@example.org")
    response = post(client, "/api/v1/accounts", creation_payload(existing.member))
    assert response.status_code == 202
    from tests.factories import MemberFactory

    fresh_member_response = post(client, "/api/v1/accounts", creation_payload(MemberFactory()))
    assert response.json() == fresh_member_response.json()
    existing.refresh_from_db()
    assert existing.state == Account.State.ACTIVE
    assert existing.check_password(PASSWORD)  # nothing changed
    attempt = OutboundMessage.objects.get(template="account_creation_attempt")
    assert attempt.recipient == "titulaire@example.org"
    assert "/mot-de-passe-oublie/" in attempt.body_text
    # Only the fresh member got a confirmation link; the existing account is untouched.
    assert OutboundMessage.objects.filter(template="account_confirmation").count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize("field", ["nir", "birth_date", "iban_last7"])
def test_wrong_proof_gets_one_generic_error(client, member, field):
    other_nir = random_nir13()
    wrong = {
        "nir": other_nir + key_for(other_nir),
        "birth_date": "1990-01-01",
        "iban_last7": "0000000",
    }[field]
    response = post(client, "/api/v1/accounts", creation_payload(member, **{field: wrong}))
    assert response.status_code == 400
    assert response.json() == {"error": "identity_not_verified"}
    assert not Account.objects.exists()
    assert not OutboundMessage.objects.exists()


@pytest.mark.django_db
def test_weak_password_names_each_rule(client, member):
    response = post(client, "/api/v1/accounts", creation_payload(member, password="court"))
    assert response.status_code == 400
    assert response.json() == {"error": "weak_password", "rules": ["min_length", "uppercase"]}


@pytest.mark.django_db
def test_account_creation_is_throttled_per_nir(client, member, settings):
    settings.ACCOUNT_CREATION_LIMIT_PER_NIR = 5
    for _ in range(5):
        response = post(client, "/api/v1/accounts", creation_payload(member, iban_last7="0000000"))
        assert response.status_code == 400
    response = post(client, "/api/v1/accounts", creation_payload(member))
    assert response.status_code == 429
    assert response.json()["error"] == "throttled"
    assert "Retry-After" in response


@pytest.mark.django_db
def test_account_creation_is_throttled_per_ip(client, settings):
    from tests.factories import MemberFactory

    settings.ACCOUNT_CREATION_LIMIT_PER_IP = 3
    members = MemberFactory.create_batch(4)
    codes = [
        post(client, "/api/v1/accounts", creation_payload(m, iban_last7="0000000")).status_code
        for m in members
    ]
    assert codes == [400, 400, 400, 429]
    other_ip = post(
        client,
        "/api/v1/accounts",
        creation_payload(members[0], iban_last7="0000000"),
        REMOTE_ADDR="10.9.9.9",
    )
    assert other_ip.status_code == 400


@pytest.mark.django_db
def test_token_login_me_and_logout(client):
    account = AccountFactory()
    response = post(client, "/api/v1/auth/token", {"nir": account.nir, "password": PASSWORD})
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer" and body["expires_in"] > 0
    assert len(body["access_token"]) >= 22  # >= 128 bits in base64url
    auth = {"HTTP_AUTHORIZATION": f"Bearer {body['access_token']}"}
    me = client.get("/api/v1/me", **auth)
    assert me.status_code == 200
    assert me.json()["nir"] == "•" * 9 + account.nir[-4:]
    assert me.json()["cpam"] == {"code": "751", "name": "Paris"}
    assert me["Cache-Control"] == "no-store"
    assert client.post("/api/v1/auth/logout", **auth).status_code == 204
    assert client.get("/api/v1/me", **auth).status_code == 401


@pytest.mark.django_db
def test_token_is_stored_hashed(client):
    from portal.accounts.models import ApiToken

    account = AccountFactory()
    token = post(client, "/api/v1/auth/token", {"nir": account.nir, "password": PASSWORD}).json()[
        "access_token"
    ]
    stored = ApiToken.objects.get()
    assert token not in stored.token_hash


@pytest.mark.django_db
def test_unknown_nir_and_wrong_password_get_the_same_answer(client):
    account = AccountFactory()
    wrong_password = post(
        client, "/api/v1/auth/token", {"nir": account.nir, "password": "Mauvais-Mot-2"}
    )
    unknown = post(
        client, "/api/v1/auth/token", {"nir": "1850578006084", "password": "Mauvais-Mot-2"}
    )
    malformed = post(client, "/api/v1/auth/token", {"nir": "abc", "password": "Mauvais-Mot-2"})
    for response in (wrong_password, unknown, malformed):
        assert response.status_code == 401
        assert response.json() == {"error": "invalid_credentials"}


@pytest.mark.django_db
def test_me_requires_a_token(client):
    assert client.get("/api/v1/me").status_code == 401
    assert client.get("/api/v1/me", HTTP_AUTHORIZATION="Bearer nope").json() == {
        "error": "not_authenticated"
    }


MALFORMED = [
    b"{not json",
    b"",
    b"[]",
    b'"a string"',
    b"\xff\xfe\x00",
    json.dumps({"nir": ["1850578006084"], "password": "x"}),
    json.dumps({"nir": 1850578006084, "password": "x"}),
    json.dumps({"nir": None, "password": "x"}),
    json.dumps({"nir": {"$gt": ""}, "password": "x"}),
    json.dumps({"nir": "1850578006084"}),
    json.dumps({"nir": "1850578006084", "password": "x", "extra": 1}),
    '{"nir": "1850578006084", "nir": "2920675112233", "password": "x"}',
    json.dumps({"nir": "1" * 1_000_000, "password": "x"}),
    json.dumps({"nir": "1850578006084", "password": "x" * 1_000_000}),
]


@pytest.mark.django_db
@pytest.mark.parametrize("body", MALFORMED)
@pytest.mark.parametrize("path", ["/api/v1/auth/token", "/api/v1/accounts"])
def test_malformed_bodies_get_a_json_error_never_a_500(client, body, path):
    response = post(client, path, body)
    assert 400 <= response.status_code < 500
    assert response["Content-Type"].startswith("application/json")
    assert isinstance(response.json()["error"], str)


@pytest.mark.django_db
def test_duplicate_keys_are_refused(client):
    response = post(client, "/api/v1/auth/token", '{"nir": "1", "nir": "2", "password": "x"}')
    assert response.status_code == 400
    assert response.json() == {"error": "malformed_json"}


@pytest.mark.django_db
def test_bad_email_and_phone_get_their_own_codes(client, member):
    assert post(
        client, "/api/v1/accounts", creation_payload(member, email="pas-un-courriel")
    ).json() == {"error": "invalid_email"}
    assert post(
        client, "/api/v1/accounts", creation_payload(member, mobile_phone="123")
    ).json() == {"error": "invalid_mobile_phone"}


def test_openapi_schema_and_docs(client):
    schema = client.get("/api/v1/openapi.json").json()
    assert {"/api/v1/accounts", "/api/v1/auth/token", "/api/v1/auth/logout", "/api/v1/me"} <= set(
        schema["paths"]
    )
    assert client.get("/api/v1/docs").status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("get", "/api/v1/nope", 404, "not_found"),
        ("get", "/api/v1/auth/token", 405, "method_not_allowed"),
        ("put", "/api/v1/me", 405, "method_not_allowed"),
    ],
)
def test_django_level_errors_under_the_api_are_json(client, method, path, status, code):
    response = getattr(client, method)(path)
    assert response.status_code == status
    assert response.json() == {"error": code}


@pytest.mark.django_db
def test_an_unexpected_error_in_the_api_is_a_json_500(client, monkeypatch):
    from portal.accounts import services

    def broken(**kwargs):
        raise RuntimeError("database on fire")

    monkeypatch.setattr(services, "account_authenticate", broken)
    client.raise_request_exception = False
    response = post(client, "/api/v1/auth/token", {"nir": "1850578006084", "password": "x"})
    assert response.status_code == 500
    assert response.json() == {"error": "server_error"}
    assert b"database on fire" not in response.content


@pytest.mark.django_db
def test_a_mobile_outside_the_eu_is_refused(client, member):
    response = post(
        client, "/api/v1/accounts", creation_payload(member, mobile_phone="+12025550123")
    )
    assert response.json() == {"error": "invalid_mobile_phone"}
