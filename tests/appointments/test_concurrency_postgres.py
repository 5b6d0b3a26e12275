"""No double booking, whatever the concurrency: 50 members on one slot at once (PostgreSQL)."""

import threading
from datetime import date, time

import pytest
import time_machine
from django.db import connection, connections

from portal.appointments import services, slots
from portal.appointments.models import AdvisorTimeLock, Appointment, Motive
from portal.members.models import Cpam
from tests.appointments.conftest import ensure_motives, make_advisor, paris
from tests.factories import AccountFactory, MemberFactory

CLIENTS = 50


def _race(monkeypatch=None, bypass_check=False):
    if connection.vendor != "postgresql":
        pytest.skip(
            "needs PostgreSQL's concurrent transactions (run by .ci/run and make test-postgres)"
        )
    ensure_motives()
    cpam = Cpam.objects.create(code="751", name="Paris")
    motive = Motive.objects.get(code="arret-travail-ij")
    # One advisor, one 20-minute slot on Tuesday 3 November.
    make_advisor(cpam, weekdays=[1], ranges=((time(9, 0), time(9, 20)),))
    accounts = [AccountFactory(member=MemberFactory(cpam=cpam)) for _ in range(CLIENTS)]
    day = date(2026, 11, 3)
    [slot] = slots.free_slots(cpam=cpam, motive=motive, channel="phone", start=day, end=day)
    if bypass_check:
        # As if every request had passed the Python check before any commit:
        # only the database's constraint stands between them.
        monkeypatch.setattr(services, "slot_still_free", lambda ref, **kw: slot)
    barrier = threading.Barrier(CLIENTS)
    results: list[str] = []
    lock = threading.Lock()

    def attempt(account):
        try:
            barrier.wait()
            services.appointment_book(
                account=account, slot_id=slot.id, motive_code=motive.code, channel="phone"
            )
            outcome = "booked"
        except services.SlotTaken:
            outcome = "slot_taken"
        except Exception as exc:  # noqa: BLE001 (reported by the assertion below)
            outcome = f"error: {exc!r}"
        finally:
            connections.close_all()
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=attempt, args=(a,)) for a in accounts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == ["booked"] + ["slot_taken"] * (CLIENTS - 1)
    assert Appointment.objects.filter(status=Appointment.Status.BOOKED).count() == 1
    assert AdvisorTimeLock.objects.count() == 4


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_fifty_concurrent_bookings_of_one_slot_exactly_one_wins():
    with time_machine.travel(paris(2026, 11, 2, 10), tick=False):
        _race()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_database_alone_stops_the_double_booking(monkeypatch):
    with time_machine.travel(paris(2026, 11, 2, 10), tick=False):
        _race(monkeypatch, bypass_check=True)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_reminder_locks_its_appointment_only(monkeypatch):
    """While a reminder is being queued, bookings of the same motive and site by
    others go on: the reminder locks its member and appointment rows, not the
    motive or site it reads with them (FOR UPDATE over a join locks every
    joined row; under `make loadtest` that deadlocked bookings against
    reminders, through the audit chain's lock)."""
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL's row locks (run by .ci/run and make test-postgres)")
    ensure_motives()
    cpam = Cpam.objects.create(code="751", name="Paris")
    motive = Motive.objects.get(code="arret-travail-ij")
    make_advisor(cpam, weekdays=[1], ranges=((time(9, 0), time(9, 20)),))
    account = AccountFactory(member=MemberFactory(cpam=cpam))
    day = date(2026, 11, 3)
    with time_machine.travel(paris(2026, 11, 2, 10), tick=False):
        [slot] = slots.free_slots(cpam=cpam, motive=motive, channel="phone", start=day, end=day)
        appointment = services.appointment_book(
            account=account, slot_id=slot.id, motive_code=motive.code, channel="phone"
        )
    locked_elsewhere = {}
    real_record = services.record

    def others_meanwhile():
        """From another connection, while the reminder's transaction is open."""
        tables = {
            "motive": ("appointments_motive", appointment.motive_id),
            "site": ("appointments_site", appointment.site_id),
            "member": ("members_member", appointment.member_id),
            "appointment": ("appointments_appointment", appointment.pk),
        }
        try:
            for name, (table, pk) in tables.items():
                with connection.cursor() as cursor:
                    cursor.execute("begin")
                    try:
                        cursor.execute(
                            f"select 1 from {table} where id = %s for key share nowait", [pk]
                        )  # noqa: S608
                        locked_elsewhere[name] = False
                    except Exception:  # noqa: BLE001 (lock not available)
                        locked_elsewhere[name] = True
                    finally:
                        cursor.execute("rollback")
        finally:
            connections.close_all()

    def record_after_looking(**kwargs):
        thread = threading.Thread(target=others_meanwhile)
        thread.start()
        thread.join()
        return real_record(**kwargs)

    monkeypatch.setattr(services, "record", record_after_looking)
    with time_machine.travel(paris(2026, 11, 2, 10), tick=False):
        assert services.appointment_remind(
            appointment_id=appointment.pk, sequence=appointment.sequence
        )
    assert locked_elsewhere == {
        "motive": False,
        "site": False,
        "member": True,  # taken first, as booking and cancelling do
        "appointment": True,
    }
