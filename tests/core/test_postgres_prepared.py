"""Prepared statements for the hot reads (portal/core/postgresql/base.py), on a real PostgreSQL.

`prepared_cursor()` binds parameters on the server, so that psycopg prepares
a statement once it has run `prepare_threshold` times on a connection; the
hot reads use it (`portal.core.rows.hot_cursor`: the session with its
account, an API token, the account; `first_page_version` of Mes paiements),
everything else keeps Django's cursors and is never prepared.

What PostgreSQL prepared is read from `pg_prepared_statements`, which lists
the statements of the server session that queries it only: it is queried on
the connection that ran the reads, through Django's cursor (never prepared
itself). Its `generic_plans + custom_plans` counts the executions of a
statement: each run of a prepared read adds one.

Most tests run on the test's own connection, inside its transaction:
psycopg forgets and deallocates every prepared statement of a connection at
a rollback, a savepoint's included, so each test starts from none
(`nothing_prepared`). The test of the threshold opens connections of its own
(a temporary alias, committed data) to start from a session that never ran
anything.
"""

import itertools
import os
import re
import subprocess
import sys
from datetime import date, timedelta
from typing import NamedTuple

import pytest
import time_machine
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.core.cache import cache
from django.db import connection, connections, transaction
from django.db.models import Count, Max
from django.utils import timezone
from django.utils.module_loading import import_string

from portal.accounts.backends import _ACTIVE_ACCOUNT
from portal.accounts.models import Account, ApiToken
from portal.accounts.services import _LIVE_API_TOKEN, api_token_issue
from portal.accounts.sessions import _LIVE_SESSION, NIR_BACKEND, SessionStore
from portal.core.postgresql.base import DatabaseWrapper
from portal.core.tokens import token_hash
from portal.payments import selectors
from portal.payments.models import ReimbursementLine
from tests.factories import AccountFactory
from tests.www.test_payments import login, make_line

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

THRESHOLD = 5  # DATABASE_PREPARED_STATEMENTS on (the default): config/settings/base.py
RUNS = 2 * THRESHOLD  # how often a read runs where it is to be prepared, or not
IP = "192.0.2.10"
START = "2026-03-16 09:00:00+01:00"
Session = SessionStore.get_model_class()


@pytest.fixture(autouse=True)
def _postgresql_only():
    if connection.vendor != "postgresql":
        pytest.skip(
            "needs a PostgreSQL server to prepare statements on "
            "(run by .ci/run and make test-postgres)"
        )


class Prepared(NamedTuple):
    name: str
    statement: str
    from_sql: bool  # PREPARE in SQL; psycopg prepares through the protocol
    executions: int  # generic_plans + custom_plans


def prepared(wrapper) -> list[Prepared]:
    """The statements prepared in the server session of `wrapper`, oldest first."""
    with wrapper.cursor() as cursor:
        cursor.execute(
            "SELECT name, statement, from_sql, generic_plans + custom_plans "
            "FROM pg_prepared_statements ORDER BY prepare_time, name"
        )
        return [Prepared(*row) for row in cursor.fetchall()]


def statement_of(wrapper, sql: str) -> Prepared | None:
    """The prepared statement whose text is `sql`, as psycopg sends it, if any."""
    found = [row for row in prepared(wrapper) if row.statement == sql]
    assert len(found) <= 1, found
    return found[0] if found else None


def server_sql(sql: str) -> str:
    """A query as psycopg sends it to be bound on the server: `%s` become `$1`, `$2`…"""
    numbers = itertools.count(1)
    return re.sub("%s", lambda _match: f"${next(numbers)}", sql)


def hot_sql(row, using: str = "default") -> str:
    """The SQL of a `JoinedRow` on `using` as the server sees it (built at its first use)."""
    return server_sql(row._compiled[using].sql)


@pytest.fixture
def nothing_prepared(db):
    """The test's connection with no statement prepared on it.

    A test before may have left some when it committed instead of rolling
    back (transaction=True): a savepoint rolled back makes psycopg deallocate
    them all.
    """
    with transaction.atomic():
        transaction.set_rollback(True)
    assert prepared(connection) == []
    return connection


def logged_in_session(account) -> str:
    """A session as `django.contrib.auth.login` leaves it for a member."""
    store = SessionStore()
    store.update(
        {
            SESSION_KEY: str(account.pk),
            BACKEND_SESSION_KEY: NIR_BACKEND,
            HASH_SESSION_KEY: account.get_session_auth_hash(),
        }
    )
    store.save()
    return store.session_key


def values(instance) -> dict:
    return {
        field.attname: getattr(instance, field.attname) for field in instance._meta.concrete_fields
    }


def with_account(found) -> tuple[dict, dict, dict, dict] | None:
    """Every field of a session's or token's row, its account's, member's and office's."""
    if found is None:
        return None
    account = found.account
    return values(found), values(account), values(account.member), values(account.member.cpam)


def account_fields(found) -> tuple[dict, dict, dict] | None:
    if found is None:
        return None
    return values(found), values(found.member), values(found.member.cpam)


def orm_session(key, now, using="default"):
    return (
        Session.objects.using(using)
        .select_related("account__member__cpam")
        .filter(session_key=key, expire_date__gt=now)
        .first()
    )


# 1. The session read, prepared on the connection that runs it


def test_the_session_read_is_prepared_after_the_threshold_and_answers_as_before(
    nothing_prepared,
):
    with time_machine.travel(START, tick=False) as traveller:
        account = AccountFactory()
        key = logged_in_session(account)
        expires = Session.objects.get(session_key=key).expire_date

        first = with_account(_LIVE_SESSION.get(key, timezone.now()))
        assert first is not None
        assert first == with_account(orm_session(key, timezone.now()))
        assert first[1]["id"] == account.pk
        sql = hot_sql(_LIVE_SESSION)
        assert '"accounts_session"' in sql and '"accounts_account"' in sql
        assert "$2" in sql and "%s" not in sql

        for _ in range(THRESHOLD):  # 1 + THRESHOLD runs: more than the threshold
            traveller.shift(timedelta(seconds=7))
            assert with_account(_LIVE_SESSION.get(key, timezone.now())) == first
        statement = statement_of(connection, sql)
        assert statement is not None, prepared(connection)
        assert statement.name.startswith("_pg3_")  # prepared by psycopg…
        assert statement.from_sql is False  # … through the protocol
        # Nothing else was prepared: the ORM's queries above (the account, the
        # session saved, the check against the queryset) were not.
        assert prepared(connection) == [statement]

        # Each later run executes that statement, time moving on: same answer.
        for minutes in (1, 5, 29):
            traveller.move_to(expires - timedelta(minutes=30 - minutes))
            assert with_account(_LIVE_SESSION.get(key, timezone.now())) == first
        after = statement_of(connection, sql)
        assert after.name == statement.name
        assert after.executions == statement.executions + 3

        # A miss through the same statement: at the expiry (expire_date > now,
        # strictly), then an unknown key.
        traveller.move_to(expires)
        assert _LIVE_SESSION.get(key, timezone.now()) is None
        assert orm_session(key, timezone.now()) is None
        assert _LIVE_SESSION.get("0" * 32, expires - timedelta(minutes=10)) is None
        # And a hit again, as long as the expiry is ahead.
        assert with_account(_LIVE_SESSION.get(key, expires - timedelta(microseconds=1))) == first
        assert statement_of(connection, sql).executions == statement.executions + 6
        assert prepared(connection) == [statement._replace(executions=statement.executions + 6)]


def test_the_account_and_token_reads_are_prepared_and_answer_as_before(nothing_prepared):
    account = AccountFactory()
    raw, _ttl = api_token_issue(account=account, ip=IP)
    token = ApiToken.objects.get(account=account)
    now = timezone.now()
    token_args = (token_hash(raw), now, Account.State.ACTIVE)
    first_token = with_account(_LIVE_API_TOKEN.get(*token_args))
    first_account = account_fields(_ACTIVE_ACCOUNT.get(account.pk, Account.State.ACTIVE))
    assert first_token == with_account(
        ApiToken.objects.select_related("account__member__cpam").get(pk=token.pk)
    )
    assert first_account == account_fields(
        Account.objects.select_related("member__cpam").get(pk=account.pk)
    )
    runs = 1
    for _ in range(RUNS):
        assert with_account(_LIVE_API_TOKEN.get(*token_args)) == first_token
        assert (
            account_fields(_ACTIVE_ACCOUNT.get(account.pk, Account.State.ACTIVE)) == first_account
        )
        # Misses, through the same statements: another token, another state.
        assert _LIVE_API_TOKEN.get(token_hash(raw + "x"), now, Account.State.ACTIVE) is None
        assert _ACTIVE_ACCOUNT.get(account.pk, Account.State.DELETED) is None
        runs += 2
    statements = {row.statement: row for row in prepared(connection)}
    assert set(statements) == {hot_sql(_LIVE_API_TOKEN), hot_sql(_ACTIVE_ACCOUNT)}
    assert '"accounts_apitoken"' in hot_sql(_LIVE_API_TOKEN)
    # Every run but the first THRESHOLD executed the statement.
    assert statements[hot_sql(_LIVE_API_TOKEN)].executions == runs - THRESHOLD
    assert statements[hot_sql(_ACTIVE_ACCOUNT)].executions == runs - THRESHOLD


# 2. The ORM's queries are never prepared


def test_orm_queries_run_as_often_are_not_prepared(nothing_prepared):
    account = AccountFactory()
    key = logged_in_session(account)
    now = timezone.now()
    for _ in range(RUNS):
        assert Account.objects.filter(pk=account.pk).first().pk == account.pk
        assert Account.objects.get(pk=account.pk).pk == account.pk
        # The session read itself, through the queryset it stands for.
        assert orm_session(key, now).account.pk == account.pk
        with connection.cursor() as cursor:  # Django's cursor, parameters included
            cursor.execute("SELECT id FROM accounts_account WHERE id = %s", [account.pk])
            assert cursor.fetchone() == (account.pk,)
    assert prepared(connection) == []
    # The view shows what the same connection prepares: the hot read, run as often.
    for _ in range(RUNS):
        assert _ACTIVE_ACCOUNT.get(account.pk, Account.State.ACTIVE).pk == account.pk
    [statement] = prepared(connection)
    assert statement.statement == hot_sql(_ACTIVE_ACCOUNT)
    assert statement.executions == RUNS - THRESHOLD


# 3. The threshold, on connections of their own; none without one


@pytest.fixture
def open_alias():
    """A factory of temporary aliases on the test database, with OPTIONS changed.

    As in test_postgres_health_check.py, each is a wrapper of our own built from
    a copy of the settings dict; set in `connections` (not in its settings: a
    connection made in the test, which Django's test case allows) so that
    `using=` and the querysets reach it. Closed and removed at the end.
    """
    aliases = []

    def open_(**options) -> str:
        alias = f"prepared_test_{len(aliases)}"
        settings_dict = {
            **connection.settings_dict,
            "OPTIONS": {**connection.settings_dict["OPTIONS"], **options},
        }
        wrapper = import_string(f"{settings_dict['ENGINE']}.base.DatabaseWrapper")(
            settings_dict, alias
        )
        connections[alias] = wrapper
        aliases.append(alias)
        wrapper.ensure_connection()
        return alias

    yield open_
    for alias in aliases:
        connections[alias].close()
        del connections[alias]


@pytest.mark.django_db(transaction=True)  # the rows are read from other connections
@pytest.mark.parametrize("threshold", [THRESHOLD, None], ids=["threshold-5", "threshold-none"])
def test_hot_reads_are_prepared_at_the_threshold_and_never_without_one(open_alias, threshold):
    account = AccountFactory()
    key = logged_in_session(account)
    raw, _ttl = api_token_issue(account=account, ip=IP)
    alias = open_alias(prepare_threshold=threshold)  # DATABASE_PREPARED_STATEMENTS=0: None
    wrapper = connections[alias]
    assert type(wrapper) is DatabaseWrapper
    assert wrapper.connection.prepare_threshold == threshold  # what psycopg was given
    now = timezone.now()
    reads = {
        _LIVE_SESSION: (key, now),
        _LIVE_API_TOKEN: (token_hash(raw), now, Account.State.ACTIVE),
        _ACTIVE_ACCOUNT: (account.pk, Account.State.ACTIVE),
    }
    expected = {
        _LIVE_SESSION: with_account(orm_session(key, now, alias)),
        _LIVE_API_TOKEN: with_account(
            ApiToken.objects.using(alias).select_related("account__member__cpam").get()
        ),
        _ACTIVE_ACCOUNT: account_fields(
            Account.objects.using(alias).select_related("member__cpam").get(pk=account.pk)
        ),
    }
    shape = {_LIVE_SESSION: with_account, _LIVE_API_TOKEN: with_account}

    def run_each_once():
        for row, args in reads.items():
            assert shape.get(row, account_fields)(row.get(*args, using=alias)) == expected[row]

    assert prepared(wrapper) == []  # a new server session
    for _ in range(THRESHOLD):
        run_each_once()
    assert prepared(wrapper) == []  # each run THRESHOLD times: not yet
    run_each_once()
    sqls = {hot_sql(row, alias) for row in reads}
    assert '"accounts_session"' in hot_sql(_LIVE_SESSION, alias)
    if threshold is None:
        assert prepared(wrapper) == []
    else:
        assert {row.statement: row.executions for row in prepared(wrapper)} == dict.fromkeys(
            sqls, 1
        )
    for _ in range(RUNS - THRESHOLD - 1):
        run_each_once()
    # Misses, through the same statements.
    assert _LIVE_SESSION.get("0" * 32, now, using=alias) is None
    assert _LIVE_API_TOKEN.get(token_hash("x"), now, Account.State.ACTIVE, using=alias) is None
    assert _ACTIVE_ACCOUNT.get(account.pk, Account.State.PENDING, using=alias) is None
    if threshold is None:
        assert prepared(wrapper) == []
    else:
        # RUNS + 1 runs of each (the miss), the first THRESHOLD before it was prepared.
        assert {row.statement: row.executions for row in prepared(wrapper)} == dict.fromkeys(
            sqls, RUNS + 1 - THRESHOLD
        )
    # The test's own connection prepared none of them.
    assert not sqls & {row.statement for row in prepared(connection)}


# 4. The brief of a member's payments


def test_first_page_version_is_prepared_and_sees_new_lines(nothing_prepared):
    account = AccountFactory()
    make_line(account.member, paid_on=date(2026, 3, 10), reference="VIR-1")
    make_line(account.member)  # not paid yet
    make_line(AccountFactory().member, paid_on=date(2026, 3, 10), reference="VIR-2")  # another's

    def orm_brief() -> tuple:
        """(lines, last_update, last_id) as the ORM counts them."""
        return tuple(
            ReimbursementLine.objects.filter(member=account.member)
            .aggregate(lines=Count("id"), last_update=Max("updated_at"), last_id=Max("id"))
            .values()
        )

    first = selectors.first_page_version(account=account)
    assert first is not None
    assert (first.lines, first.last_update, first.last_id) == orm_brief()
    assert first.lines == 2
    assert first.stoppages == 0
    assert "Léa" not in str(first.beneficiaries)

    for _ in range(THRESHOLD):
        assert selectors.first_page_version(account=account) == first
    [statement] = prepared(connection)
    assert '"payments_reimbursementline"' in statement.statement
    assert '"payments_workstoppage"' in statement.statement
    assert "string_agg" in statement.statement
    assert re.search(r"WHERE member_id = \$3$", statement.statement)

    # Run prepared: the same brief…
    assert selectors.first_page_version(account=account) == first
    assert prepared(connection) == [statement._replace(executions=statement.executions + 1)]

    # … until the member's data changes: the statement reads the new line.
    line = make_line(account.member, paid_on=date(2026, 3, 12), reference="VIR-3")
    changed = selectors.first_page_version(account=account)
    assert changed != first
    assert changed.lines == 3
    assert changed.last_id == line.pk
    assert (changed.lines, changed.last_update, changed.last_id) == orm_brief()
    assert prepared(connection) == [statement._replace(executions=statement.executions + 2)]
    account.member.beneficiaries.create(
        first_names="Léa", last_name="Martin", birth_date=date(2015, 3, 8)
    )
    with_child = selectors.first_page_version(account=account)
    assert "Léa" in with_child.beneficiaries
    assert with_child._replace(beneficiaries=changed.beneficiaries) == changed
    assert prepared(connection) == [statement._replace(executions=statement.executions + 3)]


# 5. The settings


def test_the_test_settings_prepare_on_postgresql():
    assert connection.settings_dict["ENGINE"] == "portal.core.postgresql"
    assert settings.DATABASES["default"]["ENGINE"] == "portal.core.postgresql"
    assert settings.DATABASE_PREPARED_STATEMENTS is True
    assert connection.settings_dict["OPTIONS"]["prepare_threshold"] == THRESHOLD
    assert type(connections["default"]) is DatabaseWrapper
    connection.ensure_connection()
    assert connection.connection.prepare_threshold == THRESHOLD  # given to psycopg


@pytest.mark.parametrize(
    ("environ", "threshold"),
    [
        ({}, THRESHOLD),
        ({"DATABASE_PREPARED_STATEMENTS": "1"}, THRESHOLD),
        ({"DATABASE_PREPARED_STATEMENTS": "0"}, None),
    ],
    ids=["default", "on", "off"],
)
def test_database_prepared_statements_sets_the_threshold(environ, threshold):
    """As the settings read the environment (in a process of their own: no database)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("DATABASE_") and key != "DJANGO_SETTINGS_MODULE"
    }
    env |= {
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": "postgres://portal:portal@127.0.0.1:1/portal",
        **environ,
    }
    out = subprocess.run(  # noqa: S603 (our own interpreter)
        [
            sys.executable,
            "-c",
            "from django.conf import settings; d = settings.DATABASES['default']; "
            "print(d['ENGINE'], d['OPTIONS']['prepare_threshold'])",
        ],
        env=env,
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.split() == ["portal.core.postgresql", str(threshold)]


# 6. Through HTTP: the test client shares the test's connection


@pytest.mark.parametrize("path", ["/mon-espace/", "/paiements/"])
def test_pages_of_a_logged_in_member_prepare_the_session_read(client, nothing_prepared, path):
    account = AccountFactory()
    login(client, account)  # reads the session once too

    def get_page():
        cache.clear()  # the page drawn anew each time: its ORM queries run at each request
        response = client.get(path)
        assert response.status_code == 200
        assert response.wsgi_request.user.pk == account.pk  # logged in by the session read
        return response

    for _ in range(THRESHOLD + 1):
        get_page()
    statements = {row.statement: row for row in prepared(connection)}
    session = statements.get(hot_sql(_LIVE_SESSION))
    assert session is not None, list(statements)
    # What else was prepared is another hot read, none of the page's ORM queries.
    others = [sql for sql in statements if sql != hot_sql(_LIVE_SESSION)]
    if path == "/paiements/":
        [brief] = others
        assert '"payments_reimbursementline"' in brief and "string_agg" in brief
    else:
        assert others == []
    # Each request now reads its session through the prepared statement, once.
    get_page()
    get_page()
    assert statement_of(connection, session.statement).executions == session.executions + 2
    assert len(prepared(connection)) == len(statements)
