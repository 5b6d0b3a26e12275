"""ReimbursementLine: two indexes fewer for the imports to maintain.

- `member_id` alone: every read of the table filters on the member first and
  goes through `reimb_member_paydate` or `reimb_member_care`, which start with
  it (as do the PROTECT checks of a member, `member_id IN (…)`).
- `beneficiary_id`: only the PROTECT checks of a deleted beneficiary look
  lines up by it; most lines are the member's own (NULL), so the index is
  now partial (`reimb_beneficiary`, where set), and a line for the member
  costs it nothing.

On PostgreSQL, in place and without blocking the imports or the site: the
partial index is built CONCURRENTLY before the full one is dropped
CONCURRENTLY (hence a non-atomic migration), and the foreign keys are left
alone (Django's AlterField would drop and re-validate them over the whole
table). Elsewhere (SQLite), the usual operations.
"""

from django.db import migrations, models

from portal.payments.migration_operations import InPlaceOnPostgres

TABLE = "payments_reimbursementline"
# The names Django gave in 0001_initial.
MEMBER_INDEX = "payments_reimbursementline_member_id_ad2a367d"
BENEFICIARY_INDEX = "payments_reimbursementline_beneficiary_id_dbcabf37"
PARTIAL_INDEX = "reimb_beneficiary"


class Migration(migrations.Migration):
    # CREATE / DROP INDEX CONCURRENTLY cannot run in a transaction.
    atomic = False

    dependencies = [
        ("members", "0002_cpam_department_cpam_time_zone"),
        ("payments", "0003_reimbursement_line_id_one_index"),
    ]

    operations = [
        InPlaceOnPostgres(
            operations=[
                migrations.AddIndex(
                    model_name="reimbursementline",
                    index=models.Index(
                        condition=models.Q(("beneficiary__isnull", False)),
                        fields=["beneficiary"],
                        name=PARTIAL_INDEX,
                    ),
                ),
                migrations.AlterField(
                    model_name="reimbursementline",
                    name="beneficiary",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=models.deletion.PROTECT,
                        related_name="reimbursement_lines",
                        to="members.beneficiary",
                    ),
                ),
            ],
            forwards=[
                f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {PARTIAL_INDEX} ON {TABLE} "
                "(beneficiary_id) WHERE beneficiary_id IS NOT NULL",
                f"DROP INDEX CONCURRENTLY IF EXISTS {BENEFICIARY_INDEX}",
            ],
            backwards=[
                f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {BENEFICIARY_INDEX} ON {TABLE} "
                "(beneficiary_id)",
                f"DROP INDEX CONCURRENTLY IF EXISTS {PARTIAL_INDEX}",
            ],
            description="Index ReimbursementLine.beneficiary where set only",
        ),
        InPlaceOnPostgres(
            operations=[
                migrations.AlterField(
                    model_name="reimbursementline",
                    name="member",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=models.deletion.PROTECT,
                        related_name="reimbursement_lines",
                        to="members.member",
                    ),
                ),
            ],
            forwards=[f"DROP INDEX CONCURRENTLY IF EXISTS {MEMBER_INDEX}"],
            backwards=[
                f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {MEMBER_INDEX} ON {TABLE} (member_id)"
            ],
            description="Drop the index of ReimbursementLine.member alone (the member's indexes cover it)",
        ),
    ]
