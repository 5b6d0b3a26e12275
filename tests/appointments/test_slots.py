"""The free-slot computation: ranges, notice, horizon, holidays, absences, bookings, time zones."""

from datetime import date, datetime, time, timedelta
from datetime import timezone as dt_timezone
from zoneinfo import ZoneInfo

import pytest
import time_machine

from portal.appointments import calendar, slots
from portal.appointments.models import Absence, Appointment, Motive, OpeningRange
from portal.members.models import Cpam
from tests.appointments.conftest import make_advisor, paris, utc

UTC = dt_timezone.utc  # datetime.UTC needs Python 3.11

pytestmark = pytest.mark.django_db


def search(cpam, motive, start, end, channel="phone", **kwargs):
    return slots.free_slots(
        cpam=cpam, motive=motive, channel=channel, start=start, end=end, **kwargs
    )


def local_times(found, tz="Europe/Paris"):
    return [s.start.astimezone(ZoneInfo(tz)).strftime("%a %d %H:%M") for s in found]


def test_a_range_gives_slots_of_the_motive_duration_from_its_start(now, cpam, motive, advisor):
    found = search(cpam, motive, date(2026, 11, 3), date(2026, 11, 3))
    # 09:00–12:00 in 20-minute slots.
    assert local_times(found) == [
        f"Tue 03 {h:02d}:{m:02d}" for h in (9, 10, 11) for m in (0, 20, 40)
    ]
    assert all(s.end - s.start == timedelta(minutes=20) for s in found)
    assert {s.advisor_id for s in found} == {advisor.pk}
    assert {s.site_id for s in found} == {advisor.site_id}


def test_a_longer_motive_fits_fewer_slots_and_never_overruns_the_range(now, cpam, advisor):
    thirty = Motive.objects.get(code="css")  # 30 minutes
    OpeningRange.objects.filter(advisor=advisor).update(end_time=time(11, 50))
    found = search(cpam, thirty, date(2026, 11, 3), date(2026, 11, 3))
    assert local_times(found) == [
        "Tue 03 09:00",
        "Tue 03 09:30",
        "Tue 03 10:00",
        "Tue 03 10:30",
        "Tue 03 11:00",
    ]


def test_notice_starts_on_the_next_working_day_and_horizon_ends_after_six_weeks(
    now, cpam, motive, advisor
):
    found = search(cpam, motive, date(2026, 10, 1), date(2027, 3, 1))
    days = sorted({s.start.astimezone(calendar.zone(cpam)).date() for s in found})
    assert days[0] == date(2026, 11, 3)  # now is Monday 2 November
    assert days[-1] == date(2026, 12, 14)  # today + 42 days
    assert date(2026, 11, 11) not in days  # Armistice
    assert all(d.weekday() < 5 for d in days)  # no range on weekends


@pytest.mark.parametrize(
    ("today", "expected"),
    [
        (date(2026, 11, 2), date(2026, 11, 3)),  # Monday → Tuesday
        (date(2026, 11, 6), date(2026, 11, 9)),  # Friday → Monday
        (date(2026, 11, 7), date(2026, 11, 9)),  # Saturday → Monday
        (date(2026, 11, 10), date(2026, 11, 12)),  # Tuesday → Thursday (11 November)
        (date(2026, 12, 24), date(2026, 12, 28)),  # Thursday → Monday (Christmas on Friday)
    ],
)
def test_first_bookable_day_skips_weekends_and_holidays(today, expected):
    assert calendar.first_bookable_day("75", today, 1) == expected


def test_a_longer_notice_and_a_shorter_horizon_per_motive(now, cpam, motive, advisor):
    motive.min_notice_working_days = 3
    motive.horizon_days = 10
    found = search(cpam, motive, date(2026, 11, 1), date(2026, 12, 31))
    days = sorted({s.start.astimezone(calendar.zone(cpam)).date() for s in found})
    assert days[0] == date(2026, 11, 5)
    assert days[-1] == date(2026, 11, 12)


def test_a_notice_of_zero_allows_today_but_only_after_now(now, cpam, motive, advisor):
    motive.min_notice_working_days = 0
    found = search(cpam, motive, date(2026, 11, 2), date(2026, 11, 2))
    # Now is 10:00: the 10:00 slot and later ones remain.
    assert local_times(found) == [
        "Mon 02 10:00",
        "Mon 02 10:20",
        "Mon 02 10:40",
        "Mon 02 11:00",
        "Mon 02 11:20",
        "Mon 02 11:40",
    ]


def test_alsace_moselle_good_friday_and_saint_stephen(db):
    metz = Cpam.objects.create(code="571", name="Moselle")
    paris_cpam = Cpam.objects.create(code="751", name="Paris")
    assert (metz.department, paris_cpam.department) == ("57", "75")
    strasbourg = Cpam.objects.create(code="674", name="Bas-Rhin")
    motive = Motive.objects.get(code="arret-travail-ij")
    for cpam in (metz, paris_cpam, strasbourg):
        make_advisor(cpam)
    with time_machine.travel(paris(2026, 3, 30, 10), tick=False):
        good_friday = date(2026, 4, 3)
        assert search(metz, motive, good_friday, good_friday) == []
        assert search(strasbourg, motive, good_friday, good_friday) == []
        assert len(search(paris_cpam, motive, good_friday, good_friday)) == 9
        easter_monday = date(2026, 4, 6)
        assert search(paris_cpam, motive, easter_monday, easter_monday) == []


def test_overseas_offices_have_their_own_days_and_time_zone(db):
    martinique = Cpam.objects.create(code="972", name="Martinique")
    assert martinique.time_zone == "America/Martinique"
    motive = Motive.objects.get(code="arret-travail-ij")
    make_advisor(martinique)
    with time_machine.travel(datetime(2026, 5, 18, 10, tzinfo=UTC), tick=False):
        # 22 May, abolition of slavery in Martinique: a Friday with no slot.
        assert search(martinique, motive, date(2026, 5, 22), date(2026, 5, 22)) == []
        found = search(martinique, motive, date(2026, 5, 21), date(2026, 5, 21))
    # 09:00 in Fort-de-France is 13:00 UTC (UTC−4, no daylight saving).
    assert found[0].start == datetime(2026, 5, 21, 13, 0, tzinfo=UTC)
    assert local_times(found, "America/Martinique")[0] == "Thu 21 09:00"


def test_an_absence_removes_the_slots_it_overlaps(now, cpam, motive, advisor):
    Absence.objects.create(
        advisor=advisor,
        starts_at=paris(2026, 11, 3, 10, 10),
        ends_at=paris(2026, 11, 3, 11, 0),
        created_by="test",
    )
    found = search(cpam, motive, date(2026, 11, 3), date(2026, 11, 3))
    assert local_times(found) == [
        "Tue 03 09:00",
        "Tue 03 09:20",
        "Tue 03 09:40",
        "Tue 03 11:00",
        "Tue 03 11:20",
        "Tue 03 11:40",
    ]


def test_a_multi_day_absence_empties_the_days(now, cpam, motive, advisor):
    Absence.objects.create(
        advisor=advisor,
        starts_at=paris(2026, 11, 4, 0, 0),
        ends_at=paris(2026, 11, 6, 12, 0),
        created_by="test",
    )
    found = search(cpam, motive, date(2026, 11, 3), date(2026, 11, 9))
    days = sorted({s.start.astimezone(calendar.zone(cpam)).date() for s in found})
    assert days == [date(2026, 11, 3), date(2026, 11, 9)]


def test_booked_and_held_appointments_are_busy_cancelled_ones_are_not(
    now, cpam, motive, advisor, member_account
):
    def book(hour, minute, status):
        start = paris(2026, 11, 3, hour, minute)
        Appointment.objects.create(
            member=member_account.member,
            motive=motive,
            channel="phone",
            advisor=advisor,
            site=advisor.site,
            starts_at=start,
            ends_at=start + timedelta(minutes=30),
            status=status,
        )

    book(9, 0, Appointment.Status.BOOKED)  # a 30-minute appointment also blocks 09:20
    book(10, 0, Appointment.Status.CANCELLED_BY_MEMBER)
    book(11, 0, Appointment.Status.DONE)
    found = search(cpam, motive, date(2026, 11, 3), date(2026, 11, 3))
    assert local_times(found) == [
        "Tue 03 09:40",
        "Tue 03 10:00",
        "Tue 03 10:20",
        "Tue 03 10:40",
        "Tue 03 11:40",
    ]


def test_ranges_limited_to_a_channel_and_advisors_who_do_not_serve_it(now, cpam, motive):
    make_advisor(cpam, phone=False, on_site=True)
    assert search(cpam, motive, date(2026, 11, 3), date(2026, 11, 3), channel="phone") == []
    both = make_advisor(cpam, ranges=())
    OpeningRange.objects.create(
        advisor=both, weekday=1, start_time=time(14), end_time=time(15), channel="phone"
    )
    phone = search(cpam, motive, date(2026, 11, 3), date(2026, 11, 3), channel="phone")
    assert local_times(phone) == ["Tue 03 14:00", "Tue 03 14:20", "Tue 03 14:40"]
    on_site = search(cpam, motive, date(2026, 11, 3), date(2026, 11, 3), channel="on_site")
    assert len(on_site) == 9  # the first advisor's mornings; the phone range is not offered


def test_a_motive_without_the_channel_gives_nothing(now, cpam, motive, advisor):
    motive.on_site = False
    assert search(cpam, motive, date(2026, 11, 3), date(2026, 11, 3), channel="on_site") == []


def test_advisors_of_other_offices_other_motives_or_inactive_are_not_offered(now, cpam, motive):
    other = Cpam.objects.create(code="131", name="Bouches-du-Rhône")
    make_advisor(other)
    make_advisor(cpam, motives=Motive.objects.exclude(pk=motive.pk))
    gone = make_advisor(cpam)
    gone.staff.is_active = False
    gone.staff.save()
    assert search(cpam, motive, date(2026, 11, 3), date(2026, 11, 3)) == []


def test_ranges_valid_for_a_period_only(now, cpam, motive, advisor):
    OpeningRange.objects.filter(advisor=advisor).update(
        valid_from=date(2026, 11, 4), valid_until=date(2026, 11, 5)
    )
    found = search(cpam, motive, date(2026, 11, 3), date(2026, 11, 9))
    days = sorted({s.start.astimezone(calendar.zone(cpam)).date() for s in found})
    assert days == [date(2026, 11, 4), date(2026, 11, 5)]


def test_one_slot_per_time_spread_over_advisors_and_all_of_them_per_advisor(now, cpam, motive):
    first, second = make_advisor(cpam), make_advisor(cpam)
    found = search(cpam, motive, date(2026, 11, 3), date(2026, 11, 4))
    assert len(found) == 18  # one per start time
    assert {s.advisor_id for s in found} <= {first.pk, second.pk}
    # The day's order rotates: each advisor gets the slots of a day.
    assert len({s.advisor_id for s in found}) == 2
    every = search(cpam, motive, date(2026, 11, 3), date(2026, 11, 3), per_advisor=True)
    assert len(every) == 18


def test_a_site_filter_keeps_the_advisors_of_that_site(now, cpam, motive):
    from tests.appointments.conftest import make_site

    north, south = make_site(cpam, "Nord"), make_site(cpam, "Sud")
    make_advisor(cpam, site=north, ranges=((time(9), time(10)),))
    make_advisor(cpam, site=south, ranges=((time(14), time(15)),))
    found = search(
        cpam, motive, date(2026, 11, 3), date(2026, 11, 3), channel="on_site", site_id=south.pk
    )
    assert local_times(found) == ["Tue 03 14:00", "Tue 03 14:20", "Tue 03 14:40"]
    assert {s.site_id for s in found} == {south.pk}


# --- daylight saving time -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("now_", "days", "offsets"),
    [
        # Spring: Sunday 29 March 2026, 02:00 → 03:00.
        (paris(2026, 3, 25, 10), (date(2026, 3, 27), date(2026, 3, 30)), ("+01:00", "+02:00")),
        # Autumn: Sunday 25 October 2026, 03:00 → 02:00.
        (paris(2026, 10, 21, 10), (date(2026, 10, 23), date(2026, 10, 26)), ("+02:00", "+01:00")),
    ],
)
def test_a_0900_range_stays_0900_across_the_clock_change(db, now_, days, offsets):
    cpam = Cpam.objects.create(code="751", name="Paris")
    motive = Motive.objects.get(code="arret-travail-ij")
    make_advisor(cpam, weekdays=range(7))
    with time_machine.travel(now_, tick=False):
        found = search(cpam, motive, days[0], days[1])
    per_day: dict[date, list[str]] = {}
    for s in found:
        local = s.start.astimezone(ZoneInfo("Europe/Paris"))
        per_day.setdefault(local.date(), []).append(local.strftime("%H:%M"))
    expected = [f"{h:02d}:{m:02d}" for h in (9, 10, 11) for m in (0, 20, 40)]
    # Every day of the four, the change's Sunday included: the same nine slots.
    assert len(per_day) == 4
    assert all(times == expected for times in per_day.values())
    assert len(found) == len({s.start for s in found}) == 36
    before = [s for s in found if s.start.astimezone(ZoneInfo("Europe/Paris")).date() == days[0]]
    after = [s for s in found if s.start.astimezone(ZoneInfo("Europe/Paris")).date() == days[1]]
    assert before[0].start.astimezone(ZoneInfo("Europe/Paris")).isoformat()[-6:] == offsets[0]
    assert after[0].start.astimezone(ZoneInfo("Europe/Paris")).isoformat()[-6:] == offsets[1]
    # The UTC hour moves by one, the wall-clock hour does not.
    assert before[0].start.hour != after[0].start.hour


def test_a_night_range_over_the_spring_gap_offers_no_time_that_does_not_exist(db):
    cpam = Cpam.objects.create(code="751", name="Paris")
    motive = Motive.objects.get(code="arret-travail-ij")
    make_advisor(cpam, weekdays=[6], ranges=((time(1, 0), time(4, 0)),))
    with time_machine.travel(paris(2026, 3, 25, 10), tick=False):
        found = search(cpam, motive, date(2026, 3, 29), date(2026, 3, 29))
    times = [s.start.astimezone(ZoneInfo("Europe/Paris")).strftime("%H:%M") for s in found]
    assert times == ["01:00", "01:20", "01:40", "03:00", "03:20", "03:40"]
    assert len({s.start for s in found}) == len(found)
    # Consecutive slots never overlap in real time.
    for a, b in zip(found, found[1:], strict=False):
        assert a.end <= b.start


def test_appointments_and_absences_are_compared_in_real_time_on_change_days(db):
    cpam = Cpam.objects.create(code="751", name="Paris")
    motive = Motive.objects.get(code="arret-travail-ij")
    advisor = make_advisor(cpam, weekdays=range(7))
    # 25 October: an absence 09:00–10:00 Paris (+01:00 that day), given in UTC.
    Absence.objects.create(
        advisor=advisor,
        starts_at=datetime(2026, 10, 26, 8, 0, tzinfo=UTC),
        ends_at=datetime(2026, 10, 26, 9, 0, tzinfo=UTC),
        created_by="test",
    )
    with time_machine.travel(paris(2026, 10, 21, 10), tick=False):
        found = search(cpam, motive, date(2026, 10, 26), date(2026, 10, 26))
    assert [s.start.astimezone(ZoneInfo("Europe/Paris")).strftime("%H:%M") for s in found] == [
        "10:00",
        "10:20",
        "10:40",
        "11:00",
        "11:20",
        "11:40",
    ]


# --- slot ids ------------------------------------------------------------------------------


def test_slot_ids_round_trip_and_refuse_tampering(now, cpam, motive, advisor):
    slot = search(cpam, motive, date(2026, 11, 3), date(2026, 11, 3))[0]
    ref = slots.slot_decode(slot.id)
    assert (ref.advisor_id, ref.start, ref.motive_id, ref.channel) == (
        advisor.pk,
        slot.start,
        motive.pk,
        "phone",
    )
    value, signature = slot.id.rsplit(":", 1)
    forged = value.replace(f".{advisor.pk}.", f".{advisor.pk + 1}.") + ":" + signature
    for bad in (forged, "", "abc", "1.phone.2.3", slot.id + "x", "é" * 50, None):
        with pytest.raises(slots.SlotInvalid):
            slots.slot_decode(bad)


def test_slot_still_free_checks_the_advisor_at_that_time(now, cpam, motive, advisor):
    slot = search(cpam, motive, date(2026, 11, 3), date(2026, 11, 3))[0]
    ref = slots.slot_decode(slot.id)
    assert slots.slot_still_free(ref, cpam=cpam, motive=motive) == slot
    Absence.objects.create(
        advisor=advisor, starts_at=slot.start, ends_at=slot.end, created_by="test"
    )
    assert slots.slot_still_free(ref, cpam=cpam, motive=motive) is None


def test_nearest_slots_are_the_closest_in_time(now, cpam, motive, advisor):
    near = utc(paris(2026, 11, 4, 10, 0))
    found = slots.nearest_slots(cpam=cpam, motive=motive, channel="phone", near=near)
    assert [s.start for s in found] == [
        utc(paris(2026, 11, 4, 9, 40)),
        utc(paris(2026, 11, 4, 10, 0)),
        utc(paris(2026, 11, 4, 10, 20)),
    ]


def test_cached_searches_follow_every_change_of_availability(now, cpam, motive, advisor):
    from django.core.cache import cache

    day = date(2026, 11, 3)
    before = search(cpam, motive, day, day)
    assert len(before) == 9
    assert any(key.startswith(":1:agenda:d:") for key in cache._cache)  # locmem: it was cached
    absence = Absence.objects.create(
        advisor=advisor,
        starts_at=paris(2026, 11, 3, 9),
        ends_at=paris(2026, 11, 3, 10),
        created_by="test",
    )
    assert len(search(cpam, motive, day, day)) == 6
    absence.delete()
    assert len(search(cpam, motive, day, day)) == 9
    extra = OpeningRange.objects.create(
        advisor=advisor, weekday=1, start_time=time(14), end_time=time(15)
    )
    assert len(search(cpam, motive, day, day)) == 12
    extra.delete()
    advisor.motives.remove(motive)
    assert search(cpam, motive, day, day) == []
    advisor.motives.add(motive)
    advisor.phone = False
    advisor.save()
    assert search(cpam, motive, day, day) == []


def test_a_booking_voids_the_cached_day_only(now, cpam, motive, advisor, member_account):
    """After a booking, only the days it touched are computed again."""
    from unittest import mock

    from portal.appointments import services

    week = search(cpam, motive, date(2026, 11, 3), date(2026, 11, 9))
    assert len(week) == 45
    services.appointment_book(
        account=member_account, slot_id=week[0].id, motive_code=motive.code, channel="phone"
    )
    with mock.patch.object(slots, "_free_slots", wraps=slots._free_slots) as compute:
        again = search(cpam, motive, date(2026, 11, 3), date(2026, 11, 9))
    assert [s.start for s in again] == [s.start for s in week[1:]]
    [call] = compute.call_args_list
    assert call.kwargs["only_days"] == {date(2026, 11, 3)}
    # Moving it voids both its old and its new day.
    appointment = member_account.member.appointments.get()
    services.appointment_reschedule(
        account=member_account, appointment=appointment, slot_id=week[20].id
    )
    with mock.patch.object(slots, "_free_slots", wraps=slots._free_slots) as compute:
        moved = search(cpam, motive, date(2026, 11, 3), date(2026, 11, 9))
    assert compute.call_args_list[0].kwargs["only_days"] == {
        date(2026, 11, 3),
        week[20].start.astimezone(calendar.zone(cpam)).date(),
    }
    assert week[0].start in {s.start for s in moved}
    assert week[20].start not in {s.start for s in moved}
    # The cached ids are the same ids.
    assert [s.id for s in moved if s.start == week[5].start] == [week[5].id]


def test_a_deactivated_advisor_leaves_the_cached_searches(now, cpam, motive, advisor):
    day = date(2026, 11, 3)
    assert len(search(cpam, motive, day, day)) == 9
    advisor.staff.is_active = False
    advisor.staff.save()
    assert search(cpam, motive, day, day) == []
