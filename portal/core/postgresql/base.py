"""Django's PostgreSQL backend: a health check that costs no round trip, and
prepared statements for the reads of every request.

Prepared statements
-------------------

Django's cursors bind parameters on the client (psycopg's `ClientCursor`):
PostgreSQL parses and plans every query anew. For the few reads that every
request makes (portal/core/rows.py: the session with its account, an API
token, the brief of a member's payments), planning a join of four tables
costs more than running it: some 0.3 ms a query on the bench machine.
`prepared_cursor()` gives a cursor that binds on the server instead, so that
psycopg prepares a statement once it has run `prepare_threshold` times on the
connection (`DATABASE_PREPARED_STATEMENTS`, config/settings/base.py) and
PostgreSQL keeps its plan. Everything else keeps Django's cursors and is
never prepared.

Prepared statements belong to their server connection: behind PgBouncer in
transaction mode they need PgBouncer 1.21 or later with
`max_prepared_statements` set, else `DATABASE_PREPARED_STATEMENTS=0`
(docs/configuration.md).

Health check
------------

A web process keeps its connection between requests (`CONN_MAX_AGE`), and
Django checks it before its first use in each request (`CONN_HEALTH_CHECKS`)
with a `SELECT 1`: one round trip to the database at every request, the
price of a restarted database costing a reconnection rather than an error.

This backend checks the same thing without asking the server. Between two
requests the connection is idle: the portal never `LISTEN`s, so the server
has nothing to send on it. When the server ends the connection (a restart, an
administrator's `pg_terminate_backend`, an idle timeout), it sends an error
message and closes the socket, which then reads as ready. So before the first
use in a request: a connection that is closed, broken, not idle, or whose
socket has anything to read is closed, and Django opens a new one, as after
a failed `SELECT 1`. A harmless message (a server parameter changed) costs a
reconnection, nothing more.

What neither check sees is a peer that vanished without a word (a network
cut): the `SELECT 1` would have hung as the request's first query now does,
until the TCP timeouts.
"""

import select

from django.db.backends.postgresql import base
from django.utils.asyncio import async_unsafe
from psycopg.pq import ConnStatus, Format, TransactionStatus


class DatabaseWrapper(base.DatabaseWrapper):
    @async_unsafe
    def prepared_cursor(self):
        """A cursor binding its parameters on the server: psycopg prepares what it
        runs often (see the module's docstring). Otherwise as `cursor()`."""
        self.close_if_health_check_failed()
        self.ensure_connection()
        with self.wrap_database_errors:
            cursor = base.ServerBindingCursor(self.connection)
            # As Django's `create_cursor`: the connection's time zone for timestamptz.
            loader = self.connection.adapters.get_loader(base.TIMESTAMPTZ_OID, Format.TEXT)
            if self.timezone != loader.timezone:
                base.register_tzloader(self.timezone, cursor)
            return self._prepare_cursor(cursor)

    def close_if_health_check_failed(self):
        if (
            self.pool
            or self.connection is None
            or not self.health_check_enabled
            or self.health_check_done
        ):
            return super().close_if_health_check_failed()
        if not idle_and_quiet(self.connection):
            self.close()
        self.health_check_done = True


def idle_and_quiet(connection) -> bool:
    """Whether a psycopg connection is open, idle, and has nothing to read."""
    pgconn = connection.pgconn
    if (
        connection.closed
        or connection.broken
        or pgconn.status != ConnStatus.OK
        or pgconn.transaction_status != TransactionStatus.IDLE
    ):
        return False
    poller = select.poll()
    poller.register(pgconn.socket, select.POLLIN | select.POLLPRI)
    return not poller.poll(0)
