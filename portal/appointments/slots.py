"""Free slots: opening ranges minus holidays, absences and booked appointments.

A day of an advisor is a bit mask of 5-minute cells of the office's wall
clock (bit i = the cell starting i × 5 minutes after local midnight), so a
09:00 range is 09:00 whatever the offset that day, and the whole search is a
few integer operations per advisor and day. A slot of k cells may start on
the grid of its range (range start + n × duration) where k free cells follow.

Members see one slot per start time: when several advisors are free at the
same time, the slot goes to one of them, in an order that rotates with the
day so that the load spreads. The choice of the advisor is part of the slot's
opaque id, which is signed so that it cannot be forged; the booking checks
the slot again, and the database has the last word (`AdvisorTimeLock`).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from django.core import signing
from django.db.models import Q
from django.utils import timezone

from . import calendar
from .models import CELL_MINUTES, Absence, Advisor, Appointment, Channel, Motive, OpeningRange

CELLS_PER_DAY = 24 * 60 // CELL_MINUTES
FULL_DAY = (1 << CELLS_PER_DAY) - 1
SLOT_SALT = "portal.appointments.slot"
# Appointments that hold the advisor's time (a recorded outcome keeps it held).
BUSY_STATUSES = (Appointment.Status.BOOKED, Appointment.Status.DONE, Appointment.Status.NO_SHOW)


class SlotInvalid(ValueError):
    """The slot id is malformed or was not issued by us."""


@dataclass(frozen=True, order=True)
class Slot:
    start: datetime  # aware, UTC
    end: datetime
    advisor_id: int
    site_id: int
    motive_id: int
    channel: str

    @property
    def id(self) -> str:
        minute = int(self.start.timestamp()) // 60
        value = f"{self.motive_id}.{self.channel}.{self.advisor_id}.{minute}"
        return signing.Signer(salt=SLOT_SALT).sign(value)


@dataclass(frozen=True)
class SlotRef:
    """What a slot id says, once its signature is checked."""

    motive_id: int
    channel: str
    advisor_id: int
    start: datetime


def slot_decode(slot_id: str) -> SlotRef:
    try:
        value = signing.Signer(salt=SLOT_SALT).unsign(str(slot_id))
        motive_id, channel, advisor_id, minute = value.split(".")
        if channel not in Channel.values:
            raise ValueError(channel)
        start = datetime.fromtimestamp(int(minute) * 60, tz=UTC)
        return SlotRef(int(motive_id), channel, int(advisor_id), start)
    except (signing.BadSignature, ValueError, OverflowError) as exc:
        raise SlotInvalid("invalid slot") from exc


def bookable_days(cpam, motive: Motive, now: datetime | None = None) -> tuple[date, date]:
    """The first and last days a member may book for `motive` (notice and horizon)."""
    now = now or timezone.now()
    today = now.astimezone(calendar.zone(cpam)).date()
    first = calendar.first_bookable_day(cpam.department, today, motive.min_notice_working_days)
    return first, today + timedelta(days=motive.horizon_days)


def free_slots(
    *,
    cpam,
    motive: Motive,
    channel: str,
    start: date,
    end: date,
    site_id: int | None = None,
    advisor_ids: list[int] | None = None,
    now: datetime | None = None,
    per_advisor: bool = False,
    ignore: int | None = None,
) -> list[Slot]:
    """The free slots from day `start` to day `end` (inclusive), in time order.

    Days outside the motive's notice and horizon give nothing. With
    `per_advisor`, every advisor's free slots are listed (the booking's
    check); otherwise one per start time. The appointment `ignore` does not
    count as busy (the one being moved).
    """
    now = now or timezone.now()
    first, last = bookable_days(cpam, motive, now)
    start, end = max(start, first), min(end, last)
    if start > end or channel not in motive.channels:
        return []
    tz = calendar.zone(cpam)
    advisors = Advisor.objects.filter(
        staff__cpam=cpam, staff__is_active=True, motives=motive, **{channel: True}
    )
    if site_id is not None:
        advisors = advisors.filter(site_id=site_id)
    if advisor_ids is not None:
        advisors = advisors.filter(pk__in=advisor_ids)
    sites = dict(advisors.values_list("pk", "site_id"))
    if not sites:
        return []
    window_start = datetime.combine(start, time.min, tz)
    window_end = datetime.combine(end + timedelta(days=1), time.min, tz)

    ranges = defaultdict(list)  # advisor -> [(weekday, start cell, end cell, from, until)]
    for row in (
        OpeningRange.objects.filter(advisor_id__in=sites)
        .filter(Q(channel="") | Q(channel=channel))
        .values_list("advisor_id", "weekday", "start_time", "end_time", "valid_from", "valid_until")
    ):
        advisor_id, weekday, t0, t1, valid_from, valid_until = row
        ranges[advisor_id].append((weekday, _cell(t0), _cell(t1, up=True), valid_from, valid_until))

    busy = defaultdict(list)  # advisor -> [(start, end)]
    for advisor_id, s, e in Absence.objects.filter(
        advisor_id__in=sites, starts_at__lt=window_end, ends_at__gt=window_start
    ).values_list("advisor_id", "starts_at", "ends_at"):
        busy[advisor_id].append((s, e))
    booked = Appointment.objects.filter(
        advisor_id__in=sites,
        status__in=BUSY_STATUSES,
        starts_at__lt=window_end,
        ends_at__gt=window_start,
    )
    if ignore is not None:
        booked = booked.exclude(pk=ignore)
    for advisor_id, s, e in booked.values_list("advisor_id", "starts_at", "ends_at"):
        busy[advisor_id].append((s, e))

    k = motive.duration_minutes // CELL_MINUTES
    duration = timedelta(minutes=motive.duration_minutes)
    order = sorted(sites)
    slots: list[Slot] = []
    day = start
    while day <= end:
        if calendar.is_public_holiday(cpam.department, day):
            day += timedelta(days=1)
            continue
        day_start = datetime.combine(day, time.min, tz)
        day_end = datetime.combine(day + timedelta(days=1), time.min, tz)
        # Only starts after now (a notice of 0 days allows today).
        not_before = _cell_of(now, day, tz, up=True) if day_start <= now else 0
        weekday = day.weekday()
        covered = 0
        shift = day.toordinal() % len(order)
        for advisor_id in order[shift:] + order[:shift]:
            free = grid = 0
            for wd, c0, c1, valid_from, valid_until in ranges.get(advisor_id, ()):
                if (
                    wd != weekday
                    or (valid_from and day < valid_from)
                    or (valid_until and day > valid_until)
                ):
                    continue
                free |= _bits(c0, c1)
                grid |= _grid(c0, c1, k)
            if not grid:
                continue
            for s, e in busy.get(advisor_id, ()):
                if s < day_end and e > day_start:
                    free &= ~_bits(_cell_of(s, day, tz), _cell_of(e, day, tz, up=True))
            run = free
            for i in range(1, k):
                run &= free >> i
            starts = run & grid & ~covered & (FULL_DAY ^ ((1 << not_before) - 1))
            if not starts:
                continue
            if not per_advisor:
                covered |= starts
            while starts:
                low = starts & -starts
                cell = low.bit_length() - 1
                starts ^= low
                local = datetime.combine(day, _time_of(cell), tz)
                begin = local.astimezone(UTC)
                if begin.astimezone(tz).time() != local.time():
                    continue  # a wall time the clocks skip (02:xx on the spring change)
                slots.append(
                    Slot(begin, begin + duration, advisor_id, sites[advisor_id], motive.pk, channel)
                )
        day += timedelta(days=1)
    slots.sort()
    return slots


def slot_still_free(
    slot: SlotRef,
    *,
    cpam,
    motive: Motive,
    now: datetime | None = None,
    ignore: int | None = None,
) -> Slot | None:
    """The slot if its advisor is still free then (notice, horizon and absences included)."""
    day = slot.start.astimezone(calendar.zone(cpam)).date()
    for candidate in free_slots(
        cpam=cpam,
        motive=motive,
        channel=slot.channel,
        start=day,
        end=day,
        advisor_ids=[slot.advisor_id],
        now=now,
        per_advisor=True,
        ignore=ignore,
    ):
        if candidate.start == slot.start:
            return candidate
    return None


def nearest_slots(
    *,
    cpam,
    motive: Motive,
    channel: str,
    near: datetime,
    site_id: int | None = None,
    count: int = 3,
) -> list[Slot]:
    """The free slots closest in time to `near`, for a member whose slot was taken."""
    day = near.astimezone(calendar.zone(cpam)).date()
    found = free_slots(
        cpam=cpam,
        motive=motive,
        channel=channel,
        start=day - timedelta(days=7),
        end=day + timedelta(days=7),
        site_id=site_id,
    )
    found.sort(key=lambda s: (abs((s.start - near).total_seconds()), s.start))
    return sorted(found[:count])


def _cell(value: time, up: bool = False) -> int:
    minutes = value.hour * 60 + value.minute
    if value == time.max or (value.hour == 23 and value.minute == 59):
        return CELLS_PER_DAY
    return -(-minutes // CELL_MINUTES) if up else minutes // CELL_MINUTES


def _cell_of(moment: datetime, day: date, tz, up: bool = False) -> int:
    """The cell of `day` (local) where `moment` falls, clamped to the day."""
    local = moment.astimezone(tz)
    if local.date() < day:
        return 0
    if local.date() > day:
        return CELLS_PER_DAY
    minutes = local.hour * 60 + local.minute + (local.second > 0 or local.microsecond > 0) * up
    return min(-(-minutes // CELL_MINUTES) if up else minutes // CELL_MINUTES, CELLS_PER_DAY)


def _time_of(cell: int) -> time:
    minutes = cell * CELL_MINUTES
    return time(minutes // 60, minutes % 60)


def _bits(first: int, end: int) -> int:
    """Cells first … end − 1."""
    if end <= first:
        return 0
    return ((1 << (end - first)) - 1) << first


_GRIDS: dict[tuple[int, int, int], int] = {}


def _grid(first: int, end: int, k: int) -> int:
    """The cells where a slot of k cells may start in a range: its start, then every k cells."""
    key = (first, end, k)
    grid = _GRIDS.get(key)
    if grid is None:
        grid = 0
        for cell in range(first, end - k + 1, k):
            grid |= 1 << cell
        _GRIDS[key] = grid
    return grid
