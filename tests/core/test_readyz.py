"""/readyz fails, without saying why to the caller, when PostgreSQL, the task queue
or Redis cannot be reached; /healthz only says the process answers."""

import socket

import pytest
from django.db.utils import ConnectionHandler
from django.test import override_settings
from django_tasks_db.models import DBTaskResult

from portal.www import health

pytestmark = pytest.mark.django_db


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_ready_with_the_database_and_the_queue(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    # A per-process memory cache is not checked: only a shared one can be unreachable.
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "queue": "ok"}}


def test_postgresql_unreachable(client, monkeypatch, caplog):
    unreachable = ConnectionHandler(
        {
            "default": {
                "ENGINE": "django.db.backends.postgresql",
                "HOST": "127.0.0.1",
                "PORT": closed_port(),
                "NAME": "portal",
                "USER": "portal",
                "PASSWORD": "not-a-real-password",
                "OPTIONS": {"connect_timeout": 2},
            }
        }
    )
    monkeypatch.setattr(health, "connections", unreachable)
    try:
        response = client.get("/readyz")
    finally:
        unreachable.close_all()
    assert response.status_code == 503
    assert response.json() == {
        "status": "error",
        "checks": {"database": "error", "queue": "error"},
    }
    assert "readyz: the database check failed: OperationalError" in caplog.text
    assert "not-a-real-password" not in caplog.text
    assert b"OperationalError" not in response.content  # the cause is for the logs only


def test_the_queue_unreachable(client, monkeypatch):
    monkeypatch.setattr(DBTaskResult._meta, "db_table", "django_tasks_db_missing")
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"] == {"database": "ok", "queue": "error"}


def test_redis_unreachable(client, caplog):
    cache = {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": f"redis://127.0.0.1:{closed_port()}/0",
        "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
    }
    with override_settings(CACHES={"default": cache}):
        response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"] == {"database": "ok", "queue": "ok", "cache": "error"}
    assert "readyz: the cache check failed: ConnectionError" in caplog.text


def test_healthz_answers_whatever_the_dependencies(client, monkeypatch):
    monkeypatch.setattr(DBTaskResult._meta, "db_table", "django_tasks_db_missing")
    assert client.get("/healthz").json() == {"status": "ok"}


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics"])
def test_probes_are_not_redirected_to_https(client, settings, path):
    """The orchestrator and the monitoring call the app directly, in plain HTTP."""
    settings.SECURE_SSL_REDIRECT = True
    settings.METRICS_ALLOWED_IPS = ["127.0.0.1"]
    assert client.get(path).status_code == 200
    assert client.get("/connexion/").status_code == 301


def test_probes_refuse_other_methods(client):
    assert client.post("/readyz").status_code == 405
    assert client.post("/metrics").status_code == 405
