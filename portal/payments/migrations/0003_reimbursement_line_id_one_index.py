"""ReimbursementLine.line_id: one index instead of two.

`unique=True` on a CharField gives, on PostgreSQL, the unique constraint's
index plus a `varchar_pattern_ops` index for `LIKE 'prefix%'` queries, which
nothing runs on line_id; every import paid for maintaining it on a table of
millions of rows. The uniqueness moves to a named UniqueConstraint (what the
imports' `ON CONFLICT (line_id)` needs). On PostgreSQL this is done in place:
the existing constraint is renamed and the pattern index dropped, so the
unique index is kept rather than rebuilt under lock. Elsewhere (SQLite), the
usual AlterField and AddConstraint.
"""

from django.db import migrations, models
from django.db.migrations.operations.base import Operation

TABLE = "payments_reimbursementline"
CONSTRAINT = "reimb_line_id_unique"
# The names PostgreSQL and Django gave in 0001_initial (inline UNIQUE, and
# Django's hashed name of the pattern index).
OLD_CONSTRAINT = "payments_reimbursementline_line_id_key"
OLD_PATTERN_INDEX = "payments_reimbursementline_line_id_e82235ed_like"


class MoveLineIdUniqueness(Operation):
    """AlterField(unique=False) then AddConstraint, in place on PostgreSQL."""

    reversible = True
    operations = [
        migrations.AlterField(
            model_name="reimbursementline",
            name="line_id",
            field=models.CharField(max_length=64),
        ),
        migrations.AddConstraint(
            model_name="reimbursementline",
            constraint=models.UniqueConstraint(fields=("line_id",), name=CONSTRAINT),
        ),
    ]

    def state_forwards(self, app_label, state):
        for operation in self.operations:
            operation.state_forwards(app_label, state)

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(
                f"ALTER TABLE {TABLE} RENAME CONSTRAINT {OLD_CONSTRAINT} TO {CONSTRAINT}"
            )
            schema_editor.execute(f"DROP INDEX IF EXISTS {OLD_PATTERN_INDEX}")
            return
        state = from_state
        for operation in self.operations:
            after = state.clone()
            operation.state_forwards(app_label, after)
            operation.database_forwards(app_label, schema_editor, state, after)
            state = after

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(
                f"ALTER TABLE {TABLE} RENAME CONSTRAINT {CONSTRAINT} TO {OLD_CONSTRAINT}"
            )
            schema_editor.execute(
                f"CREATE INDEX {OLD_PATTERN_INDEX} ON {TABLE} (line_id varchar_pattern_ops)"
            )
            return
        # Undo in reverse order, each from the state it led to.
        states = [to_state]
        for operation in self.operations[:-1]:
            after = states[-1].clone()
            operation.state_forwards(app_label, after)
            states.append(after)
        for operation, before in zip(reversed(self.operations), reversed(states)):
            operation.database_backwards(app_label, schema_editor, from_state, before)
            from_state = before

    def describe(self):
        return "Move the uniqueness of ReimbursementLine.line_id to a constraint (one index)"

    @property
    def migration_name_fragment(self):
        return "reimbursement_line_id_one_index"


class Migration(migrations.Migration):
    dependencies = [
        ("payments", "0002_new_payment_notices"),
    ]

    operations = [MoveLineIdUniqueness()]
