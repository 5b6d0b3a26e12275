"""The PostgreSQL bulk path (COPY into a staging table, one upsert per batch) gives
exactly what the ORM path gives. The other tests of this package run on it too
under `make test-postgres`."""

import pytest
from django.db import connection

from portal.members.models import Member
from portal.payments.models import (
    AllowancePayment,
    NewPaymentNotice,
    ReimbursementLine,
    WorkStoppage,
)
from tests.factories import AccountFactory

from .helpers import reimbursement, reimbursements_feed, run

pytestmark = [pytest.mark.postgres]


@pytest.fixture(autouse=True)
def _postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("the bulk path needs PostgreSQL's COPY (run by make test-postgres)")


def stored():
    """The imported rows, without their ids and times, with the stoppage by its feed id."""
    lines = list(
        ReimbursementLine.objects.order_by("line_id").values(
            *(
                f.attname
                for f in ReimbursementLine._meta.concrete_fields
                if f.name not in ("id", "imported_at", "updated_at")
            )
        )
    )
    payments = list(
        AllowancePayment.objects.order_by("payment_id").values(
            "stoppage__stoppage_id",
            *(
                f.attname
                for f in AllowancePayment._meta.concrete_fields
                if f.name not in ("id", "stoppage", "imported_at", "updated_at")
            ),
        )
    )
    stoppages = list(
        WorkStoppage.objects.order_by("stoppage_id").values(
            "stoppage_id", "member_id", "kind", "start", "end", "waiting_days"
        )
    )
    return lines, payments, stoppages


def import_all(tmp_path, *args):
    lines = run(
        "import_reimbursements", tmp_path / "reimbursements.csv", "--batch-size", "70", *args
    )
    allowances = run("import_allowances", tmp_path / "allowances.csv", "--batch-size", "9", *args)
    return lines, allowances


def clear():
    AllowancePayment.objects.all().delete()
    WorkStoppage.objects.all().delete()
    ReimbursementLine.objects.all().delete()


@pytest.mark.django_db(transaction=True)
def test_bulk_and_orm_paths_write_and_count_the_same(tmp_path, today, outbox):
    from django.core.management import call_command

    call_command(
        "generate_payments",
        "--members", "25",
        "--lines-per-member", "15",
        "--stoppage-share", "0.6",
        "--out", str(tmp_path),
        verbosity=0,
    )  # fmt: skip
    assert run("import_members", tmp_path / "members.csv", "--create-cpams").exit_code == 0
    for member in Member.objects.all()[:10]:
        AccountFactory(member=member, email=f"m{member.pk}@example.org")

    bulk_lines, bulk_allowances = import_all(tmp_path)
    bulk_rows, bulk_emails = stored(), len(outbox(template="new_payment"))
    clear()
    orm_lines, orm_allowances = import_all(tmp_path, "--no-bulk")

    assert (bulk_lines.exit_code, bulk_lines.stderr) == (0, "")
    assert (bulk_allowances.exit_code, bulk_allowances.stderr) == (0, "")
    assert bulk_lines.counts == orm_lines.counts
    assert bulk_allowances.counts == orm_allowances.counts
    assert bulk_lines.counts["created"] == 375
    assert bulk_allowances.counts["stoppages_created"] > 0
    assert stored() == bulk_rows
    assert bulk_emails * 2 == len(outbox(template="new_payment")) > 0
    assert not NewPaymentNotice.objects.exists()

    again_lines, again_allowances = import_all(tmp_path)

    assert again_lines.counts["unchanged"] == 375
    assert again_allowances.counts["unchanged"] == bulk_allowances.counts["created"]
    assert again_allowances.counts["stoppages_updated"] == 0
    assert stored() == bulk_rows


@pytest.mark.django_db(transaction=True)
def test_bulk_path_updates_changed_lines_and_notices_new_payments(
    tmp_path, paul, outbox, time_machine
):
    def line(line_id, **values):
        return reimbursement(line_id=line_id, payment_reference=f"V{line_id}", **values)

    pending = {"status": "in_progress", "payment_date": "", "payment_reference": ""}
    first = run(
        "import_reimbursements",
        reimbursements_feed(tmp_path, [line("L1"), reimbursement(line_id="L2", **pending)]),
    )
    before = ReimbursementLine.objects.get(line_id="L1")
    time_machine.move_to("2026-03-16 13:00:00+01:00", tick=False)

    second = run(
        "import_reimbursements",
        reimbursements_feed(
            tmp_path,
            [line("L1", transmitted_to_complementary="no"), line("L2"), line("L3")],
        ),
    )

    assert first.counts == {"created": 2, "updated": 0, "unchanged": 0, "rejected": 0, "emails": 1}
    assert second.counts == {"created": 1, "updated": 2, "unchanged": 0, "rejected": 0, "emails": 1}
    after = ReimbursementLine.objects.get(line_id="L1")
    assert after.transmitted_to_complementary is False
    assert after.imported_at == before.imported_at
    assert after.updated_at > before.updated_at
    assert "2 nouveaux paiements" in outbox(template="new_payment")[-1].body_text
    assert "38,00" in outbox(template="new_payment")[-1].body_text
