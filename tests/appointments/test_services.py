"""Booking, cancelling and moving: the rules, atomicity, audit, emails and the .ics."""

from datetime import date, timedelta

import pytest
import time_machine
from icalendar import Calendar

from portal.appointments import services, slots
from portal.appointments.models import Absence, AdvisorTimeLock, Appointment, Motive
from portal.audit.models import AuditEntry
from tests.appointments.conftest import make_advisor, paris, utc
from tests.factories import AccountFactory, MemberFactory

pytestmark = pytest.mark.django_db


def free(cpam, motive, day=date(2026, 11, 3), channel="phone"):
    return slots.free_slots(cpam=cpam, motive=motive, channel=channel, start=day, end=day)


def book(account, slot, motive, channel="phone", **kwargs):
    return services.appointment_book(
        account=account, slot_id=slot.id, motive_code=motive.code, channel=channel, **kwargs
    )


def parse_ics(message) -> Calendar:
    assert message.attachment_name == "rendez-vous.ics"
    return Calendar.from_ical(message.attachment_body)


def test_booking_takes_the_slot_audits_and_emails_an_invitation(
    now, cpam, motive, advisor, member_account, outbox
):
    slot = free(cpam, motive)[0]
    appointment = book(member_account, slot, motive, message="  Mon arrêt est prolongé.  ")
    assert appointment.status == Appointment.Status.BOOKED
    assert (appointment.starts_at, appointment.ends_at) == (slot.start, slot.end)
    assert appointment.advisor == advisor and appointment.member == member_account.member
    assert appointment.message == "Mon arrêt est prolongé."
    # One lock per 5-minute cell of the 20 minutes.
    assert AdvisorTimeLock.objects.filter(appointment=appointment).count() == 4
    assert slot.start not in {s.start for s in free(cpam, motive)}
    entry = AuditEntry.objects.get(action="appointment.booked")
    assert entry.member == member_account.member
    assert entry.data["appointment"] == str(appointment.public_id)
    assert "Mon arrêt" not in str(entry.data)  # the member's message stays out of the trail
    [email] = outbox(template="appointment_booked")
    assert email.recipient == member_account.email
    assert "mardi 3 novembre 2026 à 09:00" in email.body_text
    assert "06 12 34 56 78" in email.body_text
    event = parse_ics(email).walk("VEVENT")[0]
    assert parse_ics(email)["METHOD"] == "REQUEST"
    assert event.decoded("DTSTART") == slot.start
    assert event.decoded("DTEND") == slot.end
    assert event["SEQUENCE"] == 0
    assert str(appointment.public_id) in str(event["UID"])
    assert motive.label in str(event["SUMMARY"])


def test_an_on_site_booking_gives_the_site(now, cpam, motive, advisor, member_account, outbox):
    slot = free(cpam, motive, channel="on_site")[0]
    appointment = book(member_account, slot, motive, channel="on_site")
    assert appointment.site == advisor.site
    [email] = outbox(template="appointment_booked")
    assert advisor.site.full_address in email.body_text
    assert advisor.site.name in str(parse_ics(email).walk("VEVENT")[0]["LOCATION"])


def test_a_phone_interview_needs_a_mobile_in_the_account(now, cpam, motive, advisor):
    account = AccountFactory(member=MemberFactory(cpam=cpam), mobile_phone="")
    with pytest.raises(services.PhoneRequired):
        book(account, free(cpam, motive)[0], motive)
    # On site needs none.
    book(account, free(cpam, motive, channel="on_site")[0], motive, channel="on_site")


def test_one_open_appointment_per_motive(now, cpam, motive, advisor, member_account):
    first, second = free(cpam, motive)[:2]
    book(member_account, first, motive)
    with pytest.raises(services.MotiveAlreadyBooked):
        book(member_account, second, motive)


def test_at_most_three_upcoming_appointments(now, cpam, advisor, member_account):
    codes = ["arret-travail-ij", "css", "at-mp", "capital-deces"]
    motives = [Motive.objects.get(code=c) for c in codes]
    for i, motive in enumerate(motives[:3]):
        book(member_account, free(cpam, motive, day=date(2026, 11, 3 + i))[0], motive)
    with pytest.raises(services.TooManyAppointments):
        book(member_account, free(cpam, motives[3], day=date(2026, 11, 9))[0], motives[3])


def test_past_or_cancelled_appointments_do_not_count(now, cpam, motive, advisor, member_account):
    appointment = book(member_account, free(cpam, motive)[0], motive)
    services.appointment_cancel(account=member_account, appointment=appointment)
    book(member_account, free(cpam, motive)[1], motive)


def test_slot_of_another_motive_or_channel_or_forged_is_invalid(
    now, cpam, motive, advisor, member_account
):
    other = Motive.objects.get(code="css")
    slot = free(cpam, other)[0]
    with pytest.raises(services.InvalidSlot):
        book(member_account, slot, motive)
    with pytest.raises(services.InvalidSlot):
        services.appointment_book(
            account=member_account, slot_id=slot.id, motive_code=other.code, channel="on_site"
        )
    with pytest.raises(services.InvalidSlot):
        services.appointment_book(
            account=member_account, slot_id="1.phone.1.1", motive_code=motive.code, channel="phone"
        )
    with pytest.raises(services.InvalidMotive):
        services.appointment_book(
            account=member_account, slot_id=slot.id, motive_code="nope", channel="phone"
        )
    motive.on_site = False
    motive.save()
    with pytest.raises(services.InvalidChannel):
        services.appointment_book(
            account=member_account, slot_id=slot.id, motive_code=motive.code, channel="on_site"
        )


def test_message_limit(now, cpam, motive, advisor, member_account):
    slot = free(cpam, motive)[0]
    with pytest.raises(services.MessageTooLong):
        book(member_account, slot, motive, message="x" * 501)
    assert book(member_account, slot, motive, message="x" * 500).message == "x" * 500


def test_a_taken_slot_offers_the_nearest_alternatives(now, cpam, motive, advisor, member_account):
    slot = free(cpam, motive)[3]  # 10:00
    book(member_account, slot, motive)
    other = AccountFactory(member=MemberFactory(cpam=cpam))
    with pytest.raises(services.SlotTaken) as caught:
        book(other, slot, motive)
    assert [s.start for s in caught.value.alternatives] == [
        # 20 minutes away on each side, then the earlier of the two 40 minutes away.
        utc(paris(2026, 11, 3, h, m))
        for h, m in ((9, 20), (9, 40), (10, 20))
    ]
    assert Appointment.objects.count() == 1
    assert not AuditEntry.objects.filter(action="appointment.booked", member=other.member)


def test_a_slot_that_passed_its_notice_is_refused(cpam, motive, advisor, member_account):
    with time_machine.travel(paris(2026, 11, 2, 10), tick=False):
        slot = free(cpam, motive)[0]  # Tuesday 3 November 09:00
    with time_machine.travel(paris(2026, 11, 3, 8), tick=False), pytest.raises(services.SlotTaken):
        book(member_account, slot, motive)


def test_the_database_refuses_overlapping_appointments_even_if_the_check_passed(
    now, cpam, motive, advisor, member_account, monkeypatch
):
    """The re-check in Python is only a courtesy: the lock rows decide."""
    slot = free(cpam, motive)[0]
    book(member_account, slot, motive)
    monkeypatch.setattr(services, "slot_still_free", lambda ref, **kw: slot)
    other = AccountFactory(member=MemberFactory(cpam=cpam))
    with pytest.raises(services.SlotTaken):
        book(other, slot, motive)
    assert Appointment.objects.count() == 1


# --- cancel ---------------------------------------------------------------------------------


def test_cancel_frees_the_slot_and_sends_a_cancelling_invitation(
    now, cpam, motive, advisor, member_account, outbox
):
    slot = free(cpam, motive)[0]
    appointment = book(member_account, slot, motive)
    services.appointment_cancel(account=member_account, appointment=appointment)
    appointment.refresh_from_db()
    assert appointment.status == Appointment.Status.CANCELLED_BY_MEMBER
    assert not AdvisorTimeLock.objects.exists()
    assert slot.start in {s.start for s in free(cpam, motive)}
    [email] = outbox(template="appointment_cancelled")
    calendar = parse_ics(email)
    assert calendar["METHOD"] == "CANCEL"
    assert calendar.walk("VEVENT")[0]["STATUS"] == "CANCELLED"
    assert AuditEntry.objects.filter(action="appointment.cancelled").count() == 1
    with pytest.raises(services.NotOpen):
        services.appointment_cancel(account=member_account, appointment=appointment)


def test_cancel_until_two_hours_before(cpam, motive, advisor, member_account):
    with time_machine.travel(paris(2026, 11, 2, 10), tick=False):
        appointment = book(member_account, free(cpam, motive)[0], motive)  # 3 Nov 09:00
    with time_machine.travel(paris(2026, 11, 3, 7, 1), tick=False), pytest.raises(services.TooLate):
        services.appointment_cancel(account=member_account, appointment=appointment)
    with time_machine.travel(paris(2026, 11, 3, 7, 0), tick=False):
        services.appointment_cancel(account=member_account, appointment=appointment)


def test_a_member_cannot_cancel_or_see_another_members_appointment(
    now, cpam, motive, advisor, member_account
):
    appointment = book(member_account, free(cpam, motive)[0], motive)
    other = AccountFactory(member=MemberFactory(cpam=cpam))
    with pytest.raises(services.NotOpen):
        services.appointment_cancel(account=other, appointment=appointment)
    assert services.member_appointment_get(other.member, appointment.public_id) is None
    assert services.member_appointment_get(member_account.member, appointment.public_id)
    assert services.member_appointment_get(member_account.member, "not-a-uuid") is None
    assert not services.member_appointments(other.member).exists()
    appointment.refresh_from_db()
    assert appointment.status == Appointment.Status.BOOKED


# --- reschedule -----------------------------------------------------------------------------


def test_reschedule_moves_in_one_step_and_updates_the_invitation(
    now, cpam, motive, advisor, member_account, outbox
):
    old, new = free(cpam, motive)[0], free(cpam, motive, day=date(2026, 11, 5))[2]
    appointment = book(member_account, old, motive)
    moved = services.appointment_reschedule(
        account=member_account, appointment=appointment, slot_id=new.id
    )
    assert moved.pk == appointment.pk and moved.public_id == appointment.public_id
    assert (moved.starts_at, moved.sequence) == (new.start, 1)
    assert {lock.cell for lock in AdvisorTimeLock.objects.all()} == {
        new.start + timedelta(minutes=5 * i) for i in range(4)
    }
    assert old.start in {s.start for s in free(cpam, motive)}
    [email] = outbox(template="appointment_rescheduled")
    event = parse_ics(email).walk("VEVENT")[0]
    assert event["SEQUENCE"] == 1
    assert event.decoded("DTSTART") == new.start
    [booked] = outbox(template="appointment_booked")
    assert parse_ics(booked).walk("VEVENT")[0]["UID"] == event["UID"]
    entry = AuditEntry.objects.get(action="appointment.rescheduled")
    assert entry.data["previous"]["start"] == old.start.isoformat()


def test_reschedule_to_an_overlapping_slot_of_the_same_advisor(now, cpam, advisor, member_account):
    thirty = Motive.objects.get(code="css")
    day_slots = free(cpam, thirty)
    appointment = book(member_account, day_slots[0], thirty)  # 09:00–09:30
    # Shorten the range grid: a 09:15 start does not exist, but 09:30 does and is adjacent.
    moved = services.appointment_reschedule(
        account=member_account, appointment=appointment, slot_id=day_slots[1].id
    )
    assert moved.starts_at == day_slots[1].start


def test_a_failed_reschedule_changes_nothing(now, cpam, motive, advisor, member_account, outbox):
    mine, theirs = free(cpam, motive)[:2]
    appointment = book(member_account, mine, motive)
    other = AccountFactory(member=MemberFactory(cpam=cpam))
    book(other, theirs, motive)
    locks_before = set(AdvisorTimeLock.objects.values_list("appointment_id", "cell"))
    with pytest.raises(services.SlotTaken) as caught:
        services.appointment_reschedule(
            account=member_account, appointment=appointment, slot_id=theirs.id
        )
    assert caught.value.alternatives
    appointment.refresh_from_db()
    assert (appointment.starts_at, appointment.sequence, appointment.status) == (
        mine.start,
        0,
        Appointment.Status.BOOKED,
    )
    assert set(AdvisorTimeLock.objects.values_list("appointment_id", "cell")) == locks_before
    assert not outbox(template="appointment_rescheduled")


def test_a_reschedule_failing_at_the_database_keeps_the_old_slot(
    now, cpam, motive, advisor, member_account, monkeypatch
):
    mine, theirs = free(cpam, motive)[:2]
    appointment = book(member_account, mine, motive)
    book(AccountFactory(member=MemberFactory(cpam=cpam)), theirs, motive)
    monkeypatch.setattr(services, "slot_still_free", lambda ref, **kw: theirs)
    with pytest.raises(services.SlotTaken):
        services.appointment_reschedule(
            account=member_account, appointment=appointment, slot_id=theirs.id
        )
    appointment.refresh_from_db()
    assert appointment.starts_at == mine.start
    assert AdvisorTimeLock.objects.filter(appointment=appointment).count() == 4


def test_reschedule_rules(cpam, motive, advisor, member_account):
    with time_machine.travel(paris(2026, 11, 2, 10), tick=False):
        appointment = book(member_account, free(cpam, motive)[0], motive)
        other_motive = free(cpam, Motive.objects.get(code="css"))[0]
        with pytest.raises(services.InvalidSlot):
            services.appointment_reschedule(
                account=member_account, appointment=appointment, slot_id=other_motive.id
            )
    with time_machine.travel(paris(2026, 11, 3, 7, 30), tick=False):
        later = free(cpam, motive, day=date(2026, 11, 5))[0]
        with pytest.raises(services.TooLate):
            services.appointment_reschedule(
                account=member_account, appointment=appointment, slot_id=later.id
            )


# --- the fund's side ------------------------------------------------------------------------


def test_absence_over_booked_appointments_cancels_and_notifies(
    now, cpam, motive, advisor, member_account, outbox
):
    from tests.console.conftest import make_staff

    supervisor = make_staff("supervisor", cpam=cpam)
    appointment = book(member_account, free(cpam, motive)[0], motive)
    absence, affected = services.absence_add(
        staff=supervisor,
        advisor=advisor,
        starts_at=paris(2026, 11, 3, 0),
        ends_at=paris(2026, 11, 4, 0),
        reason="Formation",
    )
    assert [a.pk for a in affected] == [appointment.pk]
    appointment.refresh_from_db()
    assert appointment.status == Appointment.Status.CANCELLED_BY_FUND
    [email] = outbox(template="appointment_cancelled_by_fund")
    assert "absent" in email.body_text
    assert "/agenda/nouveau/?motif=arret-travail-ij" in email.body_text
    assert "mercredi 4 novembre 2026" in email.body_text  # the nearest free slots, next day
    assert parse_ics(email)["METHOD"] == "CANCEL"
    assert Absence.objects.get() == absence


def test_absence_needs_a_supervisor_of_the_advisors_office(now, cpam, advisor):
    from django.core.exceptions import PermissionDenied

    from portal.members.models import Cpam
    from tests.console.conftest import make_staff

    for staff in (
        make_staff("phone_advisor", cpam=cpam),
        make_staff("supervisor", cpam=Cpam.objects.create(code="131", name="Marseille")),
    ):
        with pytest.raises(PermissionDenied):
            services.absence_add(
                staff=staff,
                advisor=advisor,
                starts_at=paris(2026, 11, 3, 0),
                ends_at=paris(2026, 11, 4, 0),
            )
    assert not Absence.objects.exists()


def test_outcome_only_by_the_holding_advisor_once_started(cpam, motive, member_account):
    from django.core.exceptions import PermissionDenied

    from tests.console.conftest import make_staff

    advisor = make_advisor(cpam)
    colleague = make_advisor(cpam)
    with time_machine.travel(paris(2026, 11, 2, 10), tick=False):
        day = date(2026, 11, 3)
        slot = slots.free_slots(
            cpam=cpam, motive=motive, channel="phone", start=day, end=day, advisor_ids=[advisor.pk]
        )[0]
        appointment = book(member_account, slot, motive)
        with pytest.raises(services.AppointmentError):
            services.appointment_outcome_record(
                staff=advisor.staff, appointment=appointment, outcome="done"
            )
    with time_machine.travel(slot.start + timedelta(minutes=5), tick=False):
        for staff in (colleague.staff, make_staff("supervisor", cpam=cpam)):
            with pytest.raises(PermissionDenied):
                services.appointment_outcome_record(
                    staff=staff, appointment=appointment, outcome="done"
                )
        services.appointment_outcome_record(
            staff=advisor.staff, appointment=appointment, outcome="no_show", note="Pas de réponse"
        )
    appointment.refresh_from_db()
    assert (appointment.status, appointment.outcome_note) == ("no_show", "Pas de réponse")
    # The time stays held: nobody can book it after the fact.
    assert AdvisorTimeLock.objects.filter(appointment=appointment).count() == 4


def test_a_move_keeps_the_type_of_interview_and_changes_the_time(
    now, cpam, motive, advisor, member_account
):
    day = free(cpam, motive)
    appointment = book(member_account, day[0], motive)
    on_site = free(cpam, motive, day=date(2026, 11, 4), channel="on_site")[0]
    with pytest.raises(services.InvalidSlot):
        services.appointment_reschedule(
            account=member_account, appointment=appointment, slot_id=on_site.id
        )
    # Its own time, through a slot id of the same advisor and start.
    from portal.appointments.slots import Slot

    same = Slot(day[0].start, day[0].end, advisor.pk, advisor.site_id, motive.pk, "phone")
    with pytest.raises(services.InvalidSlot):
        services.appointment_reschedule(
            account=member_account, appointment=appointment, slot_id=same.id
        )
    appointment.refresh_from_db()
    assert (appointment.channel, appointment.sequence) == ("phone", 0)


def test_garbage_motive_codes_are_invalid_motives(db):
    for code in ("", "x" * 41, "css\x00", "nope"):
        with pytest.raises(services.InvalidMotive):
            services.motive_get(code)


def test_control_characters_are_dropped_from_the_message(
    now, cpam, motive, advisor, member_account
):
    slot = free(cpam, motive)[0]
    appointment = book(member_account, slot, motive, message="Ligne 1\x00\x07\nLigne\t2")
    assert appointment.message == "Ligne 1\nLigne\t2"


def test_search_and_booking_work_with_the_shared_cache_unreachable(
    now, cpam, motive, advisor, member_account
):
    """Redis away: searches are cached per process, bookings go on (no 500)."""
    from django.test import override_settings

    from portal.core.cache import agenda
    from tests.core.test_cache_fallback import closed_port, redis_caches

    with override_settings(CACHES=redis_caches(closed_port())):
        found = free(cpam, motive)
        assert len(found) == 9
        appointment = book(member_account, found[0], motive)
        assert agenda.degraded
        assert found[0].start not in {s.start for s in free(cpam, motive)}
        services.appointment_cancel(account=member_account, appointment=appointment)
        assert found[0].start in {s.start for s in free(cpam, motive)}
    agenda.reset()
