"""The database unreachable (restarted, failing over): 503 with Retry-After, in French
on pages and as a stable JSON code in the API, never a 500 page.

The outage is injected where the login first needs the database; `make
faults` (loadtest/faults.py, "postgres") stops the real server under load.
"""

import pytest
from django.db import InterfaceError, OperationalError

from portal.accounts import services
from portal.www.views import errors

pytestmark = pytest.mark.django_db

LOGIN = {"nir": "1850578006084", "password": "Un-Mot-De-Passe-Solide-1"}


@pytest.fixture
def database_down(monkeypatch, client):
    def unreachable(**kwargs):
        raise OperationalError('connection to server at "127.0.0.1" failed: Connection refused')

    monkeypatch.setattr(services, "account_authenticate", unreachable)
    client.raise_request_exception = False
    return client


def test_a_page_says_the_service_is_unavailable_for_a_while(database_down):
    response = database_down.post("/connexion/", LOGIN)
    assert response.status_code == 503
    assert response["Retry-After"] == "30"
    page = response.content.decode()
    assert "Service momentanément indisponible" in page
    assert "Réessayez dans quelques minutes" in page
    assert "Connection refused" not in page and "127.0.0.1" not in page


def test_the_api_answers_a_stable_code(database_down):
    response = database_down.post("/api/v1/auth/token", LOGIN, content_type="application/json")
    assert response.status_code == 503
    assert response.json() == {"error": "service_unavailable"}
    assert response["Retry-After"] == "30"


def test_a_lost_connection_is_unavailable_too(monkeypatch, client):
    def lost(**kwargs):
        raise InterfaceError("connection already closed")

    monkeypatch.setattr(services, "account_authenticate", lost)
    client.raise_request_exception = False
    assert client.post("/connexion/", LOGIN).status_code == 503


def test_other_errors_stay_a_500(monkeypatch, client):
    def broken(**kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(services, "account_authenticate", broken)
    client.raise_request_exception = False
    response = client.post("/connexion/", LOGIN)
    assert response.status_code == 500
    assert "Retry-After" not in response
    assert "Erreur inattendue" in response.content.decode()


def test_a_plain_page_when_even_the_error_page_cannot_be_rendered(database_down, monkeypatch):
    def no_render(*args, **kwargs):
        raise OperationalError("the template needed the database")

    monkeypatch.setattr(errors, "render", no_render)
    response = database_down.post("/connexion/", LOGIN)
    assert response.status_code == 503
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response.content.decode().startswith("Service momentanément indisponible.")
