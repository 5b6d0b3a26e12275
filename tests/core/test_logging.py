"""No NIR, password or token reaches the logs or the audit trail."""

import copy
import io
import json
import logging
import logging.config
import secrets
from urllib.parse import quote_plus, urlencode

import pytest
from django.conf import settings

from portal.audit.models import AuditEntry
from portal.audit.services import record
from portal.core.logging import MaskSecretsFilter
from portal.members.nir import key_for
from tests.factories import PASSWORD, AccountFactory

NIR13 = "1850578006084"
NIR15 = NIR13 + key_for(NIR13)
CORSICA13 = "285052A006084"
CORSICA15 = CORSICA13 + key_for(CORSICA13)
OVERSEAS15 = "2550897601005" + key_for("2550897601005")


def spaced(nir: str) -> str:
    cuts = [0, 1, 3, 5, 7, 10, 13, 15]
    return " ".join(nir[a:b] for a, b in zip(cuts, cuts[1:], strict=False) if nir[a:b])


@pytest.fixture
def log_output():
    """settings.LOGGING as configured in production, its console writing into a StringIO."""
    console = next(
        handler
        for handler in logging.getLogger("django").handlers
        if isinstance(handler, logging.StreamHandler)
    )
    previous_stream = console.stream
    output = io.StringIO()
    config = copy.deepcopy(settings.LOGGING)
    config["handlers"]["console"]["stream"] = output
    logging.config.dictConfig(config)
    yield output
    config["handlers"]["console"]["stream"] = previous_stream
    logging.config.dictConfig(config)


def test_the_console_handler_masks_for_every_logger():
    assert "mask_secrets" in settings.LOGGING["handlers"]["console"]["filters"]
    assert settings.LOGGING["root"]["handlers"] == ["console"]
    for name in ("django", "django.server"):
        assert settings.LOGGING["loggers"][name]["handlers"] == ["console"]
    for logger in (logging.getLogger(), logging.getLogger("django")):
        assert any(
            isinstance(flt, MaskSecretsFilter)
            for handler in logger.handlers
            for flt in handler.filters
        )


# --- the filter, through the configured handler -----------------------------------


@pytest.mark.parametrize(
    "secret",
    [
        NIR13,
        NIR15,
        spaced(NIR13),
        spaced(NIR15),
        CORSICA13,
        CORSICA15,
        CORSICA15.lower(),
        spaced(CORSICA15),
        spaced(NIR15).replace(" ", "."),
        spaced(NIR13).replace(" ", "-"),
        "2 55 08 976 01 005 " + OVERSEAS15[13:],  # overseas: 3-digit department
    ],
)
@pytest.mark.parametrize("logger_name", ["portal.accounts.services", "django.request"])
def test_nirs_are_masked(log_output, secret, logger_name):
    logging.getLogger(logger_name).warning("login failed for nir=%s from 192.0.2.1", secret)
    line = log_output.getvalue()
    assert "login failed for nir=[NIR] from 192.0.2.1" in line
    assert secret not in line
    assert "6084" not in line
    assert "1005" not in line


def test_a_nir_inside_a_sentence_is_masked_without_eating_the_sentence(log_output):
    logging.getLogger("portal").info("Le NIR %s (clé incluse) est inconnu", spaced(NIR15))
    assert "Le NIR [NIR] (clé incluse) est inconnu" in log_output.getvalue()


def test_ordinary_lines_are_left_alone(log_output):
    logging.getLogger("django.request").warning("GET /mon-espace/ 200 in 12 ms, 3 queries")
    assert "GET /mon-espace/ 200 in 12 ms, 3 queries" in log_output.getvalue()


def test_confirmation_link_tokens_are_masked(log_output):
    token = secrets.token_urlsafe(32)
    logging.getLogger("portal.notifications.services").info(
        "sent https://compte.example.test/compte/confirmer/%s to %s", token, "a@example.org"
    )
    output = log_output.getvalue()
    assert "/compte/confirmer/[TOKEN] to a@example.org" in output
    assert token not in output
    assert token[:8] not in output


def test_bearer_tokens_are_masked(log_output):
    token = secrets.token_urlsafe(32)
    logging.getLogger("portal.api").warning("headers: Authorization: Bearer %s", token)
    output = log_output.getvalue()
    assert "Authorization: Bearer [TOKEN]" in output
    assert token not in output


PASSPHRASES = ["Correct-Cheval-Agrafe-9", 'Le chat, dort "sur" l\'été {ici}']


@pytest.mark.parametrize("secret", PASSPHRASES)
def test_form_encoded_passwords_are_masked(log_output, secret):
    body = urlencode({"nir": "x", "password": secret, "next": "/"})
    logging.getLogger("portal").error("body: %s", body)
    output = log_output.getvalue()
    assert "body: nir=x&password=[MASKED]&next=%2F" in output
    assert quote_plus(secret) not in output


@pytest.mark.parametrize("secret", PASSPHRASES)
@pytest.mark.parametrize("key", ["password", "new_password1", "access_token"])
def test_json_password_and_token_fields_are_masked(log_output, secret, key):
    logging.getLogger("portal").error("payload %s", json.dumps({key: secret, "ok": True}))
    output = log_output.getvalue()
    assert f'payload {{"{key}": "[MASKED]", "ok": true}}' in output
    for word in ("Correct", "Cheval", "chat", "dort", "sur", "ici"):
        assert word not in output


@pytest.mark.parametrize("secret", PASSPHRASES)
def test_repr_of_a_dict_with_a_password_is_masked(log_output, secret):
    logging.getLogger("portal").error("form data %r", {"password": secret, "ok": True})
    output = log_output.getvalue()
    assert "'password': '[MASKED]', 'ok': True}" in output or (
        "'password': \"[MASKED]\", 'ok': True}" in output
    )
    for word in ("Correct", "Cheval", "chat", "dort", "sur", "ici"):
        assert word not in output


def test_arguments_of_any_type_are_masked_once_interpolated(log_output):
    logging.getLogger("portal").warning(
        "attempt %s", {"nir": NIR15, "password": PASSWORD, "access_token": "tok-123456789"}
    )
    output = log_output.getvalue()
    assert NIR15 not in output
    assert PASSWORD not in output
    assert "tok-123456789" not in output


def test_exception_tracebacks_are_masked(log_output):
    try:
        raise ValueError(f"no member with NIR {NIR15} (password={PASSWORD})")
    except ValueError:
        logging.getLogger("django.request").exception("Internal Server Error: /connexion/")
    output = log_output.getvalue()
    assert "Traceback" in output
    assert "ValueError: no member with NIR [NIR] (password=[MASKED]" in output
    assert NIR15 not in output
    assert PASSWORD not in output


def test_the_development_server_request_line_is_masked(log_output):
    token = secrets.token_urlsafe(32)
    logging.getLogger("django.server").info(
        '"%s" %s %s', f"GET /compte/confirmer/{token}?nir={NIR13} HTTP/1.1", "302", "0"
    )
    output = log_output.getvalue()
    assert '"GET /compte/confirmer/[TOKEN]?nir=[NIR] HTTP/1.1" 302 0' in output
    assert token not in output
    assert NIR13 not in output


# --- end to end -------------------------------------------------------------------


@pytest.mark.django_db
def test_a_confirmation_link_leaves_no_token_in_the_logs(client, log_output):
    token = secrets.token_urlsafe(32)
    response = client.get(f"/compte/confirmer/{token}")
    assert response.status_code == 302
    # A mangled link is answered 404, and Django logs its path.
    response = client.get(f"/compte/confirmer/{token}/")
    assert response.status_code == 404
    output = log_output.getvalue()
    assert "Not Found: /compte/confirmer/[TOKEN]/" in output
    assert token not in output


@pytest.mark.django_db
@pytest.mark.parametrize("known", [True, False], ids=["known-account", "unknown-nir"])
def test_a_failed_login_leaves_no_nir_or_password_in_logs_or_audit(client, log_output, known):
    account = AccountFactory()
    nir13 = account.nir if known else "2991299999999"
    wrong = "Mauvais-Mot-De-Passe-17"
    response = client.post(
        f"/connexion/?nir={nir13}", {"nir": spaced(nir13 + key_for(nir13)), "password": wrong}
    )
    assert response.status_code == 400
    output = log_output.getvalue()
    assert "Bad Request: /connexion/" in output
    for secret in (nir13, nir13 + key_for(nir13), wrong, PASSWORD, "Mauvais"):
        assert secret not in output

    entries = list(AuditEntry.objects.filter(action="account.login.failed"))
    assert len(entries) == 1
    if known:
        assert entries[0].member == account.member
    for entry in AuditEntry.objects.all():
        stored = f"{entry.action} {entry.actor} {entry.ip} {entry.request_id} {entry.data}"
        for secret in (nir13, account.member.nir, wrong, PASSWORD):
            assert secret not in stored


@pytest.mark.django_db
@pytest.mark.parametrize(
    "key",
    [
        "password",
        "new_password",
        "Password",
        "sms_code",
        "nir",
        "NIR13",
        "iban_last7",
        "token",
        "api_secret",
    ],
)
def test_audit_record_refuses_secret_keys(key):
    with pytest.raises(ValueError, match="secrets"):
        record(action="account.test", actor="system", data={key: "x", "account_id": 1})
    assert not AuditEntry.objects.exists()


@pytest.mark.django_db
def test_audit_record_keeps_harmless_data():
    entry = record(action="account.test", actor="system", data={"account_id": 7, "channel": "web"})
    assert AuditEntry.objects.get().data == {"account_id": 7, "channel": "web"}
    assert entry.actor == "system"


def test_reference_codes_are_not_masked_nor_refused(db):
    from portal.audit.services import record
    from portal.core.logging import mask_secrets

    assert mask_secrets("status_code=400 postal_code=75011") == "status_code=400 postal_code=75011"
    assert mask_secrets("code=12345678 sms_code=87654321") == "code=[MASKED] sms_code=[MASKED]"
    entry = record(
        action="test.reference", actor="system", data={"postal_code": "75011", "cpam_code": "751"}
    )
    assert entry.data == {"postal_code": "75011", "cpam_code": "751"}


@pytest.mark.django_db
def test_the_access_log_masks_link_tokens(client, log_output):
    token = secrets.token_urlsafe(32)
    client.get(f"/compte/confirmer/{token}")
    output = log_output.getvalue()
    assert "GET /compte/confirmer/[TOKEN] 302" in output
    assert token not in output
