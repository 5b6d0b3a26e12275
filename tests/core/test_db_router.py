"""The read-replica router: which database each read and write goes to.

Unit tests assert the router's choices; the HTTP tests register a `replica`
alias that is a second connection to the test database (as a real replica is
a second server holding the same rows) and look at which connection ran
which query.
"""

import json
from datetime import date
from decimal import Decimal

import pytest
from django.db import DEFAULT_DB_ALIAS, connections, router, transaction
from django.test.utils import CaptureQueriesContext

from portal.accounts.models import Account
from portal.accounts.services import api_token_issue
from portal.core import db_router
from portal.core.db_router import REPLICA, ReplicaRouter, replica_reads
from portal.members.models import Member
from portal.payments.models import ReimbursementLine
from tests.factories import PASSWORD, AccountFactory


@pytest.fixture
def replica_alias(monkeypatch):
    """For the router's choices: a `replica` alias is configured."""
    monkeypatch.setattr(db_router, "replica_configured", lambda: True)


@pytest.fixture(scope="module")
def django_db_setup(django_db_setup):
    """For the HTTP tests: a `replica` alias that is a second connection to the test
    database, registered before pytest-django checks the tests' `databases`."""
    connections.settings[REPLICA] = {**connections[DEFAULT_DB_ALIAS].settings_dict}
    yield
    if hasattr(connections._connections, REPLICA):
        connections[REPLICA].close()
        delattr(connections._connections, REPLICA)
    del connections.settings[REPLICA]


WITH_REPLICA = pytest.mark.django_db(transaction=True, databases=[DEFAULT_DB_ALIAS, REPLICA])


def make_line(member, n: int) -> ReimbursementLine:
    return ReimbursementLine.objects.create(
        line_id=f"R{n:08d}",
        member=member,
        care_date=date(2026, 2, 1),
        act_code="G",
        act_label="Consultation généraliste",
        professional="Dr Morel, médecin généraliste",
        amount_paid=Decimal("30.00"),
        base_amount=Decimal("30.00"),
        rate=Decimal("70.00"),
        gross_reimbursed=Decimal("21.00"),
        participation_forfaitaire=Decimal("2.00"),
        franchise=Decimal("0.00"),
        net_reimbursed=Decimal("19.00"),
        payee="member",
        payment_date=date(2026, 2, 4),
        payment_reference=f"VIR{n}",
        status="paid",
    )


# --- the router's choices ------------------------------------------------------------------


def test_the_router_is_installed(settings):
    assert settings.DATABASE_ROUTERS == ["portal.core.db_router.ReplicaRouter"]


def test_without_a_replica_everything_reads_the_primary(monkeypatch):
    monkeypatch.setattr(db_router, "replica_configured", lambda: False)
    with replica_reads():
        assert router.db_for_read(ReimbursementLine) == DEFAULT_DB_ALIAS


def test_payment_reads_go_to_the_replica_only_in_scope(replica_alias):
    assert router.db_for_read(ReimbursementLine) == DEFAULT_DB_ALIAS  # a task, a command
    with replica_reads():
        assert router.db_for_read(ReimbursementLine) == REPLICA
        # Sessions, accounts and members stay fresh: a closed account is closed at once.
        assert router.db_for_read(Account) == DEFAULT_DB_ALIAS
        assert router.db_for_read(Member) == DEFAULT_DB_ALIAS
        # Every write goes to the primary, whatever was read from where.
        assert router.db_for_write(ReimbursementLine) == DEFAULT_DB_ALIAS
    assert router.db_for_read(ReimbursementLine) == DEFAULT_DB_ALIAS  # the scope ended


@pytest.mark.django_db
def test_reads_inside_a_primary_transaction_stay_on_the_primary(replica_alias):
    with replica_reads():
        # The test runs in a transaction of its own; leave it aside to see the difference.
        in_test_transaction = connections[DEFAULT_DB_ALIAS].in_atomic_block
        with transaction.atomic():
            assert router.db_for_read(ReimbursementLine) == DEFAULT_DB_ALIAS
    assert in_test_transaction


def test_the_replica_is_never_migrated_and_relations_are_allowed():
    choice = ReplicaRouter()
    assert choice.allow_migrate(REPLICA, "payments") is False
    assert choice.allow_migrate(DEFAULT_DB_ALIAS, "payments") is None
    line, member = ReimbursementLine(), Member()
    line._state.db, member._state.db = REPLICA, DEFAULT_DB_ALIAS
    assert choice.allow_relation(line, member) is True


# --- through HTTP --------------------------------------------------------------------------


def queries(context: CaptureQueriesContext, table: str) -> list[str]:
    return [q["sql"] for q in context.captured_queries if table in q["sql"]]


@WITH_REPLICA
def test_mes_paiements_reads_the_payment_tables_from_the_replica(client):
    account = AccountFactory()
    make_line(account.member, 1)
    assert client.post("/connexion/", {"nir": account.nir, "password": PASSWORD}).status_code == 302
    with (
        CaptureQueriesContext(connections[REPLICA]) as on_replica,
        CaptureQueriesContext(connections[DEFAULT_DB_ALIAS]) as on_primary,
    ):
        page = client.get("/paiements/")
    assert page.status_code == 200
    assert "VIR1" in page.content.decode() or "19,00" in page.content.decode()
    assert queries(on_replica, "payments_reimbursementline")
    assert not queries(on_primary, "payments_reimbursementline")
    # The session and the account were read (and the session written) on the primary.
    assert queries(on_primary, "accounts_session")
    assert queries(on_primary, "accounts_account")
    assert not queries(on_replica, "accounts_session")
    assert not queries(on_replica, "accounts_account")


@WITH_REPLICA
def test_the_api_list_reads_the_replica_and_other_routes_do_not(client):
    account = AccountFactory()
    make_line(account.member, 2)
    token, _ = api_token_issue(account=account, ip="127.0.0.1")
    auth = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    with CaptureQueriesContext(connections[REPLICA]) as on_replica:
        listed = client.get("/api/v1/reimbursements", **auth)
    assert listed.status_code == 200
    assert [item["line_id"] for item in listed.json()["items"]] == ["R00000002"]
    assert queries(on_replica, "payments_reimbursementline")
    assert not queries(on_replica, "accounts_apitoken")  # the bearer token: primary

    # Any other route, and any write, leaves the replica alone.
    with CaptureQueriesContext(connections[REPLICA]) as on_replica:
        assert client.get("/api/v1/me", **auth).status_code == 200
        body = json.dumps({"nir": account.nir, "birth_date": "1985-05-12"})
        client.post("/api/v1/password-reset", body, content_type="application/json")
    assert on_replica.captured_queries == []


@WITH_REPLICA
def test_outside_a_request_payment_reads_use_the_primary():
    account = AccountFactory()
    make_line(account.member, 3)
    with CaptureQueriesContext(connections[REPLICA]) as on_replica:
        assert ReimbursementLine.objects.filter(member=account.member).count() == 1
    assert on_replica.captured_queries == []
