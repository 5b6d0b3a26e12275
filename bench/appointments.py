"""Appointments: slot search against `GET /healthz`, and booking under contention: `make bench`.

1. Slot search. A CPAM with --advisors advisors (default 200) on six sites,
   with realistic weekly ranges (full time, mornings, afternoons, four days
   a week, phone mornings and on-site afternoons), every one serving the
   searched motive (Arrêt de travail / IJ, 20 minutes) and four to eight of
   the nine others, a week of leave for one in twenty, and about 30 % of
   their open time over the horizon already booked (appointments of their
   motives, 15 to 30 minutes; the measured share is reported). One client
   sends, one at a time and in random order within each pair, `GET /healthz`
   and `GET /api/v1/appointments/slots` for the motive by phone over the 6
   weeks of its horizon, --pairs pairs in each of --rounds rounds. Reported:
   the median and p95 latency of each and the ratio of the medians search ÷
   healthz (goal: 5 or less), with the ratio of each round to show the noise.

   Identical searches are cached per office until its availability changes
   (`portal/appointments/slots.py`), and at a busy office every booking,
   cancellation or absence changes it: the goal is judged on the computed
   search, a server whose cache is `dummycache://` ("cold"). The same
   measure then runs against a server with the default cache and the same
   search repeated ("warm", a cache hit after each worker's first search).

2. Booking under contention, on PostgreSQL (a throwaway cluster started by
   scripts/postgres-local.sh in a temporary directory, stopped and deleted
   at the end; without PostgreSQL this part is skipped, said so, and only
   the search is measured). One advisor is free for --slots slots (default
   20, 30 minutes each) on one day; --clients client threads (default 200),
   each a different member with their own bearer token and their own HTTP
   connection, wait at a barrier and then all `POST /api/v1/appointments`,
   client i on slot i mod 20. Checked: exactly 20 answers 201 and the others
   409 `slot_taken`, and the database holds 20 appointments of the advisor,
   none overlapping another, with 6 lock rows each. Reported: bookings per
   second (the bookings ÷ the time until the last of the 200 answers), the
   409 count, and the time until the slots were all gone. --contention-rounds
   rounds (default 3), each on its own day and motive (a member may hold
   three upcoming appointments, one per motive). The server has
   2 × cores + 1 sync workers (gunicorn's advice), so that bookings really
   run side by side in the database.

Both servers are gunicorn with DEBUG and DEMO off, on a free loopback port;
no task worker runs (the emails and reminders a booking queues stay
queued). The search runs on SQLite, like the other benches, so that its
ratio compares across machines without PostgreSQL. The clients share the
machine with the server.

With --profile, the cold search is also profiled in-process (pyinstrument)
and the profile printed. The result is appended to docs/performance.md
(--no-record to skip).
"""

import argparse
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from multiprocessing import get_context
from pathlib import Path
from urllib.parse import urlencode

from bench.common import (
    BASE_DIR,
    RESULTS,
    fetch,
    free_listener,
    log,
    machine_cells,
    print_log_tail,
    quantile_ms,
    record,
    server_environment,
    start_server,
    stop_server,
    usable_cores,
)

TIME_LIMIT = 240  # seconds, for the whole run
GOAL = 5.0  # search median ÷ healthz median, at most
MOTIVE = "arret-travail-ij"
SEARCH_DAYS = 42  # 6 weeks
BOOKED_SHARE = 0.3
CONTENTION_MOTIVES = ["at-mp", "capital-deces", "css", "pension-invalidite", "artistes-auteurs"]
SLOT_MINUTES = 30  # the duration of the contention motives
POSTGRES_SCRIPT = BASE_DIR / "scripts" / "postgres-local.sh"
HEALTHZ = "/healthz"
SLOTS_PATH = "/api/v1/appointments/slots"
BOOK_PATH = "/api/v1/appointments"

COLUMNS = [
    "Date (UTC)",
    "Machine",
    "CPU",
    "Cores",
    "Python",
    "Search: data and server",
    "Load average before",
    "Cold search p50 / p95 (ms), slots",
    "healthz p50 / p95 (ms)",
    "Cold ratio (rounds' range)",
    "Warm search p50 (ms), ratio",
    "Contention (PostgreSQL)",
    "Bookings/s (rounds' range)",
]
RESULTS_HEADING = "## Appointments: slot search and booking under contention"
RESULTS_INTRO = """\
`make bench` (see `bench/appointments.py`) measures the agenda on real
servers (gunicorn, DEBUG and DEMO off). **Slot search**: a CPAM with 200
advisors on six sites, with realistic weekly ranges (full time, mornings,
afternoons, four days a week, phone mornings and on-site afternoons), all
serving the searched motive (Arrêt de travail / IJ, 20 minutes) and four to
eight others, a week of leave for one in twenty, and about 30 % of their open
time over the horizon already booked. One client alternates, in random order
within each pair, `GET /healthz` and `GET /api/v1/appointments/slots` for that
motive by phone over its 6-week horizon; the **ratio of the median latencies**
search ÷ healthz should be 5 or less. Identical searches are cached per office
until its availability changes, which at a busy office every booking does: the
goal is judged on the computed search (a server with `CACHE_URL=dummycache://`,
"cold"); the same search repeated against the default cache ("warm") is
reported beside it. The search runs on SQLite, so that its ratio compares
across machines.

**Booking under contention**, on PostgreSQL (a throwaway cluster started by
`scripts/postgres-local.sh`; skipped, and said so, where there is none): one
advisor is free for 20 slots of 30 minutes on one day; 200 client threads,
each a different member with their own bearer token and HTTP connection, wait
at a barrier and all `POST /api/v1/appointments` at once, ten on each slot.
Exactly 20 must answer 201 and the 180 others 409 `slot_taken`, and the
database must then hold 20 appointments of that advisor, none overlapping
another; a run that sees anything else fails and records nothing. Reported:
**bookings per second** (the 20 bookings ÷ the time until the last of the 200
answers), and how soon the 20 slots were gone. Three rounds, each on its own
day and motive, after a warm-up booking per worker on another day; the server
has 2 × cores + 1 sync workers so that bookings really run side by side in the
database.

Numbers are noisy on shared or virtual machines: trust ratios whose rounds
agree, taken on an idle machine (the 1-minute load average before the run is
in the row), and compare several runs. Each run appends a row to the table
below.
"""


# --- the data (in a child process: each part has its own database) ----------


def in_child(env: dict[str, str], function, *args):
    """Run `function(*args)` in a fresh process whose environment includes `env`.

    Django reads its settings, the database among them, once per process:
    the SQLite database of the search and the PostgreSQL one of the
    contention are each prepared and checked by a process of their own.
    """
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
            return pool.submit(function, *args).result()
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _django_setup() -> None:
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _accounts(cpam, count: int, mobile: bool = True) -> list:
    """`count` active accounts of members of `cpam` (one password hash for all, never used)."""
    from django.utils import timezone as django_timezone

    from portal.accounts.models import Account
    from portal.members.models import Member
    from portal.members.nir import key_for
    from tests.factories import MemberFactory, random_nir13

    nirs: set[str] = set()
    while len(nirs) < count:
        nirs.add(random_nir13())
    members = Member.objects.bulk_create(
        MemberFactory.build(nir=nir + key_for(nir), cpam=cpam) for nir in sorted(nirs)
    )
    now = django_timezone.now()
    return Account.objects.bulk_create(
        Account(
            member=member,
            nir=member.nir[:13],
            email=member.email,
            mobile_phone="+33612345678" if mobile else "",
            state=Account.State.ACTIVE,
            activated_at=now,
            password="!",  # noqa: S106 (an unusable password: nobody logs in)
        )
        for member in members
    )


def _staff(cpam, count: int, prefix: str) -> list:
    from portal.staff.models import Staff

    return Staff.objects.bulk_create(
        Staff(
            email=f"{prefix}{i:03d}@caisse.example",
            first_name="Conseiller",
            last_name=f"{prefix.title()} {i:03d}",
            role=Staff.Role.PHONE_ADVISOR,
            cpam=cpam,
            password="!",  # noqa: S106 (an unusable password: nobody logs in)
        )
        for i in range(count)
    )


# Weekly ranges (wall clock): (weight, name, [(weekdays, start, end, channel)]).
TEMPLATES = [
    (40, "full time", [(range(5), "08:30", "12:00", ""), (range(5), "13:30", "16:30", "")]),
    (15, "mornings", [(range(5), "08:30", "12:30", "")]),
    (20, "four days", [(None, "09:00", "12:00", ""), (None, "13:30", "17:00", "")]),
    (10, "afternoons", [(range(5), "13:00", "17:00", "")]),
    (
        15,
        "phone mornings, on-site afternoons",
        [(range(5), "08:30", "12:00", "phone"), (range(5), "13:30", "16:30", "on_site")],
    ),
]


@dataclass
class SearchData:
    token: str
    churn_token: str  # a member without appointments, who books and cancels (after a booking)
    path: str  # the search's path and query
    advisors: int
    matching: int  # advisors who serve the motive by phone
    appointments: int
    booked_share: float
    window: str


def prepare_search(advisors: int, seed: int) -> SearchData:
    """Migrate the SQLite database and fill the office; return a member's token and the query."""
    _django_setup()
    from datetime import date, time, timedelta

    from django.db import connections

    from portal.accounts.services import api_token_issue
    from portal.appointments import calendar, slots
    from portal.appointments.models import (
        Absence,
        Advisor,
        Appointment,
        Motive,
        OpeningRange,
        Site,
    )
    from tests.factories import CpamFactory

    rng = random.Random(seed)
    cpam = CpamFactory()
    tz = calendar.zone(cpam)
    sites = Site.objects.bulk_create(
        Site(
            cpam=cpam,
            name=f"Accueil {n}",
            address=f"{n} rue de la Santé",
            postal_code="75013",
            city="Paris",
        )
        for n in range(1, 7)
    )
    accounts = _accounts(cpam, 1000)
    motives = list(Motive.objects.all())
    searched = next(m for m in motives if m.code == MOTIVE)
    others = [m for m in motives if m is not searched]
    staff = _staff(cpam, advisors, "agenda")
    rows = []
    for person in staff:
        phone = rng.random() < 0.9
        on_site = not phone or rng.random() < 0.6
        rows.append(Advisor(staff=person, site=rng.choice(sites), phone=phone, on_site=on_site))
    team = Advisor.objects.bulk_create(rows)
    served: dict[int, list] = {}
    through = []
    for advisor in team:
        served[advisor.pk] = [searched, *rng.sample(others, rng.randint(4, 8))]
        through += [
            Advisor.motives.through(advisor_id=advisor.pk, motive_id=m.pk)
            for m in served[advisor.pk]
        ]
    Advisor.motives.through.objects.bulk_create(through)

    weights = [weight for weight, _, _ in TEMPLATES]
    ranges = []
    week: dict[int, list[tuple[int, time, time, str]]] = {}
    for advisor in team:
        _, _, template = rng.choices(TEMPLATES, weights)[0]
        day_off = rng.randrange(5)
        week[advisor.pk] = []
        for weekdays, start, end, channel in template:
            days = weekdays if weekdays is not None else [d for d in range(5) if d != day_off]
            if channel and not getattr(advisor, channel):
                channel = ""
            for weekday in days:
                week[advisor.pk].append(
                    (weekday, time.fromisoformat(start), time.fromisoformat(end), channel)
                )
                ranges.append(
                    OpeningRange(
                        advisor=advisor,
                        weekday=weekday,
                        start_time=time.fromisoformat(start),
                        end_time=time.fromisoformat(end),
                        channel=channel,
                    )
                )
    OpeningRange.objects.bulk_create(ranges)

    first, last = slots.bookable_days(cpam, searched)
    today = datetime.now(tz).date()
    leave: dict[int, tuple[date, date]] = {}
    absences = []
    for advisor in rng.sample(team, max(1, advisors // 20)):
        begin = first + timedelta(days=rng.randrange(SEARCH_DAYS - 7))
        leave[advisor.pk] = (begin, begin + timedelta(days=6))
        absences.append(
            Absence(
                advisor=advisor,
                starts_at=datetime.combine(begin, time.min, tz),
                ends_at=datetime.combine(begin + timedelta(days=7), time.min, tz),
                reason="Congés",
                created_by="bench",
            )
        )
    Absence.objects.bulk_create(absences)

    # Book about BOOKED_SHARE of the open time: walking each range, a
    # position starts an appointment with probability p, else 20 free minutes.
    # p·d = share·(p·d + (1 − p)·20), with d the mean duration of the motives.
    mean = statistics.fmean(m.duration_minutes for m in motives)
    p = BOOKED_SHARE * 20 / (mean * (1 - BOOKED_SHARE) + BOOKED_SHARE * 20)
    appointments = []
    open_minutes = booked_minutes = 0
    day = today
    while day <= last + timedelta(days=1):
        if calendar.is_public_holiday(cpam.department, day):
            day += timedelta(days=1)
            continue
        for advisor in team:
            away = leave.get(advisor.pk)
            if away and away[0] <= day <= away[1]:
                continue
            for weekday, start, end, channel in week[advisor.pk]:
                if weekday != day.weekday():
                    continue
                at = datetime.combine(day, start, tz)
                finish = datetime.combine(day, end, tz)
                open_minutes += (finish - at).total_seconds() / 60
                while at < finish:
                    motive = rng.choice(served[advisor.pk])
                    length = timedelta(minutes=motive.duration_minutes)
                    if rng.random() < p and at + length <= finish:
                        kinds = [c for c in ("phone", "on_site") if getattr(advisor, c)]
                        appointments.append(
                            Appointment(
                                member=rng.choice(accounts).member,
                                motive=motive,
                                channel=channel or rng.choice(kinds),
                                advisor=advisor,
                                site_id=advisor.site_id,
                                starts_at=at,
                                ends_at=at + length,
                            )
                        )
                        booked_minutes += motive.duration_minutes
                        at += length
                    else:
                        at += timedelta(minutes=20)
        day += timedelta(days=1)
    Appointment.objects.bulk_create(appointments, batch_size=2000)

    token, _ = api_token_issue(account=accounts[0], ip="127.0.0.1")
    [churner] = _accounts(cpam, 1)
    churn_token, _ = api_token_issue(account=churner, ip="127.0.0.1")
    matching = Advisor.objects.filter(motives=searched, phone=True).count()
    to = first + timedelta(days=SEARCH_DAYS - 1)
    query = urlencode(
        {"motive": MOTIVE, "channel": "phone", "from": first.isoformat(), "to": to.isoformat()}
    )
    connections.close_all()
    return SearchData(
        token=token,
        churn_token=churn_token,
        path=f"{SLOTS_PATH}?{query}",
        advisors=len(team),
        matching=matching,
        appointments=len(appointments),
        booked_share=booked_minutes / open_minutes,
        window=f"{first.isoformat()}–{min(to, last).isoformat()}",
    )


@dataclass
class ContentionData:
    tokens: list[str]
    days: list[str]  # one per round
    motives: list[str]
    advisor_id: int
    # Other members who book first, on a day of their own, so that every
    # worker has run a booking (templates, imports) before the clock starts.
    warm_up_tokens: list[str]
    warm_up_day: str
    warm_up_motive: str


def prepare_contention(clients: int, slot_count: int, rounds: int, warm_ups: int) -> ContentionData:
    """Migrate the PostgreSQL database: one advisor free for `slot_count` slots on each of
    `rounds` days and a warm-up day, `clients` members and `warm_ups` others, with a token
    each."""
    _django_setup()
    from datetime import time, timedelta

    from django.db import connections

    from portal.accounts.services import api_token_issue
    from portal.appointments import calendar, slots
    from portal.appointments.models import Advisor, Motive, OpeningRange, Site
    from tests.factories import CpamFactory

    cpam = CpamFactory()
    site = Site.objects.create(
        cpam=cpam, name="Accueil", address="1 rue de la Santé", postal_code="75013", city="Paris"
    )
    codes = CONTENTION_MOTIVES[: rounds + 1]
    motives = sorted(Motive.objects.filter(code__in=codes), key=lambda m: codes.index(m.code))
    if len(motives) <= rounds or {m.duration_minutes for m in motives} != {SLOT_MINUTES}:
        raise RuntimeError(f"the contention needs {rounds + 1} motives of {SLOT_MINUTES} minutes")
    advisor = Advisor.objects.create(staff=_staff(cpam, 1, "contention")[0], site=site)
    advisor.motives.set(motives)
    first, last = slots.bookable_days(cpam, motives[0])
    days = []
    day = first + timedelta(days=1)
    while len(days) <= rounds and day <= last:
        if calendar.is_working_day(cpam.department, day):
            days.append(day)
        day += timedelta(days=1)
    start = time(8, 0)
    end = time(8 + slot_count * SLOT_MINUTES // 60, slot_count * SLOT_MINUTES % 60)
    for day in days:
        # A range valid for that day only: the advisor's whole availability.
        OpeningRange.objects.create(
            advisor=advisor,
            weekday=day.weekday(),
            start_time=start,
            end_time=end,
            valid_from=day,
            valid_until=day,
        )
    tokens = [
        api_token_issue(account=account, ip="127.0.0.1")[0]
        for account in _accounts(cpam, clients + warm_ups)
    ]
    connections.close_all()
    return ContentionData(
        tokens=tokens[:clients],
        days=[d.isoformat() for d in days[1:]],
        motives=[m.code for m in motives[1:]],
        advisor_id=advisor.pk,
        warm_up_tokens=tokens[clients:],
        warm_up_day=days[0].isoformat(),
        warm_up_motive=motives[0].code,
    )


def check_contention(advisor_id: int) -> dict:
    """What the database holds after the bookings: counts, and the overlaps (none expected)."""
    import django

    django.setup()
    from django.db import connections

    from portal.appointments.models import AdvisorTimeLock, Appointment

    booked = list(
        Appointment.objects.filter(advisor_id=advisor_id)
        .order_by("starts_at")
        .values_list("starts_at", "ends_at", "status")
    )
    overlaps = sum(
        1 for (_, end, _), (start, _, _) in zip(booked, booked[1:], strict=False) if start < end
    )
    per_day = Counter(start.date().isoformat() for start, _, _ in booked)
    result = {
        "per_day": dict(per_day),
        "appointments": len(booked),
        "booked": sum(1 for *_, status in booked if status == Appointment.Status.BOOKED),
        "overlaps": overlaps,
        "locks": AdvisorTimeLock.objects.filter(advisor_id=advisor_id).count(),
    }
    connections.close_all()
    return result


def profile_search(path: str, token: str, count: int) -> str:
    """The cold search run `count` times in-process under pyinstrument: its text report."""
    try:
        from pyinstrument import Profiler
    except ImportError:
        return "pyinstrument is not installed: .venv/bin/pip install pyinstrument"
    import django

    django.setup()
    from django.test import Client

    client = Client(HTTP_HOST="localhost")
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    client.get(path, **headers)  # imports and first-use costs out of the profile
    profiler = Profiler(interval=0.0005)
    profiler.start()
    for _ in range(count):
        response = client.get(path, **headers)
        if response.status_code != 200:
            raise RuntimeError(f"profiled search: HTTP {response.status_code}")
    profiler.stop()
    return profiler.output_text(unicode=True, color=False, show_all=False)


# --- 1. slot search against healthz ------------------------------------------


@dataclass
class Latencies:
    search: list[list[float]] = field(default_factory=list)  # per round
    healthz: list[list[float]] = field(default_factory=list)
    slots: int = 0
    size: int = 0  # bytes of the search's answer
    errors: Counter = field(default_factory=Counter)

    def all(self, kind: str) -> list[float]:
        return [x for part in getattr(self, kind) for x in part]

    def median_ms(self, kind: str) -> float:
        return statistics.median(self.all(kind)) * 1000

    @property
    def ratio(self) -> float:
        return statistics.median(self.all("search")) / statistics.median(self.all("healthz"))

    def round_ratios(self) -> list[float]:
        return [
            statistics.median(s) / statistics.median(h)
            for s, h in zip(self.search, self.healthz, strict=True)
        ]

    def cell(self, kind: str) -> str:
        values = self.all(kind)
        return f"{quantile_ms(values, 0.5):.1f} / {quantile_ms(values, 0.95):.1f}"


def measure_search(
    port: int, data: SearchData, pairs: int, rounds: int, seed: int, churn=None
) -> Latencies:
    """One client, one request at a time: healthz and the search, in random order per pair.

    `churn`, when given, runs (untimed) before each pair: a booking and its
    cancellation, which void the cached search of that booking's day.
    """
    headers = {"Authorization": f"Bearer {data.token}"}
    result = Latencies()
    shuffle = random.Random(seed).shuffle  # the same order from run to run
    for _ in range(rounds):
        search: list[float] = []
        healthz: list[float] = []
        for _ in range(pairs):
            if churn is not None:
                churn()
            pair = [("search", data.path, headers, search), ("healthz", HEALTHZ, {}, healthz)]
            shuffle(pair)
            for kind, path, extra, latencies in pair:
                sent = time.perf_counter()
                try:
                    reply = fetch(port, "GET", path, headers=extra)
                except OSError as exc:
                    result.errors[f"{kind}: {type(exc).__name__}"] += 1
                    continue
                elapsed = time.perf_counter() - sent
                if reply.status != 200:
                    result.errors[f"{kind}: HTTP {reply.status}"] += 1
                    continue
                latencies.append(elapsed)
                if kind == "search":
                    result.size = len(reply.body)
                    result.slots = len(json.loads(reply.body))
        result.search.append(search)
        result.healthz.append(healthz)
    return result


def wait_until_ready(server: subprocess.Popen, port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"gunicorn exited with status {server.returncode}")
        try:
            if fetch(port, "GET", HEALTHZ).status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"gunicorn did not answer within {timeout:.0f} s")


def serve(env: dict[str, str], workers: int, tmp: Path, name: str, work):
    """Start gunicorn, wait until it answers, run `work(port)`, stop it (its log tail on error)."""
    listener = free_listener()
    port = listener.getsockname()[1]
    server_log = tmp / f"gunicorn-{name}.log"
    log(f"Starting gunicorn ({name}): {workers} sync workers on 127.0.0.1:{port}")
    server = start_server(listener, workers, env, server_log)
    listener.close()  # gunicorn has its own copy
    try:
        wait_until_ready(server, port)
        return work(port)
    except BaseException:
        print_log_tail(server_log)
        raise
    finally:
        stop_server(server)


def search_phase(
    args: argparse.Namespace,
    env: dict[str, str],
    tmp: Path,
    data: SearchData,
    name: str,
    churning: bool = False,
) -> Latencies:
    def work(port: int) -> Latencies:
        # Every worker loads the application (and, warm, caches the search) first.
        measure_search(port, data, pairs=4 * args.workers, rounds=1, seed=0)
        churn = booking_churn(port, data) if churning else None
        result = measure_search(port, data, args.pairs, args.rounds, seed=2026, churn=churn)
        log(
            f"  {name}: search p50 {result.median_ms('search'):.1f} ms, healthz p50 "
            f"{result.median_ms('healthz'):.2f} ms, ratio {result.ratio:.1f} "
            f"({result.slots} slots, {result.size / 1024:.0f} KiB)"
        )
        return result

    return serve(env, args.workers, tmp, name, work)


def booking_churn(port: int, data: SearchData):
    """Book a random slot of the search, then cancel it: the day's cached search is void."""
    headers = {"Authorization": f"Bearer {data.churn_token}", "Content-Type": "application/json"}
    reply = fetch(port, "GET", data.path, headers=headers)
    slots = json.loads(reply.body)
    motive = re.search(r"motive=([\w-]+)", data.path)[1]
    pick = random.Random(7).choice

    def churn() -> None:
        slot = pick(slots)["slot"]
        body = json.dumps({"slot": slot, "motive": motive, "channel": "phone"})
        booked = fetch(port, "POST", BOOK_PATH, body, headers)
        if booked.status != 201:
            raise OSError(f"churn booking: HTTP {booked.status} {booked.body[:200]!r}")
        appointment = json.loads(booked.body)["id"]
        cancelled = fetch(port, "POST", f"{BOOK_PATH}/{appointment}/cancel", "", headers)
        if cancelled.status != 200:
            raise OSError(f"churn cancellation: HTTP {cancelled.status}")

    return churn


# --- 2. booking under contention ---------------------------------------------


@dataclass
class Burst:
    statuses: Counter
    errors: Counter  # 409s other than slot_taken, transport errors
    elapsed: float  # until the last answer
    sold_out: float  # until the last 201
    booked: int
    client_cpu: float  # CPU seconds the client threads used

    @property
    def per_second(self) -> float:
        return self.booked / self.elapsed

    @property
    def answers_per_second(self) -> float:
        return sum(self.statuses.values()) / self.elapsed


def burst(port: int, tokens: list[str], slot_ids: list[str], motive: str) -> Burst:
    """Every client posts at once, client i on slot i mod len(slot_ids)."""
    lock = threading.Lock()
    statuses: Counter = Counter()
    errors: Counter = Counter()
    answered: list[tuple[float, int]] = []
    window: dict[str, float] = {}

    def open_window() -> None:
        window["start"] = time.perf_counter()
        window["cpu"] = time.process_time()

    barrier = threading.Barrier(len(tokens), action=open_window)

    def client(i: int, token: str) -> None:
        body = json.dumps(
            {"slot": slot_ids[i % len(slot_ids)], "motive": motive, "channel": "phone"}
        )
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
        barrier.wait()
        try:
            reply = fetch(port, "POST", BOOK_PATH, body, headers)
        except OSError as exc:
            with lock:
                errors[type(exc).__name__] += 1
            return
        at = time.perf_counter()
        error = ""
        if reply.status == 409:
            error = json.loads(reply.body).get("error", "")
            if error != "slot_taken":
                error = f"409 {error}"
        elif reply.status != 201:
            error = f"HTTP {reply.status}"
        with lock:
            statuses[reply.status] += 1
            answered.append((at, reply.status))
            if error and error != "slot_taken":
                errors[error] += 1

    threads = [
        threading.Thread(target=client, args=(i, token), daemon=True)
        for i, token in enumerate(tokens)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    client_cpu = time.process_time() - window["cpu"]
    start = window["start"]
    last = max(at for at, _ in answered) - start
    booked = [at for at, status in answered if status == 201]
    return Burst(
        statuses,
        errors,
        last,
        max(booked) - start if booked else float("nan"),
        len(booked),
        client_cpu,
    )


@dataclass
class Contention:
    bursts: list[Burst]
    database: dict
    errors: Counter

    @property
    def per_second(self) -> float:
        return sum(b.booked for b in self.bursts) / sum(b.elapsed for b in self.bursts)

    @property
    def answers_per_second(self) -> float:
        answers = sum(sum(b.statuses.values()) for b in self.bursts)
        return answers / sum(b.elapsed for b in self.bursts)

    @property
    def client_cores(self) -> float:
        return sum(b.client_cpu for b in self.bursts) / sum(b.elapsed for b in self.bursts)


def contention_workers() -> int:
    """Gunicorn's advice, 2 × cores + 1: bookings wait on the database, not only on the CPU."""
    return 2 * usable_cores() + 1


def free_slot_ids(port: int, token: str, motive: str, day: str) -> list[str]:
    query = urlencode({"motive": motive, "channel": "phone", "from": day, "to": day})
    reply = fetch(
        port, "GET", f"{SLOTS_PATH}?{query}", headers={"Authorization": f"Bearer {token}"}
    )
    if reply.status != 200:
        raise RuntimeError(f"slots of {day}: HTTP {reply.status}")
    return [slot["slot"] for slot in json.loads(reply.body)]


def contention_phase(
    args: argparse.Namespace, env: dict[str, str], tmp: Path, data: ContentionData
) -> Contention:
    errors: Counter = Counter()

    def work(port: int) -> list[Burst]:
        # Every worker books once (its first booking loads templates) before the clock starts.
        slot_ids = free_slot_ids(port, data.tokens[0], data.warm_up_motive, data.warm_up_day)
        warm_up = burst(port, data.warm_up_tokens, slot_ids, data.warm_up_motive)
        if warm_up.booked != len(data.warm_up_tokens):
            errors[f"warm-up: {dict(warm_up.statuses)}"] += 1
        bursts = []
        for day, motive in zip(data.days, data.motives, strict=True):
            slot_ids = free_slot_ids(port, data.tokens[0], motive, day)
            if len(slot_ids) != args.slots:
                raise RuntimeError(f"{day}: {len(slot_ids)} free slots, {args.slots} expected")
            result = burst(port, data.tokens, slot_ids, motive)
            log(
                f"  {day} ({motive}): {dict(result.statuses)} in {result.elapsed:.2f} s, "
                f"{result.per_second:.1f} bookings/s, slots gone after {result.sold_out:.2f} s"
            )
            if result.booked != args.slots:
                errors[f"{day}: {result.booked} bookings, {args.slots} expected"] += 1
            if result.statuses[409] != args.clients - args.slots:
                errors[f"{day}: {result.statuses[409]} answers 409"] += 1
            errors.update(result.errors)
            bursts.append(result)
        return bursts

    bursts = serve(env, contention_workers(), tmp, "contention, PostgreSQL", work)
    database = in_child(env, check_contention, data.advisor_id)
    for day in data.days:
        if database["per_day"].get(day) != args.slots:
            errors[f"database: {database['per_day'].get(day)} appointments on {day}"] += 1
    expected = args.slots * len(data.days) + len(data.warm_up_tokens)
    if database["appointments"] != expected or database["booked"] != expected:
        errors[f"database: {database['appointments']} appointments, {expected} expected"] += 1
    if database["overlaps"]:
        errors[f"database: {database['overlaps']} overlapping appointments"] += 1
    if database["locks"] != expected * SLOT_MINUTES // 5:
        errors[
            f"database: {database['locks']} lock rows, {expected * SLOT_MINUTES // 5} expected"
        ] += 1
    return Contention(bursts, database, errors)


# --- PostgreSQL --------------------------------------------------------------


def postgres_available() -> bool:
    return bool(shutil.which("initdb")) or any(Path("/usr/lib/postgresql").glob("*/bin/initdb"))


class Postgres:
    """A throwaway cluster (scripts/postgres-local.sh) in a short temporary directory."""

    def __enter__(self) -> "Postgres":
        # The unix socket's path must stay short: not under a long TMPDIR.
        self.directory = Path(tempfile.mkdtemp(prefix="portal-bench-pg-", dir="/tmp"))
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        log(f"Starting a throwaway PostgreSQL cluster in {self.directory} on port {port}")
        try:
            started = subprocess.run(  # noqa: S603 (our own script)
                [str(POSTGRES_SCRIPT), "start", str(self.directory), str(port)],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
        except BaseException:
            self._remove()
            raise
        if started.returncode != 0:
            self.__exit__()
            raise RuntimeError(f"PostgreSQL did not start:\n{started.stderr.strip()}")
        self.url = started.stdout.strip()
        return self

    def __exit__(self, *exc_info) -> None:
        subprocess.run(  # noqa: S603 (our own script)
            [str(POSTGRES_SCRIPT), "stop", str(self.directory)],
            capture_output=True,
            timeout=120,
            check=False,
        )
        self._remove()

    def _remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


# --- the run -----------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.appointments", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--workers", type=int, default=usable_cores(), help="search: workers")
    parser.add_argument("--advisors", type=int, default=200, help="search: advisors (200)")
    parser.add_argument("--pairs", type=int, default=40, help="search: pairs per round (40)")
    parser.add_argument("--rounds", type=int, default=3, help="search: rounds (3)")
    parser.add_argument("--clients", type=int, default=200, help="contention: clients (200)")
    parser.add_argument("--slots", type=int, default=20, help="contention: free slots (20)")
    parser.add_argument(
        "--contention-rounds", type=int, default=3, help="contention: rounds (3, at most 3)"
    )
    parser.add_argument(
        "--no-postgres", action="store_true", help="skip the contention (PostgreSQL)"
    )
    parser.add_argument(
        "--profile", action="store_true", help="profile the cold search (pyinstrument)"
    )
    parser.add_argument(
        "--no-record", action="store_true", help="do not append to docs/performance.md"
    )
    args = parser.parse_args(argv)
    if min(args.workers, args.advisors, args.pairs, args.rounds, args.contention_rounds) < 1:
        parser.error("--workers, --advisors, --pairs and the rounds must be at least 1")
    if args.contention_rounds > 3:
        parser.error("--contention-rounds: at most 3 (a member holds three appointments)")
    if not 1 <= args.slots <= 28:
        parser.error("--slots: 1 to 28 (30-minute slots from 08:00 on one day)")
    if args.clients < args.slots:
        parser.error("--clients: at least as many as --slots")
    return args


def _time_limit_reached(signum, frame):
    raise TimeoutError(f"the bench took more than {TIME_LIMIT} s")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGALRM, _time_limit_reached)
    signal.alarm(TIME_LIMIT)
    load_before = os.getloadavg()[0]
    started_at = datetime.now(timezone.utc)  # noqa: UP017 (the project targets Python 3.10)
    contention: Contention | None = None
    skipped = ""

    with tempfile.TemporaryDirectory(prefix="portal-bench-") as tmp_name:
        tmp = Path(tmp_name)
        # No mail is sent (no worker runs), but DEMO=0 wants a mail server configured.
        base = {**server_environment(tmp), "EMAIL_URL": "smtp://127.0.0.1:9"}
        log(f"Preparing a SQLite database with {args.advisors} advisors in {tmp}")
        data = in_child(base, prepare_search, args.advisors, 2026)
        log(
            f"  {data.advisors} advisors ({data.matching} serve the motive by phone), "
            f"{data.appointments} appointments ({data.booked_share:.0%} of their open time "
            f"booked); searching {data.window}"
        )
        cold = search_phase(args, {**base, "CACHE_URL": "dummycache://"}, tmp, data, "cold")
        warm = search_phase(args, base, tmp, data, "warm")
        churned = search_phase(args, base, tmp, data, "after a booking", churning=True)
        profile = ""
        if args.profile:
            profile = in_child(
                {**base, "CACHE_URL": "dummycache://"}, profile_search, data.path, data.token, 20
            )

        if args.no_postgres:
            skipped = "skipped (--no-postgres)"
        elif not postgres_available():
            skipped = "skipped: no PostgreSQL found"
            print(
                "PostgreSQL server binaries not found (Debian: apt-get install postgresql): "
                "the booking under contention needs PostgreSQL and is NOT measured; "
                "only the slot search is.",
                file=sys.stderr,
            )
        else:
            with Postgres() as postgres:
                env = {**base, "DATABASE_URL": postgres.url}
                log(f"Preparing PostgreSQL: one advisor, {args.clients} members with a token")
                contention_data = in_child(
                    env,
                    prepare_contention,
                    args.clients,
                    args.slots,
                    args.contention_rounds,
                    min(args.slots, 2 * contention_workers()),
                )
                log(
                    f"Contention: {args.clients} clients on {args.slots} slots, "
                    f"{len(contention_data.days)} rounds"
                )
                contention = contention_phase(args, env, tmp, contention_data)
    signal.alarm(0)

    errors = (
        cold.errors
        + warm.errors
        + churned.errors
        + (contention.errors if contention else Counter())
    )
    ratios = cold.round_ratios()
    verdict = "met" if cold.ratio <= GOAL else "NOT met"
    print()
    print(
        f"Slot search, {data.advisors} advisors, {data.appointments} appointments "
        f"({data.booked_share:.0%} booked), {data.window}: {cold.slots} slots "
        f"({cold.size / 1024:.0f} KiB); 1 client, {args.rounds} × {args.pairs} pairs"
    )
    for name, result in (
        ("cold (computed)", cold),
        ("warm (cached)", warm),
        ("after a booking", churned),
    ):
        print(
            f"  {name:<16} search p50 {result.median_ms('search'):7.2f} ms "
            f"p95 {quantile_ms(result.all('search'), 0.95):7.2f} ms | healthz p50 "
            f"{result.median_ms('healthz'):5.2f} ms | ratio {result.ratio:6.2f} (rounds: "
            + ", ".join(f"{r:.2f}" for r in result.round_ratios())
            + ")"
        )
    print(
        f"  Goal: cold ratio <= {GOAL:g}: {verdict}; warm: "
        f"{'met' if warm.ratio <= GOAL else 'NOT met'}; after a booking: "
        f"{'met' if churned.ratio <= GOAL else 'NOT met'}"
    )
    if contention:
        database = contention.database
        print(
            f"Booking under contention (PostgreSQL), {args.clients} clients on {args.slots} "
            f"slots, {len(contention.bursts)} rounds:"
        )
        for result in contention.bursts:
            print(
                f"  {result.booked} bookings, {result.statuses[409]} × 409 slot_taken in "
                f"{result.elapsed:.2f} s: {result.per_second:.1f} bookings/s "
                f"(slots gone after {result.sold_out:.2f} s)"
            )
        print(
            f"  All rounds: {contention.per_second:.1f} bookings/s, "
            f"{contention.answers_per_second:.1f} answers/s; clients used "
            f"{contention.client_cores:.2f} core"
        )
        exact = not contention.errors
        print(
            f"  Database: {database['appointments']} appointments, {database['overlaps']} "
            f"overlapping, {database['locks']} lock rows: exactly {args.slots} per round "
            f"{'verified' if exact else 'NOT verified'}"
        )
    else:
        print(f"Booking under contention: {skipped}")
    if profile:
        print("\nProfile of the cold search (in-process, 20 searches):\n" + profile)
    if errors:
        print(f"Failures: {dict(errors)}: not recorded.", file=sys.stderr)
        return 1

    if not args.no_record:
        if contention:
            rates = [b.per_second for b in contention.bursts]
            contention_cell = (
                f"{args.clients} clients on {args.slots} slots × {len(contention.bursts)}, "
                f"{contention_workers()} workers: exactly {args.slots} bookings each, "
                f"{sum(b.statuses[409] for b in contention.bursts)} × 409, no overlap; "
                f"slots gone after "
                + ", ".join(f"{b.sold_out:.2f}" for b in contention.bursts)
                + f" s; {contention.answers_per_second:.0f} answers/s; clients used "
                f"{contention.client_cores:.2f} core"
            )
            rate_cell = f"**{contention.per_second:.1f}** ({min(rates):.1f}–{max(rates):.1f})"
        else:
            contention_cell, rate_cell = skipped, "–"
        record(
            heading=RESULTS_HEADING,
            intro=RESULTS_INTRO,
            columns=COLUMNS,
            row=[
                *machine_cells(started_at),
                f"{data.advisors} advisors, {data.appointments} appointments "
                f"({data.booked_share:.0%} booked), 6 weeks; SQLite, gunicorn "
                f"{args.workers} sync workers, 1 client, {args.rounds} × {args.pairs} pairs",
                f"{load_before:.2f}",
                f"{cold.cell('search')}, {cold.slots}",
                cold.cell("healthz"),
                f"**{cold.ratio:.1f}** ({min(ratios):.1f}–{max(ratios):.1f}; goal ≤ {GOAL:g}: "
                f"{verdict})",
                f"{warm.median_ms('search'):.1f}, **{warm.ratio:.1f}**; after a booking "
                f"{churned.median_ms('search'):.1f}, **{churned.ratio:.1f}**",
                contention_cell,
                rate_cell,
            ],
        )
        print(f"Recorded in {RESULTS.relative_to(BASE_DIR)}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
