"""The health check without a round trip (portal/core/postgresql/base.py), on a real PostgreSQL.

Each test opens its own connections to the test database (the test's own
connection, inside its transaction, is left alone) with `CONN_MAX_AGE` and
`CONN_HEALTH_CHECKS` on, as a web worker has them, and goes through a request
cycle as Django does: `close_if_unusable_or_obsolete()` at the start, then a
query. Only the backends of those connections are ever terminated.
"""

import select
import time

import pytest
from django.db import InterfaceError, OperationalError, connection, connections
from django.utils.module_loading import import_string
from psycopg import errors

from portal.core.postgresql.base import DatabaseWrapper, idle_and_quiet

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

LAST_QUERY = "SELECT pg_backend_pid()"


@pytest.fixture(autouse=True)
def _postgresql_only():
    if connection.vendor != "postgresql":
        pytest.skip(
            "needs a PostgreSQL server to terminate backends on "
            "(run by .ci/run and make test-postgres)"
        )


@pytest.fixture
def open_connection():
    """A factory of our own wrappers on the test database, closed at the end."""
    opened = []

    def open_(*, health_checks=True):
        settings_dict = {
            **connection.settings_dict,
            "CONN_MAX_AGE": 600,
            "CONN_HEALTH_CHECKS": health_checks,
        }
        wrapper = import_string(f"{settings_dict['ENGINE']}.base.DatabaseWrapper")(
            settings_dict, "default"
        )
        opened.append(wrapper)
        wrapper.ensure_connection()
        return wrapper

    yield open_
    for wrapper in opened:
        wrapper.close()


@pytest.fixture
def checked(open_connection):
    """The connection whose health is checked."""
    return open_connection()


@pytest.fixture
def other(open_connection):
    """Another connection, to watch and terminate the checked one from outside."""
    return open_connection(health_checks=False)


def backend_pid(wrapper) -> int:
    with wrapper.cursor() as cursor:
        cursor.execute(LAST_QUERY)
        return cursor.fetchone()[0]


def activity(other, pid) -> tuple[str, str] | None:
    """(state, last query) of a backend in pg_stat_activity, None once it is gone."""
    with other.cursor() as cursor:
        cursor.execute("SELECT state, query FROM pg_stat_activity WHERE pid = %s", [pid])
        return cursor.fetchone()


def terminate(other, pid) -> None:
    """End the backend `pid` from `other`, and wait until it is gone."""
    with other.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
        assert cursor.fetchone()[0] is True
    deadline = time.monotonic() + 10
    while activity(other, pid) is not None:
        assert time.monotonic() < deadline, f"backend {pid} still there after 10 s"
        time.sleep(0.02)


def wait_readable(wrapper) -> None:
    """Until what the server sent on the connection has arrived (at most 10 s)."""
    readable, _, _ = select.select([wrapper.connection.pgconn.socket], [], [], 10)
    assert readable


def start_request(wrapper) -> None:
    """What Django does for every connection when a request starts (request_started)."""
    wrapper.close_if_unusable_or_obsolete()


def test_the_engine_is_the_portals_on_postgresql():
    assert connection.settings_dict["ENGINE"] == "portal.core.postgresql"
    assert type(connections["default"]) is DatabaseWrapper
    assert connection.vendor == "postgresql"


def test_a_connection_ended_by_the_server_is_replaced_at_the_next_request(checked, other):
    assert checked.health_check_enabled
    assert checked.close_at is not None  # kept between requests
    pid = backend_pid(checked)
    terminate(other, pid)
    start_request(checked)
    assert checked.health_check_done is False
    with checked.cursor() as cursor:  # no error: a new connection
        cursor.execute(LAST_QUERY)
        new_pid = cursor.fetchone()[0]
    assert new_pid != pid
    assert activity(other, new_pid) is not None


def test_without_the_check_the_same_request_fails(open_connection, other):
    """The situation above is a real failure: with health checks off, the query raises."""
    unchecked = open_connection(health_checks=False)
    pid = backend_pid(unchecked)
    terminate(other, pid)
    start_request(unchecked)
    with pytest.raises((OperationalError, InterfaceError)), unchecked.cursor() as cursor:
        cursor.execute(LAST_QUERY)


def test_a_healthy_idle_connection_is_kept_without_a_word_to_the_server(
    checked, other, monkeypatch
):
    pid = backend_pid(checked)
    raw = checked.connection
    assert activity(other, pid) == ("idle", LAST_QUERY)

    def no_round_trip():
        raise AssertionError("is_usable() called: a SELECT 1 to the server")

    monkeypatch.setattr(checked, "is_usable", no_round_trip)
    start_request(checked)
    checked.close_if_health_check_failed()  # what the request's first query does first
    assert checked.health_check_done is True
    assert checked.connection is raw  # kept, not reopened
    assert not raw.closed
    # Nothing reached the server: its last query is still ours.
    assert activity(other, pid) == ("idle", LAST_QUERY)
    # The request's query goes on the same backend.
    assert backend_pid(checked) == pid
    assert checked.connection is raw
    # Checked once per request: a second request checks again, still silently.
    start_request(checked)
    assert checked.health_check_done is False
    assert backend_pid(checked) == pid
    assert checked.connection is raw


def test_a_round_trip_would_have_shown_in_pg_stat_activity(checked, other):
    """The observation above can fail: Django's own check is seen by the server."""
    pid = backend_pid(checked)
    assert activity(other, pid) == ("idle", LAST_QUERY)
    assert checked.is_usable()  # Django's PostgreSQL check: SELECT 1
    assert activity(other, pid) == ("idle", "SELECT 1")


def test_a_connection_with_something_to_read_is_replaced(checked, other):
    """Anything the server sent while idle (here a notification) costs a reconnection."""
    pid = backend_pid(checked)
    with checked.cursor() as cursor:
        cursor.execute("LISTEN portal_health_check_test")
    with other.cursor() as cursor:
        cursor.execute("NOTIFY portal_health_check_test")
    wait_readable(checked)
    assert idle_and_quiet(checked.connection) is False
    start_request(checked)
    assert backend_pid(checked) != pid


def test_idle_and_quiet_on_an_open_idle_connection(checked):
    assert idle_and_quiet(checked.connection) is True


def test_idle_and_quiet_is_false_inside_a_transaction(checked):
    raw = checked.connection
    raw.autocommit = False
    raw.execute("SELECT 1")  # opens a transaction
    assert idle_and_quiet(raw) is False
    raw.rollback()
    assert idle_and_quiet(raw) is True
    raw.autocommit = True


def test_idle_and_quiet_is_false_after_a_failed_statement_in_a_transaction(checked):
    raw = checked.connection
    raw.autocommit = False
    with pytest.raises(errors.DivisionByZero):
        raw.execute("SELECT 1 / 0")
    assert idle_and_quiet(raw) is False  # INERROR
    raw.rollback()
    raw.autocommit = True


def test_idle_and_quiet_is_false_for_a_closed_connection(checked):
    raw = checked.connection
    assert idle_and_quiet(raw) is True
    raw.close()
    assert idle_and_quiet(raw) is False


def test_idle_and_quiet_is_false_once_the_server_ended_the_connection(checked, other):
    pid = backend_pid(checked)
    raw = checked.connection
    assert idle_and_quiet(raw) is True
    terminate(other, pid)
    wait_readable(checked)
    assert not raw.closed  # psycopg does not know yet: only the socket tells
    assert idle_and_quiet(raw) is False


def test_a_connection_left_in_a_transaction_is_replaced(checked):
    pid = backend_pid(checked)
    checked.connection.autocommit = False
    checked.connection.execute("SELECT 1")
    # Behind Django's back: its own autocommit check at request start misses it.
    start_request(checked)
    assert checked.connection is not None
    checked.close_if_health_check_failed()
    assert checked.connection is None  # closed; the next query opens a new one
    assert backend_pid(checked) != pid
