"""Security headers, cookies and CSRF, as a browser (or an attacker) sees them."""

import runpy
import time
from pathlib import Path

import pytest
from django.test import Client

from portal.accounts.middleware import SESSION_STARTED_KEY
from tests.console.conftest import make_staff, staff_login
from tests.factories import PASSWORD, AccountFactory

BASE_SETTINGS = Path(__file__).resolve().parents[2] / "config" / "settings" / "base.py"


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


# --- every type of page, as served over HTTPS ---------------------------------


def staff_client(client, account):
    staff_login(client, make_staff("phone_advisor"))
    return client


def api_client(client, account):
    response = client.post(
        "/api/v1/auth/token",
        {"nir": account.nir, "password": PASSWORD},
        content_type="application/json",
    )
    token = response.json()["access_token"]
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return client


def anonymous(client, account):
    return client


# (page type, path, who asks, status, no-store: personal, or under /api/)
PAGE_TYPES = [
    ("public page", "/", anonymous, 200, False),
    ("login page", "/connexion/", anonymous, 200, False),
    ("member page", "/mon-espace/", logged_in, 200, True),
    ("form page", "/mon-compte/courriel/", logged_in, 200, True),
    ("PDF download", "/paiements/attestation-droits.pdf", logged_in, 200, True),
    ("CSV export", "/paiements/export.csv", logged_in, 200, True),
    ("API JSON", "/api/v1/me", api_client, 200, True),
    ("API schema", "/api/v1/openapi.json", anonymous, 200, True),
    ("health probe", "/healthz", anonymous, 200, False),
    ("error 404", "/nulle-part/", anonymous, 404, False),
    ("advisor console", "/conseiller/", staff_client, 200, True),
    ("advisor login", "/conseiller/connexion/", anonymous, 200, False),
    ("static file", "/static/portal/portal.css", anonymous, 200, False),
]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "who", "status", "no_store"),
    [pytest.param(*rest, id=name) for name, *rest in PAGE_TYPES],
)
def test_each_type_of_page_carries_the_security_headers(
    client, account, settings, path, who, status, no_store
):
    client = who(client, account)
    response = client.get(path, secure=True)
    assert response.status_code == status
    content_type = response["Content-Type"]

    # Everywhere, static files included (SecurityMiddleware runs around WhiteNoise).
    assert response["Strict-Transport-Security"] == (
        f"max-age={settings.SECURE_HSTS_SECONDS}; includeSubDomains"
    )
    assert settings.SECURE_HSTS_SECONDS >= 31536000
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] in ("same-origin", "no-referrer")
    # Nothing from the app says what runs behind it (gunicorn itself adds a
    # bare `Server: gunicorn`, without its version, which nginx replaces).
    for leak in ("Server", "X-Powered-By", "X-AspNet-Version", "X-Generator"):
        assert leak not in response, leak

    if path.startswith("/static/"):
        # WhiteNoise answers before the CSP and frame middlewares: a stylesheet
        # cannot be framed or run script anyway. It is public and may be cached.
        assert content_type.startswith("text/css")
        assert "no-store" not in response.get("Cache-Control", "")
        return

    # Every document the app itself answers, whatever its type: a PDF opened in
    # the browser's viewer can be framed as well as a page.
    directives = csp_directives(response["Content-Security-Policy"])
    for directive in ("script-src", "default-src"):
        assert directives[directive] == ["'self'"], directive
    assert "'unsafe-inline'" not in response["Content-Security-Policy"]
    assert "'unsafe-eval'" not in response["Content-Security-Policy"]
    assert directives["frame-ancestors"] == ["'none'"]
    assert directives["object-src"] == ["'none'"]
    assert response["X-Frame-Options"] == "DENY"

    if content_type.startswith("text/html"):
        assert response["Cross-Origin-Opener-Policy"] == "same-origin"
    if content_type.startswith(("application/pdf", "text/csv")):
        assert response["Content-Disposition"].startswith("attachment;")

    if no_store:
        assert "no-store" in response["Cache-Control"]
    else:
        assert "no-store" not in response.get("Cache-Control", ""), "a public page, cacheable"
