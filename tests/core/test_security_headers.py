"""Security headers, cookies and CSRF, as a browser (or an attacker) sees them."""

import runpy
import time
from pathlib import Path

import pytest
from django.test import Client

from portal.accounts.middleware import SESSION_STARTED_KEY
from tests.factories import PASSWORD, AccountFactory

BASE_SETTINGS = Path(__file__).resolve().parents[2] / "config" / "settings" / "base.py"
PUBLIC_PATHS = ["/", "/connexion/", "/api/v1/openapi.json", "/healthz"]


def csp_directives(header: str) -> dict[str, list[str]]:
    directives = {}
    for part in header.split(";"):
        name, *values = part.split()
        directives[name] = values
    return directives


def run_base_settings() -> dict:
    """config/settings/base.py evaluated afresh, with the environment of the test."""
    return runpy.run_path(str(BASE_SETTINGS))


def logged_in(client, account):
    """force_login, plus the login time the absolute session timeout expects."""
    client.force_login(account)
    session = client.session
    session[SESSION_STARTED_KEY] = time.time()
    session.save()
    return client


@pytest.mark.django_db
@pytest.mark.parametrize("path", PUBLIC_PATHS)
def test_every_answer_carries_the_security_headers(client, path):
    response = client.get(path)
    assert response.status_code == 200
    directives = csp_directives(response["Content-Security-Policy"])
    assert directives["script-src"] == ["'self'"]
    assert directives["default-src"] == ["'self'"]
    assert directives["frame-ancestors"] == ["'none'"]
    assert directives["object-src"] == ["'none'"]
    assert response["X-Frame-Options"] == "DENY"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Content-Type-Options"] == "nosniff"


@pytest.mark.django_db
@pytest.mark.parametrize("path", PUBLIC_PATHS)
def test_no_unsafe_inline_or_eval_in_the_script_policy(client, path):
    header = client.get(path)["Content-Security-Policy"]
    directives = csp_directives(header)
    for directive in ("script-src", "default-src"):
        assert "'unsafe-inline'" not in directives[directive]
        assert "'unsafe-eval'" not in directives[directive]
    assert "unsafe-inline" not in header


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/", "/connexion/"])
def test_pages_have_no_inline_script_that_the_policy_would_block(client, path):
    html = client.get(path).content.decode()
    scripts = html.split("<script")[1:]
    assert scripts, "the DSFR script is expected on every page"
    for script in scripts:
        tag = script.split(">", 1)[0]
        assert " src=" in tag, f"inline <script{tag}>"
    assert " onclick=" not in html
    assert " onload=" not in html


@pytest.mark.django_db
def test_error_pages_carry_the_headers_too(client):
    response = client.get("/nulle-part/")
    assert response.status_code == 404
    assert "script-src 'self'" in response["Content-Security-Policy"]
    assert response["X-Frame-Options"] == "DENY"


def test_authenticated_pages_are_not_stored(client, account):
    response = logged_in(client, account).get("/mon-espace/")
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    assert response["X-Frame-Options"] == "DENY"


def test_api_answers_are_not_stored(client, db):
    assert client.get("/api/v1/openapi.json")["Cache-Control"] == "no-store"


def test_session_cookie_after_a_real_login_is_httponly_and_lax(client, account):
    response = client.post("/connexion/", {"nir": account.nir, "password": PASSWORD})
    assert response.status_code == 302
    assert response["Location"] == "/mon-espace/"
    cookie = response.cookies["portal_session"]
    assert cookie.value
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Lax"
    assert cookie["path"] == "/"
    assert client.get("/mon-espace/")["Cache-Control"] == "no-store"


def test_csrf_cookie_is_httponly_and_lax(db):
    client = Client(enforce_csrf_checks=True)
    response = client.get("/connexion/")
    cookie = response.cookies["csrftoken"]
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Lax"


@pytest.mark.django_db
def test_hsts_on_secure_requests(client, settings):
    assert settings.SECURE_HSTS_SECONDS > 0
    response = client.get("/", secure=True)
    assert response["Strict-Transport-Security"] == (
        f"max-age={settings.SECURE_HSTS_SECONDS}; includeSubDomains"
    )
    # Browsers ignore HSTS over plain HTTP; Django does not send it there.
    assert "Strict-Transport-Security" not in client.get("/")


@pytest.mark.django_db
def test_csrf_is_enforced_on_the_login_form():
    client = Client(enforce_csrf_checks=True)
    account = AccountFactory()
    response = client.post("/connexion/", {"nir": account.nir, "password": PASSWORD})
    assert response.status_code == 403
    page = response.content.decode()
    assert '<html lang="fr"' in page
    assert "Session expirée" in page
    assert "Rechargez la page" in page
    assert "portal_session" not in response.cookies or not response.cookies["portal_session"].value

    # With the token the page holds, the same request goes through.
    client.get("/connexion/")
    token = client.cookies["csrftoken"].value
    response = client.post(
        "/connexion/", {"nir": account.nir, "password": PASSWORD, "csrfmiddlewaretoken": token}
    )
    assert response.status_code == 302


@pytest.mark.parametrize("debug_env", [None, "0"])
def test_debug_is_off_unless_asked_for(monkeypatch, debug_env):
    if debug_env is None:
        monkeypatch.delenv("DEBUG", raising=False)
    else:
        monkeypatch.setenv("DEBUG", debug_env)
    base = run_base_settings()
    assert base["DEBUG"] is False
    assert base["SECURE_HSTS_SECONDS"] == 31536000


def test_debug_can_be_asked_for(monkeypatch):
    monkeypatch.setenv("DEBUG", "1")
    base = run_base_settings()
    assert base["DEBUG"] is True
    assert base["SECURE_HSTS_SECONDS"] == 0
