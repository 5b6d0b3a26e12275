"""Reminders: 24 hours before, or at once when booked later; never for a cancelled or moved one."""

from datetime import date, timedelta

import pytest
import time_machine

from portal.appointments import services, slots
from portal.appointments.models import Appointment
from tests.appointments.conftest import paris
from tests.factories import AccountFactory, MemberFactory

pytestmark = pytest.mark.django_db


def free(cpam, motive, day):
    return slots.free_slots(cpam=cpam, motive=motive, channel="phone", start=day, end=day)


def book(account, slot, motive):
    return services.appointment_book(
        account=account, slot_id=slot.id, motive_code=motive.code, channel="phone"
    )


def reminders(outbox):
    return outbox(template="appointment_reminder")


def test_reminder_by_email_and_sms_24_hours_before_and_only_once(
    cpam, motive, advisor, member_account, run_tasks, outbox
):
    with time_machine.travel(paris(2026, 11, 2, 10), tick=False):
        slot = free(cpam, motive, date(2026, 11, 5))[0]  # Thursday 09:00
        book(member_account, slot, motive)
        run_tasks()
        assert reminders(outbox) == []
    with time_machine.travel(slot.start - timedelta(hours=24, minutes=1), tick=False):
        run_tasks()
        assert reminders(outbox) == []
    with time_machine.travel(slot.start - timedelta(hours=24), tick=False):
        run_tasks()
        run_tasks()
    email, sms = sorted(reminders(outbox), key=lambda m: m.channel)
    assert (email.channel, email.recipient) == ("email", member_account.email)
    assert "jeudi 5 novembre 2026 à 09:00" in email.body_text
    assert sms.channel == "sms" and "05/11 à 09:00" in sms.body_text
    assert sms.recipient == "+33612345678"


def test_booked_less_than_24_hours_ahead_the_reminder_goes_at_once(
    cpam, motive, advisor, member_account, run_tasks, outbox
):
    with time_machine.travel(paris(2026, 11, 2, 10), tick=False):
        book(member_account, free(cpam, motive, date(2026, 11, 3))[0], motive)
        run_tasks()
    assert len(reminders(outbox)) == 2


def test_no_reminder_for_an_appointment_cancelled_after_queueing(
    cpam, motive, advisor, member_account, run_tasks, outbox
):
    with time_machine.travel(paris(2026, 11, 2, 10), tick=False):
        appointment = book(member_account, free(cpam, motive, date(2026, 11, 3))[0], motive)
        services.appointment_cancel(account=member_account, appointment=appointment)
        run_tasks()
    assert reminders(outbox) == []


def test_a_moved_appointment_is_reminded_of_its_new_time_only(
    cpam, motive, advisor, member_account, run_tasks, outbox
):
    with time_machine.travel(paris(2026, 11, 2, 10), tick=False):
        old = free(cpam, motive, date(2026, 11, 4))[0]
        new = free(cpam, motive, date(2026, 11, 6))[0]
        appointment = book(member_account, old, motive)
        services.appointment_reschedule(
            account=member_account, appointment=appointment, slot_id=new.id
        )
    with time_machine.travel(old.start - timedelta(hours=23), tick=False):
        run_tasks()
        assert reminders(outbox) == []
    with time_machine.travel(new.start - timedelta(hours=23), tick=False):
        run_tasks()
    [email] = [m for m in reminders(outbox) if m.channel == "email"]
    assert "vendredi 6 novembre 2026" in email.body_text


def test_no_sms_reminder_without_a_mobile_and_no_reminder_after_the_account_is_gone(
    cpam, motive, advisor, run_tasks, outbox
):
    no_mobile = AccountFactory(member=MemberFactory(cpam=cpam), mobile_phone="")
    gone = AccountFactory(member=MemberFactory(cpam=cpam))
    with time_machine.travel(paris(2026, 11, 2, 10), tick=False):
        day = free(cpam, motive, date(2026, 11, 3))
        on_site = slots.free_slots(
            cpam=cpam,
            motive=motive,
            channel="on_site",
            start=date(2026, 11, 3),
            end=date(2026, 11, 3),
        )
        services.appointment_book(
            account=no_mobile, slot_id=on_site[0].id, motive_code=motive.code, channel="on_site"
        )
        book(gone, day[1], motive)
        gone.state = gone.State.DELETED
        gone.nir = None
        gone.save()
        run_tasks()
    sent = reminders(outbox)
    assert [(m.channel, m.recipient) for m in sent] == [("email", no_mobile.email)]
    assert Appointment.objects.filter(reminded_sequence=0).count() == 1
