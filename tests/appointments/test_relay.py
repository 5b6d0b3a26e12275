"""Relay appointments (LSF, TTRP, LfPC): an advisor and a relay professional in one booking,
the relay service's hours, and the provider of the video-call link."""

import hashlib
import hmac
import json
import threading
from dataclasses import dataclass, field
from datetime import date, time, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import time_machine
from django.db import connection, connections
from icalendar import Calendar

from portal.appointments import relay, services, slots
from portal.appointments.models import (
    AdvisorTimeLock,
    Appointment,
    Motive,
    RelayProfessional,
    RelayRange,
    RelayTimeLock,
)
from portal.audit.models import AuditEntry
from portal.members.models import Cpam
from tests.appointments.conftest import ensure_motives, make_advisor, paris, utc
from tests.factories import AccountFactory, MemberFactory

pytestmark = pytest.mark.django_db


def make_professional(modes=("lsf",), ranges=((time(8), time(18)),), weekdays=range(5)):
    professional = RelayProfessional.objects.create(
        name=f"Pro {RelayProfessional.objects.count()}", **{m: True for m in modes}
    )
    for weekday in weekdays:
        for start, end in ranges:
            RelayRange.objects.create(
                professional=professional, weekday=weekday, start_time=start, end_time=end
            )
    return professional


def relay_advisor(cpam, **kwargs):
    kwargs.setdefault("ranges", ((time(8), time(18)),))
    advisor = make_advisor(cpam, **kwargs)
    advisor.relay = True
    advisor.save()
    return advisor


def search(cpam, motive, day, mode="lsf", end=None):
    return slots.free_slots(
        cpam=cpam, motive=motive, channel="relay", start=day, end=end or day, mode=mode
    )


def book(account, slot, motive, mode="lsf"):
    return services.appointment_book(
        account=account,
        slot_id=slot.id,
        motive_code=motive.code,
        channel="relay",
        communication_mode=mode,
    )


def local(found):
    return [s.start.astimezone(paris(2026, 1, 1).tzinfo).strftime("%a %H:%M") for s in found]


# --- hours --------------------------------------------------------------------------------


def test_service_hours_default_and_format():
    hours = relay.service_hours("1-4 08:30-17:00; 5 08:30-16:00")
    assert hours[0] == hours[3] == [(time(8, 30), time(17))]
    assert hours[4] == [(time(8, 30), time(16))]
    assert 5 not in hours and 6 not in hours
    assert relay.service_hours("3 09:00-12:00 14:00-16:00")[2] == [
        (time(9), time(12)),
        (time(14), time(16)),
    ]
    for bad in ("lundi 9-17", "8 09:00-10:00", "1 10:00-09:00", "1-4"):
        with pytest.raises(relay.ServiceHoursInvalid):
            relay.service_hours(bad)


def test_relay_slots_stay_within_the_service_hours(now, cpam, motive):
    relay_advisor(cpam)
    make_professional()
    thursday = search(cpam, motive, date(2026, 11, 5))
    friday = search(cpam, motive, date(2026, 11, 6))
    # The advisor and the interpreter work 08:00–18:00; the service opens 08:30–17:00
    # (Friday 16:00).
    assert local(thursday)[0] == "Thu 08:40"  # the advisor's grid: 08:00 + n × 20 min
    assert local(thursday)[-1] == "Thu 16:40"
    assert local(friday)[-1] == "Fri 15:40"
    assert {s.channel for s in thursday} == {"relay"}
    assert {s.mode for s in thursday} == {"lsf"}


def test_relay_needs_a_professional_of_that_mode_and_an_advisor_who_does_relay(now, cpam, motive):
    make_advisor(cpam)  # does not do relay appointments
    make_professional(modes=("lsf",))
    assert search(cpam, motive, date(2026, 11, 5)) == []
    relay_advisor(cpam)
    assert search(cpam, motive, date(2026, 11, 5), mode="lfpc") == []
    assert search(cpam, motive, date(2026, 11, 5), mode="") == []
    assert search(cpam, motive, date(2026, 11, 5), mode="asl") == []
    assert len(search(cpam, motive, date(2026, 11, 5), mode="lsf")) == 25


def test_the_professionals_ranges_bound_the_slots(now, cpam, motive):
    relay_advisor(cpam)
    make_professional(ranges=((time(10), time(11)),))
    assert local(search(cpam, motive, date(2026, 11, 5))) == [
        "Thu 10:00",
        "Thu 10:20",
        "Thu 10:40",
    ]


def test_a_busy_professional_removes_the_time_for_every_advisor(now, cpam, motive, member_account):
    relay_advisor(cpam)
    relay_advisor(cpam)
    make_professional()
    first = search(cpam, motive, date(2026, 11, 5))[0]
    book(member_account, first, motive)
    # Two advisors, but the only interpreter is taken at that time.
    assert first.start not in {s.start for s in search(cpam, motive, date(2026, 11, 5))}
    assert first.start in {
        s.start
        for s in slots.free_slots(
            cpam=cpam,
            motive=motive,
            channel="phone",
            start=date(2026, 11, 5),
            end=date(2026, 11, 5),
        )
    }


# --- booking -------------------------------------------------------------------------------


def test_a_relay_booking_takes_an_advisor_and_a_professional_with_a_video_link(
    now, cpam, motive, member_account, outbox, settings
):
    settings.VISIO_BASE_URL = "https://visio.caisse.example/salle/"
    advisor = relay_advisor(cpam)
    professional = make_professional()
    slot = search(cpam, motive, date(2026, 11, 5))[0]
    appointment = book(member_account, slot, motive)
    assert appointment.advisor == advisor
    assert appointment.relay_professional == professional
    assert appointment.communication_mode == "lsf"
    assert appointment.video_url.startswith("https://visio.caisse.example/salle/")
    assert len(appointment.video_url.rsplit("/", 1)[1]) >= 22  # 128 random bits
    assert RelayTimeLock.objects.filter(appointment=appointment).count() == 4
    assert AdvisorTimeLock.objects.filter(appointment=appointment).count() == 4
    [email] = outbox(template="appointment_booked")
    assert appointment.video_url in email.body_text
    assert "Langue des signes française (LSF)" in email.body_text
    assert "caméra" in email.body_text
    event = Calendar.from_ical(email.attachment_body).walk("VEVENT")[0]
    assert str(event["LOCATION"]) == appointment.video_url
    # Two bookings never share a room.
    other = book(
        AccountFactory(member=MemberFactory(cpam=cpam)),
        search(cpam, motive, date(2026, 11, 5))[0],
        motive,
    )
    assert other.video_url != appointment.video_url


def test_relay_needs_its_mode_and_no_phone_number(now, cpam, motive):
    relay_advisor(cpam)
    make_professional(modes=("ttrp",))
    account = AccountFactory(member=MemberFactory(cpam=cpam), mobile_phone="")
    slot = search(cpam, motive, date(2026, 11, 5), mode="ttrp")[0]
    for mode in ("", "lsf", "xx"):
        with pytest.raises((services.InvalidCommunicationMode, services.InvalidSlot)):
            book(account, slot, motive, mode=mode)
    with pytest.raises(services.InvalidCommunicationMode):
        services.appointment_book(
            account=account,
            slot_id=slot.id,
            motive_code=motive.code,
            channel="phone",
            communication_mode="ttrp",
        )
    appointment = book(account, slot, motive, mode="ttrp")
    assert appointment.communication_mode == "ttrp"


def test_if_the_professional_is_taken_nothing_is_booked(
    now, cpam, motive, member_account, monkeypatch
):
    first_advisor, second_advisor = relay_advisor(cpam), relay_advisor(cpam)
    make_professional()
    day = date(2026, 11, 5)
    slot_a = slots.free_slots(
        cpam=cpam,
        motive=motive,
        channel="relay",
        mode="lsf",
        start=day,
        end=day,
        advisor_ids=[first_advisor.pk],
        per_advisor=True,
    )[0]
    slot_b = slots.free_slots(
        cpam=cpam,
        motive=motive,
        channel="relay",
        mode="lsf",
        start=day,
        end=day,
        advisor_ids=[second_advisor.pk],
        per_advisor=True,
    )[0]
    assert slot_a.start == slot_b.start
    book(member_account, slot_a, motive)
    other = AccountFactory(member=MemberFactory(cpam=cpam))
    # The check sees the interpreter busy.
    with pytest.raises(services.SlotTaken):
        book(other, slot_b, motive)
    # Even if both checks had passed at once, the database refuses the interpreter's
    # second booking, and the advisor's time taken meanwhile is given back.
    monkeypatch.setattr(services, "slot_still_free", lambda ref, **kw: slot_b)
    from portal.appointments import relay as relay_module

    real = relay_module.relay_starts

    def everyone_free(**kwargs):
        by_day, per_pro = real(**{**kwargs, "ignore": None})
        mask = (1 << 288) - 1
        return by_day, {key: mask for key in per_pro} | {
            (p.pk, day): mask for p in RelayProfessional.objects.all()
        }

    monkeypatch.setattr(relay_module, "relay_starts", everyone_free)
    with pytest.raises(services.SlotTaken):
        book(other, slot_b, motive)
    assert Appointment.objects.count() == 1
    assert not AdvisorTimeLock.objects.filter(advisor=second_advisor).exists()


def test_reschedule_and_cancel_move_and_free_the_professional(now, cpam, motive, member_account):
    relay_advisor(cpam)
    professional = make_professional()
    day = date(2026, 11, 5)
    appointment = book(member_account, search(cpam, motive, day)[0], motive)
    link = appointment.video_url
    later = search(cpam, motive, date(2026, 11, 6))[0]
    moved = services.appointment_reschedule(
        account=member_account, appointment=appointment, slot_id=later.id
    )
    assert moved.relay_professional == professional
    assert moved.video_url == link  # the room stays the same
    assert {lock.cell for lock in RelayTimeLock.objects.all()} == {
        later.start + timedelta(minutes=5 * i) for i in range(4)
    }
    services.appointment_cancel(account=member_account, appointment=moved)
    assert not RelayTimeLock.objects.exists()


# --- the webhook provider ---------------------------------------------------------------------


@dataclass
class Provider:
    url: str = ""
    received: list[dict] = field(default_factory=list)
    replies: list[tuple[int, float]] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)


@pytest.fixture
def relay_provider(settings):
    provider = Provider()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            provider.received.append({"headers": self.headers, "body": body})
            status, wait = provider.replies.pop(0) if provider.replies else (200, 0)
            if wait:
                provider.release.wait(wait)
            payload = json.dumps(
                {"url": f"https://relais.example.test/room/{json.loads(body)['id']}"}
            ).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except OSError:
                pass

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    provider.url = f"http://127.0.0.1:{server.server_port}/relay"
    settings.RELAY_PROVIDER = "webhook"
    settings.RELAY_WEBHOOK_URL = provider.url
    settings.RELAY_WEBHOOK_SECRET = "relay-shared-key"
    settings.RELAY_WEBHOOK_TIMEOUT = 0.5
    yield provider
    provider.release.set()
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_webhook_posts_the_signed_booking_and_stores_the_link(
    relay_provider, cpam, motive, member_account, run_tasks, outbox
):
    relay_advisor(cpam)
    make_professional()
    with time_machine.travel(paris(2026, 11, 2, 10), tick=False):
        appointment = book(member_account, search(cpam, motive, date(2026, 11, 5))[0], motive)
        assert appointment.video_url == ""
        [booked] = outbox(template="appointment_booked")
        assert "Le lien de la visio vous sera envoyé par courriel" in booked.body_text
        run_tasks()
    [request] = relay_provider.received
    body = json.loads(request["body"])
    assert body == {
        "event": "booked",
        "id": str(appointment.public_id),
        "sequence": 0,
        "communication_mode": "lsf",
        "professional": appointment.relay_professional_id,
        "start": appointment.starts_at.isoformat(),
        "end": appointment.ends_at.isoformat(),
        "motive": motive.code,
    }
    assert member_account.member.nir not in request["body"].decode()
    expected = hmac.new(b"relay-shared-key", request["body"], hashlib.sha256).hexdigest()
    assert request["headers"]["X-Signature-SHA256"] == expected
    appointment.refresh_from_db()
    assert appointment.video_url == f"https://relais.example.test/room/{appointment.public_id}"
    [email] = outbox(template="appointment_video_link")
    assert appointment.video_url in email.body_text
    assert AuditEntry.objects.filter(action="appointment.relay.notified").count() == 1


def test_webhook_500_then_timeout_are_retried_and_the_link_stored_once(
    relay_provider, cpam, motive, member_account, run_tasks, outbox
):
    relay_advisor(cpam)
    make_professional()
    relay_provider.replies = [(500, 0), (200, 2)]  # an error, then no answer in time
    with time_machine.travel(paris(2026, 11, 2, 10), tick=False) as clock:
        appointment = book(member_account, search(cpam, motive, date(2026, 11, 5))[0], motive)
        run_tasks()
        assert len(relay_provider.received) == 1
        clock.shift(timedelta(seconds=31))
        run_tasks()
        assert len(relay_provider.received) == 2
        appointment.refresh_from_db()
        assert appointment.video_url == ""
        clock.shift(timedelta(seconds=61))
        run_tasks()
        clock.shift(timedelta(minutes=10))
        run_tasks()
    assert len(relay_provider.received) == 3
    assert len({r["body"] for r in relay_provider.received}) == 1  # the same event each time
    appointment.refresh_from_db()
    assert appointment.video_url.startswith("https://relais.example.test/room/")
    assert len(outbox(template="appointment_video_link")) == 1


def test_webhook_given_up_after_the_maximum_attempts(
    relay_provider, cpam, motive, member_account, run_tasks, settings
):
    settings.RELAY_WEBHOOK_MAX_ATTEMPTS = 2
    relay_advisor(cpam)
    make_professional()
    relay_provider.replies = [(500, 0)] * 5
    with time_machine.travel(paris(2026, 11, 2, 10), tick=False) as clock:
        book(member_account, search(cpam, motive, date(2026, 11, 5))[0], motive)
        for _ in range(4):
            run_tasks()
            clock.shift(timedelta(hours=1))
    assert len(relay_provider.received) == 2
    assert AuditEntry.objects.filter(action="appointment.relay.failed").count() == 1


def test_webhook_hears_of_the_cancellation(relay_provider, cpam, motive, member_account, run_tasks):
    relay_advisor(cpam)
    make_professional()
    with time_machine.travel(paris(2026, 11, 2, 10), tick=False):
        appointment = book(member_account, search(cpam, motive, date(2026, 11, 5))[0], motive)
        run_tasks()
        services.appointment_cancel(account=member_account, appointment=appointment)
        run_tasks()
    assert [json.loads(r["body"])["event"] for r in relay_provider.received] == [
        "booked",
        "cancelled",
    ]


# --- concurrency (PostgreSQL) -------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_relay_bookings_never_share_a_professional():
    """Ten advisors free at 09:00 but one interpreter: one booking, nothing half-taken."""
    if connection.vendor != "postgresql":
        pytest.skip(
            "needs PostgreSQL's concurrent transactions (run by .ci/run and make test-postgres)"
        )
    ensure_motives()
    cpam = Cpam.objects.create(code="751", name="Paris")
    motive = Motive.objects.get(code="arret-travail-ij")
    advisors = [relay_advisor(cpam, ranges=((time(9), time(9, 20)),)) for _ in range(10)]
    make_professional()
    day = date(2026, 11, 5)
    with time_machine.travel(paris(2026, 11, 2, 10), tick=False):
        offered = [
            slots.free_slots(
                cpam=cpam,
                motive=motive,
                channel="relay",
                mode="lsf",
                start=day,
                end=day,
                advisor_ids=[a.pk],
                per_advisor=True,
            )[0]
            for a in advisors
        ]
        assert {s.start for s in offered} == {utc(paris(2026, 11, 5, 9))}
        accounts = [AccountFactory(member=MemberFactory(cpam=cpam)) for _ in offered]
        barrier = threading.Barrier(len(offered))
        results: list[str] = []
        lock = threading.Lock()

        def attempt(account, slot):
            try:
                barrier.wait()
                book(account, slot, motive)
                outcome = "booked"
            except services.SlotTaken:
                outcome = "slot_taken"
            except Exception as exc:  # noqa: BLE001
                outcome = repr(exc)
            finally:
                connections.close_all()
            with lock:
                results.append(outcome)

        threads = [
            threading.Thread(target=attempt, args=pair)
            for pair in zip(accounts, offered, strict=True)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert sorted(results) == ["booked"] + ["slot_taken"] * 9
    assert Appointment.objects.count() == 1
    assert AdvisorTimeLock.objects.count() == 4  # the losers' advisor time was given back
    assert RelayTimeLock.objects.count() == 4


def test_cached_relay_searches_follow_the_shared_relay_service(now, cpam, motive):
    """One interpreter serves two offices: a booking in one voids the other's cached search."""
    other = Cpam.objects.create(code="131", name="Bouches-du-Rhône")
    relay_advisor(cpam)
    relay_advisor(other)
    interpreter = make_professional()
    day = date(2026, 11, 5)
    first = search(cpam, motive, day)[0]
    assert first.start in {s.start for s in search(other, motive, day)}  # now cached
    book(AccountFactory(member=MemberFactory(cpam=cpam)), first, motive)
    assert first.start not in {s.start for s in search(other, motive, day)}
    RelayRange.objects.filter(professional=interpreter).first().delete()  # Monday's range
    interpreter.ranges.filter(weekday=3).delete()
    assert search(other, motive, day) == []
