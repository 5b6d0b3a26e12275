"""The sliding idle timeout without a write at every request (portal/accounts/sessions.py).

An unchanged session is saved again, its expiry pushed back, once its last
save is SESSION_REFRESH_EVERY (60) seconds old; a changed one at once; a HEAD
request (the timeout warning's "Rester connecté(e)") always. The expiry is
never later than SESSION_IDLE_TIMEOUT after the last request.
"""

import re

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from portal.accounts.models import Session
from tests.factories import PASSWORD, AccountFactory

START = "2026-03-02 10:00:00+01:00"


def session_writes(context) -> int:
    return sum(
        1
        for query in context.captured_queries
        if "accounts_session" in query["sql"]
        and query["sql"].lstrip().startswith(("UPDATE", "INSERT"))
    )


def expiry():
    return Session.objects.get().expire_date


@pytest.mark.django_db
def test_an_unchanged_session_is_saved_at_most_every_minute(client):
    account = AccountFactory()
    with time_machine.travel(START, tick=False) as clock:
        client.post("/connexion/", {"nir": account.nir, "password": PASSWORD})
        client.get("/mon-espace/")  # the first request records the login's start
        saved = expiry()
        clock.shift(30)
        with CaptureQueriesContext(connection) as queries:
            page = client.get("/mon-espace/")
        assert page.status_code == 200
        assert session_writes(queries) == 0
        assert "portal_session" not in page.cookies  # nothing to send back either
        assert expiry() == saved
        clock.shift(30)
        with CaptureQueriesContext(connection) as queries:
            page = client.get("/mon-espace/")
        assert session_writes(queries) == 1
        assert expiry() > saved
        assert page.cookies["portal_session"]["max-age"] == 1800


@pytest.mark.django_db
def test_the_warnings_keepalive_always_saves(client):
    account = AccountFactory()
    with time_machine.travel(START, tick=False) as clock:
        client.post("/connexion/", {"nir": account.nir, "password": PASSWORD})
        client.get("/mon-espace/")
        saved = expiry()
        clock.shift(5)
        with CaptureQueriesContext(connection) as queries:
            assert client.head("/").status_code == 302  # home sends a member to their space
        assert session_writes(queries) == 1
        assert expiry() > saved


@pytest.mark.django_db
def test_the_idle_timeout_is_never_later_than_its_setting(client):
    account = AccountFactory()
    with time_machine.travel(START, tick=False) as clock:
        client.post("/connexion/", {"nir": account.nir, "password": PASSWORD})
        client.get("/mon-espace/")
        clock.shift(50)
        assert client.get("/mon-espace/").status_code == 200  # not saved: 50 s after the last
        # 29 min 40 s after that request, 30 min 30 s after the last save: logged out.
        clock.shift(1780)
        assert client.get("/mon-espace/").status_code == 302


@pytest.mark.django_db
def test_the_warning_counts_from_the_last_save(client):
    account = AccountFactory()
    with time_machine.travel(START, tick=False) as clock:
        client.post("/connexion/", {"nir": account.nir, "password": PASSWORD})
        client.get("/mon-espace/")
        clock.shift(40)
        page = client.get("/mon-espace/").content.decode()
        assert re.search(r'data-timeout="(\d+)"', page)[1] == "1760"
        clock.shift(25)  # saved again by this request: the whole timeout
        page = client.get("/mon-espace/").content.decode()
        assert re.search(r'data-timeout="(\d+)"', page)[1] == "1800"


@pytest.mark.django_db
def test_a_visitor_gets_no_session(client):
    with CaptureQueriesContext(connection) as queries:
        page = client.get("/")
    assert session_writes(queries) == 0
    assert "portal_session" not in page.cookies
    client.cookies["portal_session"] = "unknown-or-expired-key"
    page = client.get("/")
    assert page.cookies["portal_session"].value == ""  # deleted, not replaced
    assert not Session.objects.exists()


@pytest.mark.django_db
def test_logging_out_leaves_no_session(client):
    account = AccountFactory()
    client.post("/connexion/", {"nir": account.nir, "password": PASSWORD})
    client.get("/mon-espace/")
    client.post("/deconnexion/")
    assert not Session.objects.exists()
    assert client.get("/mon-espace/").status_code == 302
