"""The database refuses to change or remove audit entries, and lets the chain head only move forward.

PostgreSQL: row-level triggers raise on UPDATE and DELETE of `audit_auditentry`,
on DELETE of `audit_auditchainhead` and on any head UPDATE that is not one
step forward. TRUNCATE (a table privilege, not a row event) is not covered:
Django's test flush uses it; production revokes it from the application's
role (docs/security.md, "Audit trail").

SQLite: the same, except that DELETE is refused only when the connection has
an on-disk database. Django's test flush empties tables with `DELETE FROM`,
and the test database lives in memory: nothing there outlives the
connection, so nothing is lost by letting it be emptied. The development
database (`var/portal.sqlite3`) is on disk and fully guarded.

A later migration that makes SQLite rebuild `audit_auditentry` (most
AlterField) drops these triggers with the old table: re-run
`install_triggers` after it. `manage.py verify_audit` reports missing or
disabled triggers.
"""

from django.db import migrations, models

POSTGRESQL_INSTALL = [
    """
    CREATE OR REPLACE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'audit trail is append-only: % on % refused', TG_OP, TG_TABLE_NAME
            USING ERRCODE = 'restrict_violation';
    END
    $$
    """,
    """
    CREATE TRIGGER audit_auditentry_append_only
        BEFORE UPDATE OR DELETE ON audit_auditentry
        FOR EACH ROW EXECUTE FUNCTION audit_append_only()
    """,
    """
    CREATE OR REPLACE FUNCTION audit_chain_head_forward_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'DELETE' OR NEW.id <> OLD.id OR NEW.seq <> OLD.seq + 1 THEN
            RAISE EXCEPTION 'audit chain head only moves one step forward: % on % refused',
                TG_OP, TG_TABLE_NAME USING ERRCODE = 'restrict_violation';
        END IF;
        RETURN NEW;
    END
    $$
    """,
    """
    CREATE TRIGGER audit_auditchainhead_forward_only
        BEFORE UPDATE OR DELETE ON audit_auditchainhead
        FOR EACH ROW EXECUTE FUNCTION audit_chain_head_forward_only()
    """,
]
POSTGRESQL_UNINSTALL = [
    "DROP TRIGGER IF EXISTS audit_auditentry_append_only ON audit_auditentry",
    "DROP TRIGGER IF EXISTS audit_auditchainhead_forward_only ON audit_auditchainhead",
    "DROP FUNCTION IF EXISTS audit_append_only()",
    "DROP FUNCTION IF EXISTS audit_chain_head_forward_only()",
]

# True when the connection has an on-disk database (see the module docstring).
_SQLITE_ON_DISK = "EXISTS (SELECT 1 FROM pragma_database_list WHERE file <> '')"
SQLITE_INSTALL = [
    """
    CREATE TRIGGER audit_auditentry_no_update BEFORE UPDATE ON audit_auditentry
    BEGIN
        SELECT RAISE(ABORT, 'audit trail is append-only: UPDATE on audit_auditentry refused');
    END
    """,
    f"""
    CREATE TRIGGER audit_auditentry_no_delete BEFORE DELETE ON audit_auditentry
    WHEN {_SQLITE_ON_DISK}
    BEGIN
        SELECT RAISE(ABORT, 'audit trail is append-only: DELETE on audit_auditentry refused');
    END
    """,
    """
    CREATE TRIGGER audit_auditchainhead_forward_only BEFORE UPDATE ON audit_auditchainhead
    WHEN NEW.id <> OLD.id OR NEW.seq <> OLD.seq + 1
    BEGIN
        SELECT RAISE(ABORT, 'audit chain head only moves one step forward: UPDATE on audit_auditchainhead refused');
    END
    """,
    f"""
    CREATE TRIGGER audit_auditchainhead_no_delete BEFORE DELETE ON audit_auditchainhead
    WHEN {_SQLITE_ON_DISK}
    BEGIN
        SELECT RAISE(ABORT, 'audit chain head only moves one step forward: DELETE on audit_auditchainhead refused');
    END
    """,
]
SQLITE_UNINSTALL = [
    "DROP TRIGGER IF EXISTS audit_auditentry_no_update",
    "DROP TRIGGER IF EXISTS audit_auditentry_no_delete",
    "DROP TRIGGER IF EXISTS audit_auditchainhead_forward_only",
    "DROP TRIGGER IF EXISTS audit_auditchainhead_no_delete",
]
INSTALL = {"postgresql": POSTGRESQL_INSTALL, "sqlite": SQLITE_INSTALL}
UNINSTALL = {"postgresql": POSTGRESQL_UNINSTALL, "sqlite": SQLITE_UNINSTALL}
# The triggers each engine must have, per table (checked by verify_audit).
TRIGGERS = {
    "postgresql": {
        "audit_auditentry": ["audit_auditentry_append_only"],
        "audit_auditchainhead": ["audit_auditchainhead_forward_only"],
    },
    "sqlite": {
        "audit_auditentry": ["audit_auditentry_no_update", "audit_auditentry_no_delete"],
        "audit_auditchainhead": [
            "audit_auditchainhead_forward_only",
            "audit_auditchainhead_no_delete",
        ],
    },
}


def _run(statements, schema_editor):
    for statement in statements.get(schema_editor.connection.vendor, []):
        schema_editor.execute(statement, params=None)


def install_triggers(apps, schema_editor):
    _run(INSTALL, schema_editor)


def uninstall_triggers(apps, schema_editor):
    _run(UNINSTALL, schema_editor)


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0003_chain_backfill"),
    ]

    operations = [
        migrations.AlterField(
            model_name="auditentry",
            name="seq",
            field=models.BigIntegerField(editable=False, unique=True),
        ),
        migrations.RunPython(install_triggers, uninstall_triggers, elidable=False),
    ]
