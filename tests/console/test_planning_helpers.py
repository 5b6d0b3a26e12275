"""Helpers of the planning tests (no test here): booking through the real service, logins.

Times: `NOW` (from the agenda tests) is Monday 2 November 2026, 10:00 in Paris;
the first bookable day is Tuesday 3 November. Advisors made by `make_advisor`
take appointments 09:00–12:00 every weekday.
"""

from datetime import datetime
from decimal import Decimal

from django.test import Client

from portal.appointments import services
from portal.appointments.models import Appointment, Motive
from portal.appointments.slots import free_slots
from portal.members.nir import mask
from portal.payments.models import AllowancePayment, WorkStoppage
from tests.appointments.conftest import NOW, PARIS, make_advisor, make_site, paris
from tests.console.conftest import make_staff, staff_login

__all__ = [
    "NOW",
    "PARIS",
    "book",
    "logged_in",
    "make_advisor",
    "make_site",
    "make_staff",
    "mask",
    "paris",
    "slot_starts",
    "stoppage_with_payments",
]


def logged_in(staff) -> Client:
    """A client logged in as `staff` through the real form (log in after moving the clock:
    the console session expires after its idle timeout)."""
    client = Client()
    staff_login(client, staff)
    return client


def slot_starts(advisor, day, motive_code="arret-travail-ij", channel="phone") -> list[datetime]:
    """The free start times of `advisor` on `day`, in Paris time."""
    motive = Motive.objects.get(code=motive_code)
    return [
        slot.start.astimezone(PARIS)
        for slot in free_slots(
            cpam=advisor.staff.cpam,
            motive=motive,
            channel=channel,
            start=day,
            end=day,
            advisor_ids=[advisor.pk],
            per_advisor=True,
        )
    ]


def book(
    account,
    advisor,
    start: datetime,
    motive_code: str = "arret-travail-ij",
    channel: str = "phone",
    message: str = "",
) -> Appointment:
    """Book the slot of `advisor` at `start` as the member would, through the service."""
    motive = Motive.objects.get(code=motive_code)
    tz = start.tzinfo
    day = start.astimezone(tz).date()
    for slot in free_slots(
        cpam=account.member.cpam,
        motive=motive,
        channel=channel,
        start=day,
        end=day,
        advisor_ids=[advisor.pk],
        per_advisor=True,
    ):
        if slot.start == start:
            return services.appointment_book(
                account=account,
                slot_id=slot.id,
                motive_code=motive_code,
                channel=channel,
                message=message,
            )
    raise AssertionError(f"no free slot at {start}")


def stoppage_with_payments(member, *, stoppage_id, kind, start, end=None, nets=()):
    """A work stoppage of `member` and one paid allowance payment per amount in `nets`."""
    stoppage = WorkStoppage.objects.create(
        stoppage_id=stoppage_id,
        member=member,
        kind=kind,
        start=start,
        end=end,
        waiting_days=WorkStoppage.WAITING_DAYS[kind],
    )
    for index, net in enumerate(nets):
        net = Decimal(net)
        AllowancePayment.objects.create(
            payment_id=f"{stoppage_id}-{index}",
            stoppage=stoppage,
            member=member,
            period_start=start,
            period_end=start,
            days=14,
            daily_gross=Decimal("40.00"),
            gross=Decimal("560.00"),
            csg=Decimal("10.00"),
            crds=Decimal("2.00"),
            net=net,
            payment_date=start,
            status=AllowancePayment.Status.PAID,
        )
    return stoppage
