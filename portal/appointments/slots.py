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

import base64
import hashlib
import hmac
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from datetime import timezone as dt_timezone
from functools import lru_cache

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from portal.core.cache import agenda as cache

from . import calendar
from .models import (
    CELL_MINUTES,
    Absence,
    Advisor,
    Appointment,
    Channel,
    CommunicationMode,
    Motive,
    OpeningRange,
)

UTC = dt_timezone.utc  # datetime.UTC needs Python 3.11
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
    mode: str = ""  # relay appointments: lsf, ttrp or lfpc
    token: str = field(default="", compare=False, repr=False)  # the id, once computed

    @property
    def id(self) -> str:
        if self.token:
            return self.token
        minute = int(self.start.timestamp()) // 60
        channel = f"{self.channel}-{self.mode}" if self.mode else self.channel
        value = f"{self.motive_id}.{channel}.{self.advisor_id}.{minute}"
        return f"{value}:{_mac(value, settings.SECRET_KEY)}"


# Slot ids are signed with HMAC-SHA256 (truncated to 128 bits) under a key
# derived once per process from SECRET_KEY: a search signs hundreds of them.


@lru_cache(maxsize=8)
def _slot_key(secret: str) -> bytes:
    return hashlib.sha256(f"{SLOT_SALT}:{secret}".encode()).digest()


def _mac(value: str, secret: str) -> str:
    digest = hmac.digest(_slot_key(secret), value.encode(), "sha256")[:16]
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@dataclass(frozen=True)
class SlotRef:
    """What a slot id says, once its signature is checked."""

    motive_id: int
    channel: str
    advisor_id: int
    start: datetime
    mode: str = ""


def slot_decode(slot_id: str) -> SlotRef:
    try:
        slot_id = str(slot_id)
        if len(slot_id) > 200:
            raise ValueError("too long")
        value, _, mac = slot_id.rpartition(":")
        secrets = [settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS]
        given = mac.encode()  # compare_digest refuses non-ASCII str
        if not any(hmac.compare_digest(given, _mac(value, key).encode()) for key in secrets):
            raise ValueError("bad signature")
        motive_id, channel, advisor_id, minute = value.split(".")
        channel, _, mode = channel.partition("-")
        if channel not in Channel.values or (mode and channel != Channel.RELAY):
            raise ValueError(channel)
        if (channel == Channel.RELAY) != (mode in CommunicationMode.values):
            raise ValueError(mode)
        start = datetime.fromtimestamp(int(minute) * 60, tz=UTC)
        return SlotRef(int(motive_id), channel, int(advisor_id), start, mode)
    except (ValueError, OverflowError, UnicodeError) as exc:
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
    mode: str = "",
) -> list[Slot]:
    """The free slots from day `start` to day `end` (inclusive), in time order.

    Days outside the motive's notice and horizon give nothing. With
    `per_advisor`, every advisor's free slots are listed (the booking's
    check); otherwise one per start time. The appointment `ignore` does not
    count as busy (the one being moved). A relay appointment (`channel`
    "relay") needs the `mode` (lsf, ttrp, lfpc): its slots are the advisors'
    free times when a relay professional of that mode is free too.
    """
    now = now or timezone.now()
    first, last = bookable_days(cpam, motive, now)
    start, end = max(start, first), min(end, last)
    if start > end or channel not in motive.channels:
        return []
    if (channel == Channel.RELAY) != (mode in CommunicationMode.values):
        return []
    tz = calendar.zone(cpam)
    cacheable = not per_advisor and advisor_ids is None and ignore is None
    # Today depends on the minute: never cached.
    today = now.astimezone(tz).date()
    if not cacheable or start <= today:
        return _free_slots(
            cpam=cpam,
            motive=motive,
            channel=channel,
            start=start,
            end=end,
            site_id=site_id,
            advisor_ids=advisor_ids,
            now=now,
            per_advisor=per_advisor,
            ignore=ignore,
            tz=tz,
            mode=mode,
        )
    days = [start + timedelta(days=i) for i in range((end - start).days + 1)]
    keys = day_cache_keys(cpam.pk, motive, channel, site_id, mode, days)
    cached = cache.get_many(list(keys.values()))
    missing = {day for day in days if keys[day] not in cached}
    if missing:
        computed: dict[date, list] = {day: [] for day in missing}
        for slot in _free_slots(
            cpam=cpam,
            motive=motive,
            channel=channel,
            start=min(missing),
            end=max(missing),
            site_id=site_id,
            advisor_ids=None,
            now=now,
            per_advisor=False,
            ignore=None,
            tz=tz,
            mode=mode,
            only_days=missing,
        ):
            row = (int(slot.start.timestamp()), slot.advisor_id, slot.site_id, slot.id)
            computed[slot.start.astimezone(tz).date()].append(row)
        cache.set_many({keys[day]: rows for day, rows in computed.items()}, SEARCH_CACHE_SECONDS)
        cached.update({keys[day]: rows for day, rows in computed.items()})
    duration = timedelta(minutes=motive.duration_minutes)
    found = []
    for day in days:
        for begin, advisor_id, site, token in cached[keys[day]]:
            moment = datetime.fromtimestamp(begin, UTC)
            found.append(
                Slot(moment, moment + duration, advisor_id, site, motive.pk, channel, mode, token)
            )
    return found


def _free_slots(
    *,
    cpam,
    motive,
    channel,
    start,
    end,
    site_id,
    advisor_ids,
    now,
    per_advisor,
    ignore,
    tz,
    mode,
    only_days=None,
):
    sites, ranges = _office_team(cpam, motive, channel, site_id, advisor_ids)
    if not sites:
        return []
    window_start = datetime.combine(start, time.min, tz)
    window_end = datetime.combine(end + timedelta(days=1), time.min, tz)

    absences = defaultdict(list)  # advisor -> [(start, end)]
    for advisor_id, s, e in Absence.objects.filter(
        advisor_id__in=sites, starts_at__lt=window_end, ends_at__gt=window_start
    ).values_list("advisor_id", "starts_at", "ends_at"):
        absences[advisor_id].append((s, e))

    k = motive.duration_minutes // CELL_MINUTES
    duration = timedelta(minutes=motive.duration_minutes)
    days = []
    day = start
    while day <= end:
        if not calendar.is_public_holiday(cpam.department, day) and (
            only_days is None or day in only_days
        ):
            days.append(day)
        day += timedelta(days=1)
    # Per day: the advisors' opening (free cells, slot grid), and the starts
    # that any of them could offer; a day is done once those are all covered.
    base: dict[date, dict[int, tuple[int, int]]] = {}
    possible: dict[date, int] = {}
    weekly = {advisor_id: _weekly(ranges.get(advisor_id, ()), k) for advisor_id in sites}
    for day in days:
        day_start = datetime.combine(day, time.min, tz)
        # Only starts after now (a notice of 0 days allows today).
        after = ~((1 << _cell_of(now, day, tz, up=True)) - 1) if day_start <= now else -1
        weekday = day.weekday()
        base[day] = {}
        union = 0
        for advisor_id in sites:
            week, dated = weekly[advisor_id]
            free, grid = _opening(dated, day, k) if dated else week[weekday]
            if grid & after:
                base[day][advisor_id] = (free, grid & after)
                union |= grid & after
        possible[day] = union
    relay_ok: dict[date, int] = {}
    if channel == Channel.RELAY:
        from .relay import relay_starts

        relay_ok, _ = relay_starts(
            mode=mode,
            days=days,
            tz=tz,
            k=k,
            window_start=window_start,
            window_end=window_end,
            ignore=ignore,
        )
        for day in days:
            possible[day] &= relay_ok[day]
    covered = dict.fromkeys(days, 0)
    pending = [day for day in days if possible[day]]

    slots: list[Slot] = []
    order = sorted(sites)
    shift = start.toordinal() % len(order)
    order = order[shift:] + order[:shift]
    # Advisors are read in small groups: most searches are answered by the first.
    for group in _chunks(order, 1 if per_advisor or len(order) == 1 else ADVISORS_PER_READ):
        if not pending:
            break
        # After the first group, only the days still open are read again.
        busy = _busy(
            group,
            max(window_start, datetime.combine(pending[0], time.min, tz)),
            min(window_end, datetime.combine(pending[-1] + timedelta(days=1), time.min, tz)),
            ignore,
            tz,
        )
        for day in pending:
            day_start = datetime.combine(day, time.min, tz)
            day_end = datetime.combine(day + timedelta(days=1), time.min, tz)
            rotation = day.toordinal() % len(group)
            for advisor_id in group[rotation:] + group[:rotation]:
                opening = base[day].get(advisor_id)
                if opening is None:
                    continue
                free, grid = opening
                for s, e in busy.get((advisor_id, day), ()):
                    free &= ~_bits(_cell_of(s, day, tz), _cell_of(e, day, tz, up=True))
                for s, e in absences.get(advisor_id, ()):
                    if s < day_end and e > day_start:
                        free &= ~_bits(_cell_of(s, day, tz), _cell_of(e, day, tz, up=True))
                run = free
                for i in range(1, k):
                    run &= free >> i
                starts = run & grid
                if channel == Channel.RELAY:
                    starts &= relay_ok[day]
                if not per_advisor:
                    starts &= ~covered[day]
                    covered[day] |= starts
                while starts:
                    low = starts & -starts
                    cell = low.bit_length() - 1
                    starts ^= low
                    local = datetime.combine(day, _time_of(cell), tz)
                    begin = local.astimezone(UTC)
                    if begin.astimezone(tz).time() != local.time():
                        continue  # a wall time the clocks skip (02:xx on the spring change)
                    slots.append(
                        Slot(
                            begin,
                            begin + duration,
                            advisor_id,
                            sites[advisor_id],
                            motive.pk,
                            channel,
                            mode,
                        )
                    )
        if not per_advisor:
            pending = [day for day in pending if covered[day] != possible[day]]
    slots.sort(key=lambda slot: (slot.start, slot.advisor_id))
    return slots


ADVISORS_PER_READ = 8


def _office_team(cpam, motive, channel, site_id, advisor_ids) -> tuple[dict, dict]:
    """The advisors who may take the search ({advisor: site}) and their weekly ranges
    ({advisor: [(weekday, first cell, end cell, valid from, valid until)]}).

    They change rarely (a supervisor's edit bumps the office's version): a
    whole-office read is cached under that version.
    """
    key = None
    if advisor_ids is None:
        version = cache.get(f"agenda:v:{cpam.pk}", 0)
        key = f"agenda:t:{cpam.pk}:{version}:{motive.pk}:{channel}:{site_id or ''}"
        cached = cache.get(key)
        if cached is not None:
            return cached
    advisors = Advisor.objects.filter(
        staff__cpam=cpam, staff__is_active=True, motives=motive, **{channel: True}
    )
    if site_id is not None:
        advisors = advisors.filter(site_id=site_id)
    if advisor_ids is not None:
        advisors = advisors.filter(pk__in=advisor_ids)
    sites = dict(advisors.values_list("pk", "site_id"))
    ranges: dict[int, list] = defaultdict(list)
    for row in (
        OpeningRange.objects.filter(advisor_id__in=sites)
        .filter(Q(channel="") | Q(channel=channel))
        .values_list("advisor_id", "weekday", "start_time", "end_time", "valid_from", "valid_until")
    ):
        advisor_id, weekday, t0, t1, valid_from, valid_until = row
        # A range covers only the whole cells inside it: 09:03–11:57 is 09:05–11:55.
        ranges[advisor_id].append((weekday, _cell(t0, up=True), _cell(t1), valid_from, valid_until))
    team = (sites, dict(ranges))
    if key is not None:
        cache.set(key, team, SEARCH_CACHE_SECONDS)
    return team


def _chunks(items: list, size: int):
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _weekly(advisor_ranges, k: int) -> tuple[list[tuple[int, int]], list]:
    """An advisor's (free cells, slot grid) per weekday; or, when some range is
    only valid for a period, those ranges to evaluate day by day."""
    if any(valid_from or valid_until for _, _, _, valid_from, valid_until in advisor_ranges):
        return [], list(advisor_ranges)
    week = [(0, 0)] * 7
    for wd, c0, c1, _, _ in advisor_ranges:
        free, grid = week[wd]
        week[wd] = (free | _bits(c0, c1), grid | _grid(c0, c1, k))
    return week, []


def _opening(day_ranges, day: date, k: int) -> tuple[int, int]:
    """The open cells and the slot grid of one advisor on one day."""
    free = grid = 0
    weekday = day.weekday()
    for wd, c0, c1, valid_from, valid_until in day_ranges:
        if (
            wd != weekday
            or (valid_from and day < valid_from)
            or (valid_until and day > valid_until)
        ):
            continue
        free |= _bits(c0, c1)
        grid |= _grid(c0, c1, k)
    return free, grid


def _busy(advisor_ids, window_start, window_end, ignore, tz) -> dict:
    """The times these advisors are held by appointments, by (advisor, local day)."""
    booked = Appointment.objects.filter(
        advisor_id__in=advisor_ids,
        status__in=BUSY_STATUSES,
        starts_at__lt=window_end,
        ends_at__gt=window_start,
    )
    if ignore is not None:
        booked = booked.exclude(pk=ignore)
    busy = defaultdict(list)
    for advisor_id, s, e in booked.values_list("advisor_id", "starts_at", "ends_at"):
        first, last = s.astimezone(tz).date(), e.astimezone(tz).date()
        busy[advisor_id, first].append((s, e))
        if last != first:
            busy[advisor_id, last].append((s, e))
    return busy


# --- the search cache -------------------------------------------------------------------------
#
# Searches are cached day by day (many members look at the same weeks). A
# day's entry carries three versions: the office's (bumped when its ranges or
# advisors change), the day's (bumped by an appointment booked, moved,
# cancelled or finished that day, or an absence over it) and, for relay
# searches, the relay service's (shared by every office). A change bumps its
# version at once and again after the commit, so that a search computed
# meanwhile from the old rows is not kept; after a booking only that day is
# computed again. With a cache shared by all web processes (Redis in
# production) nothing stale is served; with a per-process cache, another
# process may show a taken slot for at most SEARCH_CACHE_SECONDS. Bookings
# never use the cache: they check the slot again, and the database has the
# last word.

SEARCH_CACHE_SECONDS = 30


RELAY_VERSION_KEY = "agenda:v:relay"
# Versions live until changed: a missing one reads as 0, as after a cache restart.
VERSION_SECONDS = None


def availability_changed(cpam_id: int | None, days: list[date] | None = None) -> None:
    """The office's availability changed on these days (office-local), or on any day."""
    if cpam_id is None:
        return
    if days is None:
        _bump([f"agenda:v:{cpam_id}"])
    else:
        _bump([f"agenda:vd:{cpam_id}:{day.isoformat()}" for day in set(days)])


def relay_availability_changed() -> None:
    """The relay service is shared by every office: its changes void every relay search."""
    _bump([RELAY_VERSION_KEY])


def _bump(keys: list[str]) -> None:
    def bump():
        for key in keys:
            try:
                cache.incr(key)
            except ValueError:
                cache.set(key, 1, VERSION_SECONDS)

    bump()
    transaction.on_commit(bump)


def day_cache_keys(cpam_id, motive, channel, site_id, mode, days) -> dict[date, str]:
    """One cache key per day, carrying the office's, the day's (and the relay's) versions."""
    office = f"agenda:v:{cpam_id}"
    day_keys = {day: f"agenda:vd:{cpam_id}:{day.isoformat()}" for day in days}
    versions = cache.get_many([office, RELAY_VERSION_KEY, *day_keys.values()])
    common = f"{versions.get(office, 0)}"
    if channel == Channel.RELAY:
        common += f".{versions.get(RELAY_VERSION_KEY, 0)}"
    what = f"{motive.pk}:{motive.duration_minutes}:{channel}{mode}:{site_id or ''}"
    return {
        day: f"agenda:d:{cpam_id}:{common}.{versions.get(day_keys[day], 0)}:{what}:{day.isoformat()}"
        for day in days
    }


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
        mode=slot.mode,
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
    mode: str = "",
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
        mode=mode,
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
