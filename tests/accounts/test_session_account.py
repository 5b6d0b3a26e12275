"""The session and its account, read in one query (portal/accounts/sessions.py).

The session's row carries the logged-in account's id (`Session.account`), so
that the store reads both at once; `NirBackend.get_user` takes that account
and Django still checks it: the id the session's data names, an active
account, the session hash (password, epoch). These tests hold the rules that
must not move with the speed-up.
"""

import pytest
from django.contrib.auth import SESSION_KEY
from django.db import connection
from django.test.utils import CaptureQueriesContext

from portal.accounts.models import Account, Session
from portal.accounts.sessions import SessionStore
from tests.console.conftest import make_staff, staff_login
from tests.factories import PASSWORD, AccountFactory


def login(client, account) -> Session:
    response = client.post("/connexion/", {"nir": account.nir, "password": PASSWORD})
    assert response.status_code == 302
    return Session.objects.get(session_key=client.cookies["portal_session"].value)


def space(client):
    """Mon espace, and the queries it took."""
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/mon-espace/")
    return response, queries


@pytest.mark.django_db
def test_the_session_row_names_its_account_and_one_query_reads_both(client):
    account = AccountFactory()
    session = login(client, account)
    assert session.account_id == account.pk
    assert session.get_decoded()[SESSION_KEY] == str(account.pk)
    response, queries = space(client)
    assert response.status_code == 200
    assert response.wsgi_request.user == account
    reads = [q["sql"] for q in queries.captured_queries if "accounts_account" in q["sql"]]
    assert len(reads) == 1 and "accounts_session" in reads[0]


@pytest.mark.django_db
def test_a_password_changed_elsewhere_ends_the_session_at_the_next_request(client):
    account = AccountFactory()
    login(client, account)
    account.set_password("Un-Autre-Mot-De-Passe-2026")
    account.save(update_fields=["password"])
    response, _ = space(client)
    assert response.status_code == 302 and response["Location"].startswith("/connexion/")
    assert not Session.objects.filter(account=account).exists()


@pytest.mark.django_db
def test_an_epoch_bump_or_a_closed_account_ends_the_session_at_the_next_request(client):
    account = AccountFactory()
    login(client, account)
    Account.objects.filter(pk=account.pk).update(session_epoch=1)
    assert space(client)[0].status_code == 302

    other = AccountFactory()
    login(client, other)
    assert space(client)[0].status_code == 200
    Account.objects.filter(pk=other.pk).update(state=Account.State.DELETED)
    response, _ = space(client)
    assert response.status_code == 302
    assert not response.wsgi_request.user.is_authenticated


@pytest.mark.django_db
def test_the_sessions_data_wins_over_its_account_column(client):
    """A column that disagrees (written by hand, a bug) never logs anyone in as another."""
    account, other = AccountFactory(), AccountFactory()
    session = login(client, account)
    Session.objects.filter(pk=session.pk).update(account=other)
    response, queries = space(client)
    assert response.status_code == 200
    assert response.wsgi_request.user == account
    # The account the data names was read apart.
    assert sum("accounts_account" in q["sql"] for q in queries.captured_queries) == 2

    Session.objects.filter(pk=session.pk).update(account=None)
    response, _ = space(client)
    assert response.wsgi_request.user == account


@pytest.mark.django_db
def test_a_forged_column_on_an_anonymous_session_logs_no_one_in(client):
    store = SessionStore()
    store["next"] = "/paiements/"  # an anonymous session
    store.create()
    client.cookies["portal_session"] = store.session_key
    session = Session.objects.get(session_key=store.session_key)
    assert session.account_id is None and SESSION_KEY not in session.get_decoded()
    Session.objects.filter(pk=session.pk).update(account=AccountFactory())
    response, _ = space(client)
    assert response.status_code == 302
    assert not response.wsgi_request.user.is_authenticated


@pytest.mark.django_db
def test_logout_leaves_no_session_naming_the_account(client):
    account = AccountFactory()
    login(client, account)
    client.post("/deconnexion/")
    assert not Session.objects.filter(account=account).exists()
    assert space(client)[0].status_code == 302


@pytest.mark.django_db
def test_a_staff_session_names_no_account(client):
    staff = make_staff("phone_advisor")
    staff_login(client, staff)
    session = Session.objects.get(session_key=client.cookies["portal_session"].value)
    assert session.account_id is None
    assert session.get_decoded()["staff_id"] == staff.pk
