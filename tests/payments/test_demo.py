"""The demo data: a year of payments for the demo members, loaded again safely."""

import io

from django.core.management import call_command

from portal.members.models import Member
from portal.notifications.models import OutboundMessage
from portal.payments.models import AllowancePayment, ReimbursementLine, WorkStoppage


def load_demo():
    call_command("load_demo", stdout=io.StringIO())


def snapshot():
    return (
        list(ReimbursementLine.objects.order_by("line_id").values()),
        list(AllowancePayment.objects.order_by("payment_id").values()),
        list(WorkStoppage.objects.order_by("stoppage_id").values()),
    )


def test_demo_members_have_a_year_of_payments_and_an_open_sick_leave(db, today):
    load_demo()

    paul = Member.objects.get(nir__startswith="1850578006084")
    lea = paul.beneficiaries.get(first_names="Léa")
    assert len(lea.nir) == 15
    lines = ReimbursementLine.objects.filter(member=paul)
    assert lines.count() == 40
    assert lines.filter(beneficiary=lea).exists()
    assert lines.filter(beneficiary=None).exists()
    assert {line.participation_forfaitaire for line in lines.filter(beneficiary=lea)} == {0}
    assert lines.filter(status="paid").exists()
    open_leave = WorkStoppage.objects.get(member=paul, end=None)
    assert open_leave.kind == "maladie"
    assert open_leave.waiting_days == 3
    assert open_leave.payments.filter(status="paid").count() >= 2
    for member in Member.objects.all():
        assert member.reimbursement_lines.exists()
        assert member.work_stoppages.exists()
    assert not OutboundMessage.objects.filter(template="new_payment").exists()


def test_loading_the_demo_again_changes_nothing(db, today):
    load_demo()
    before = snapshot()

    load_demo()

    assert snapshot() == before
