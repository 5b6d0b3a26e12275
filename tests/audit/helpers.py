"""Tampering with the audit tables the way someone with database access would.

The append-only triggers refuse any UPDATE or DELETE, so a test that proves a
tampered row is detected first lifts them, inside its own transaction:
`ALTER TABLE … DISABLE TRIGGER USER` on PostgreSQL (the table owner may;
production's application role should not be the owner), `DROP TRIGGER` on
SQLite, both put back on leaving (and rolled back with the test anyway).
"""

import importlib
from contextlib import contextmanager

from django.db import connection

triggers = importlib.import_module("portal.audit.migrations.0004_append_only")
TABLES = ("audit_auditentry", "audit_auditchainhead")


def sql(statement: str, params=None) -> int:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.rowcount


@contextmanager
def tampering():
    if connection.vendor == "postgresql":
        # Deferred foreign-key checks pending in the transaction would stop ALTER TABLE.
        sql("SET CONSTRAINTS ALL IMMEDIATE")
        for table in TABLES:
            sql(f"ALTER TABLE {table} DISABLE TRIGGER USER")
    else:
        for statement in triggers.SQLITE_UNINSTALL:
            sql(statement)
    try:
        yield
    finally:
        if connection.vendor == "postgresql":
            sql("SET CONSTRAINTS ALL IMMEDIATE")
            for table in TABLES:
                sql(f"ALTER TABLE {table} ENABLE TRIGGER USER")
        else:
            for statement in triggers.SQLITE_INSTALL:
                sql(statement)
