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

from portal.payments.migration_operations import InPlaceOnPostgres

TABLE = "payments_reimbursementline"
CONSTRAINT = "reimb_line_id_unique"
# The names PostgreSQL and Django gave in 0001_initial (inline UNIQUE, and
# Django's hashed name of the pattern index).
OLD_CONSTRAINT = "payments_reimbursementline_line_id_key"
OLD_PATTERN_INDEX = "payments_reimbursementline_line_id_e82235ed_like"


class Migration(migrations.Migration):
    dependencies = [
        ("payments", "0002_new_payment_notices"),
    ]

    operations = [
        InPlaceOnPostgres(
            # AlterField(unique=False) then AddConstraint.
            operations=[
                migrations.AlterField(
                    model_name="reimbursementline",
                    name="line_id",
                    field=models.CharField(max_length=64),
                ),
                migrations.AddConstraint(
                    model_name="reimbursementline",
                    constraint=models.UniqueConstraint(fields=("line_id",), name=CONSTRAINT),
                ),
            ],
            forwards=[
                f"ALTER TABLE {TABLE} RENAME CONSTRAINT {OLD_CONSTRAINT} TO {CONSTRAINT}",
                f"DROP INDEX IF EXISTS {OLD_PATTERN_INDEX}",
            ],
            backwards=[
                f"ALTER TABLE {TABLE} RENAME CONSTRAINT {CONSTRAINT} TO {OLD_CONSTRAINT}",
                f"CREATE INDEX {OLD_PATTERN_INDEX} ON {TABLE} (line_id varchar_pattern_ops)",
            ],
            description=(
                "Move the uniqueness of ReimbursementLine.line_id to a constraint (one index)"
            ),
        )
    ]
