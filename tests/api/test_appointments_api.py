"""The appointments API (Mon agenda): the contract, each error code, who sees what.

Time is pinned by the `now` fixture of tests/appointments (Monday 2 November
2026, 10:00 in Paris): the first bookable day is Tuesday 3 November.
"""

import json
import threading
import uuid
from datetime import datetime, time

import pytest
import time_machine
from django.db import connection, connections
from django.test import Client
from pydantic import TypeAdapter

from portal.api.schemas import SlotOut
from portal.appointments.models import (
    AdvisorTimeLock,
    Appointment,
    Motive,
    RelayProfessional,
    RelayRange,
    Site,
)
from portal.appointments.services import MESSAGE_MAX_LENGTH
from tests.appointments.conftest import (
    NOW,
    PARIS,
    ensure_motives,
    make_advisor,
    make_site,
    paris,
)
from tests.factories import PASSWORD, AccountFactory, CpamFactory, MemberFactory

SLOTS = "/api/v1/appointments/slots"
BOOK = "/api/v1/appointments"


def bearer(client, account) -> dict:
    """The Authorization header of a fresh token (they live an hour: renew after moving time)."""
    response = client.post(
        "/api/v1/auth/token",
        {"nir": account.nir, "password": PASSWORD},
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    return {"HTTP_AUTHORIZATION": f"Bearer {response.json()['access_token']}"}


def post(client, path, payload=None, **extra):
    body = payload if isinstance(payload, (str, bytes)) else json.dumps(payload or {})
    return client.post(path, body, content_type="application/json", **extra)


def search(client, auth, **params):
    params = {"motive": "arret-travail-ij", "channel": "phone", **params}
    return client.get(SLOTS, params, **auth)


def book(client, auth, slot, motive="arret-travail-ij", channel="phone", **extra):
    return post(client, BOOK, {"slot": slot, "motive": motive, "channel": channel, **extra}, **auth)


@pytest.fixture
def now():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def cpam(db):
    return CpamFactory()


@pytest.fixture
def member_account(cpam):
    return AccountFactory(member=MemberFactory(cpam=cpam))


@pytest.fixture
def office(now, cpam):
    """One advisor, weekdays 09:00–12:00, every motive, phone and on site."""
    return make_advisor(cpam)


@pytest.fixture
def auth(client, office, member_account):
    return bearer(client, member_account)


@pytest.fixture
def first_slot(client, auth) -> dict:
    return search(client, auth).json()[0]


# --- reading -----------------------------------------------------------------


def test_motives_are_the_funds_list_in_its_order(client, auth):
    Motive.objects.filter(code="css").update(on_site=False)
    Motive.objects.filter(code="capital-deces").update(is_active=False)
    response = client.get("/api/v1/appointments/motives", **auth)
    assert response.status_code == 200
    motives = response.json()
    codes = [m["code"] for m in motives]
    assert codes == list(Motive.objects.filter(is_active=True).values_list("code", flat=True))
    assert "capital-deces" not in codes
    ij = next(m for m in motives if m["code"] == "arret-travail-ij")
    assert set(ij) == {"code", "label", "description", "channels", "duration_minutes"}
    assert ij["channels"] == ["phone", "on_site", "relay"]
    assert ij["duration_minutes"] == 20
    assert next(m for m in motives if m["code"] == "css")["channels"] == ["phone", "relay"]


def test_sites_are_those_of_the_members_cpam(client, auth, cpam):
    second = make_site(cpam, name="Accueil Paris 15e")
    Site.objects.create(
        cpam=cpam,
        name="Fermé",
        address="1 rue X",
        postal_code="75001",
        city="Paris",
        is_active=False,
    )
    make_site(CpamFactory(code="130", name="Bouches-du-Rhône"), name="Accueil Marseille")
    sites = client.get("/api/v1/appointments/sites", **auth).json()
    first = Site.objects.get(name="Accueil Paris 11e")
    assert sites == [
        {"id": first.pk, "name": "Accueil Paris 11e", "address": first.full_address},
        {"id": second.pk, "name": "Accueil Paris 15e", "address": second.full_address},
    ]
    assert first.full_address == "21 rue Georges Auric, 75019 Paris"


def test_slots_contract(client, auth, office):
    response = search(client, auth, **{"from": "2026-11-03", "to": "2026-11-03"})
    assert response.status_code == 200
    slots = response.json()
    # 09:00–12:00 in slots of 20 minutes, in the office's time (+01:00 in November).
    assert [s["start"] for s in slots] == [
        f"2026-11-03T{h:02d}:{m:02d}:00+01:00" for h in (9, 10, 11) for m in (0, 20, 40)
    ]
    assert slots[0]["end"] == "2026-11-03T09:20:00+01:00"
    assert slots[0]["site"] == office.site_id
    # Serialized by hand for speed: exactly what the OpenAPI schema says.
    assert response["Content-Type"] == "application/json"
    assert all(set(slot) == set(SlotOut.model_fields) for slot in slots)
    TypeAdapter(list[SlotOut]).validate_python(slots)


def test_slots_one_per_start_time_over_the_bookable_window(client, auth, cpam, office):
    make_advisor(cpam)
    slots = search(client, auth).json()
    starts = [s["start"] for s in slots]
    assert starts == sorted(starts)
    assert len(starts) == len(set(starts))
    # Notice: nothing today; horizon: 42 days, to Monday 14 December.
    assert starts[0] == "2026-11-03T09:00:00+01:00"
    assert starts[-1] == "2026-12-14T11:40:00+01:00"
    # 11 November (Armistice) is a public holiday.
    assert not [s for s in starts if s.startswith("2026-11-11")]
    assert len({s["site"] for s in slots}) == 1
    # Days outside the window give nothing, without an error.
    assert search(client, auth, **{"from": "2026-10-01", "to": "2026-11-02"}).json() == []
    assert search(client, auth, **{"from": "2027-03-01", "to": "2027-03-31"}).json() == []
    assert search(client, auth, to="2026-10-01").json() == []


def test_slots_carry_the_offset_of_their_day_around_the_clock_change(client, cpam):
    """Paris leaves summer time on Sunday 25 October 2026: a 09:00 range stays 09:00."""
    make_advisor(cpam)
    account = AccountFactory(member=MemberFactory(cpam=cpam))
    with time_machine.travel(datetime(2026, 10, 21, 10, 0, tzinfo=PARIS), tick=False):
        auth = bearer(client, account)
        slots = search(client, auth, **{"from": "2026-10-23", "to": "2026-10-26"}).json()
    friday = [s for s in slots if s["start"].startswith("2026-10-23")]
    monday = [s for s in slots if s["start"].startswith("2026-10-26")]
    assert friday[0]["start"] == "2026-10-23T09:00:00+02:00"
    assert monday[0]["start"] == "2026-10-26T09:00:00+01:00"
    assert {s["start"][-6:] for s in friday} == {"+02:00"}
    assert {s["start"][-6:] for s in monday} == {"+01:00"}
    assert monday[-1]["end"] == "2026-10-26T12:00:00+01:00"
    assert len(friday) == len(monday) == 9


def test_slots_of_an_overseas_office_carry_its_offset(client, db):
    reunion = CpamFactory(code="974", name="La Réunion")
    make_advisor(reunion)
    account = AccountFactory(member=MemberFactory(cpam=reunion))
    with time_machine.travel(paris(2026, 11, 2, 10), tick=False):
        slots = search(client, bearer(client, account), to="2026-11-03").json()
    assert slots[0]["start"] == "2026-11-03T09:00:00+04:00"


def test_slots_of_one_site(client, auth, cpam, office):
    other_site = make_site(cpam, name="Accueil Paris 15e")
    there = make_advisor(cpam, site=other_site, ranges=((time(14, 0), time(15, 0)),))
    slots = search(client, auth, site=there.site_id, to="2026-11-03").json()
    assert {s["site"] for s in slots} == {other_site.pk}
    assert slots[0]["start"] == "2026-11-03T14:00:00+01:00"
    both = search(client, auth, to="2026-11-03").json()
    assert {s["site"] for s in both} == {office.site_id, other_site.pk}


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"motive": "inconnu"}, "invalid_motive"),
        ({"channel": "fax"}, "invalid_channel"),
        ({"channel": "PHONE"}, "invalid_channel"),
        ({"from": "2026-11-10", "to": "2026-11-09"}, "invalid_period"),
        ({"from": "2026-11-03", "to": "2027-01-04"}, "invalid_period"),  # 63 days
        ({"from": "0001-01-01", "to": "9999-12-31"}, "invalid_period"),
        ({"from": "2020-01-01"}, "invalid_period"),  # to: the end of the window
        ({"site": 2**31 - 1}, "invalid_site"),
    ],
)
def test_slots_refused(client, auth, params, error):
    response = search(client, auth, **params)
    assert response.status_code == 400
    assert response.json() == {"error": error}


def test_slots_channel_the_motive_does_not_offer(client, auth):
    Motive.objects.filter(code="arret-travail-ij").update(on_site=False)
    response = search(client, auth, channel="on_site")
    assert response.json() == {"error": "invalid_channel"}


def test_slots_of_another_cpams_site_or_a_closed_one_are_refused(client, auth, cpam):
    marseille = make_site(CpamFactory(code="130", name="Bouches-du-Rhône"), name="Marseille")
    make_advisor(marseille.cpam, site=marseille)
    closed = make_site(cpam, name="Fermé")
    closed.is_active = False
    closed.save()
    for site in (marseille, closed):
        assert search(client, auth, site=site.pk).json() == {"error": "invalid_site"}


def test_sixty_two_days_is_the_longest_search(client, auth):
    assert search(client, auth, **{"from": "2026-11-03", "to": "2027-01-04"}).status_code == 400
    assert search(client, auth, **{"from": "2026-11-03", "to": "2027-01-03"}).status_code == 200


# --- booking -----------------------------------------------------------------


def test_book_contract(client, auth, office, member_account, first_slot):
    response = book(client, auth, first_slot["slot"], message="  Au sujet de mon arrêt.  ")
    assert response.status_code == 201, response.content
    body = response.json()
    appointment = Appointment.objects.get()
    assert body == {
        "id": str(appointment.public_id),
        "motive": "arret-travail-ij",
        "channel": "phone",
        "start": "2026-11-03T09:00:00+01:00",
        "end": "2026-11-03T09:20:00+01:00",
        "status": "booked",
        "site": {
            "id": office.site_id,
            "name": "Accueil Paris 11e",
            "address": "21 rue Georges Auric, 75019 Paris",
        },
        "communication_mode": "",
        "video_url": "",
        "message": "Au sujet de mon arrêt.",
        "can_change": True,
        "cancel_reason": "",
    }
    assert appointment.member == member_account.member
    assert appointment.advisor == office
    # Taken: the slot is no longer offered, and the member sees the appointment.
    assert search(client, auth).json()[0]["start"] == "2026-11-03T09:20:00+01:00"
    assert client.get(BOOK, **auth).json() == [body]
    assert client.get(f"{BOOK}/{body['id']}", **auth).json() == body


def test_book_on_site(client, auth, office):
    slot = search(client, auth, channel="on_site").json()[0]
    response = book(client, auth, slot["slot"], channel="on_site")
    assert response.status_code == 201
    assert response.json()["channel"] == "on_site"


def test_slot_taken_comes_with_the_nearest_free_slots(client, auth, cpam, first_slot):
    rival = AccountFactory(member=MemberFactory(cpam=cpam))
    assert book(client, bearer(client, rival), first_slot["slot"]).status_code == 201
    response = book(client, auth, first_slot["slot"])
    assert response.status_code == 409
    body = response.json()
    assert body["error"] == "slot_taken"
    starts = [s["start"] for s in body["alternatives"]]
    assert starts == [
        "2026-11-03T09:20:00+01:00",
        "2026-11-03T09:40:00+01:00",
        "2026-11-03T10:00:00+01:00",
    ]
    assert set(body["alternatives"][0]) == {"slot", "start", "end", "site"}
    # An alternative is a slot like any other.
    assert book(client, auth, body["alternatives"][0]["slot"]).status_code == 201


def test_a_slot_for_another_motive_or_channel_is_invalid(client, auth, first_slot):
    assert book(client, auth, first_slot["slot"], motive="at-mp").json() == {
        "error": "invalid_slot"
    }
    assert book(client, auth, first_slot["slot"], channel="on_site").json() == {
        "error": "invalid_slot"
    }
    forged = first_slot["slot"][:-1] + ("A" if first_slot["slot"][-1] != "A" else "B")
    response = book(client, auth, forged)
    assert response.status_code == 400
    assert response.json() == {"error": "invalid_slot"}
    assert not Appointment.objects.exists()


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"slot": "n'importe quoi"}, "invalid_slot"),
        ({"motive": "inconnu"}, "invalid_motive"),
        ({"channel": "fax"}, "invalid_channel"),
        ({"message": "x" * (MESSAGE_MAX_LENGTH + 1)}, "message_too_long"),
    ],
)
def test_book_refused(client, auth, first_slot, overrides, error):
    payload = {"slot": first_slot["slot"], "motive": "arret-travail-ij", "channel": "phone"}
    response = post(client, BOOK, {**payload, **overrides}, **auth)
    assert response.status_code == 400
    assert response.json() == {"error": error}
    assert not Appointment.objects.exists()


def test_a_message_of_the_longest_length_is_kept(client, auth, first_slot):
    response = book(client, auth, first_slot["slot"], message="é" * MESSAGE_MAX_LENGTH)
    assert response.status_code == 201
    assert len(response.json()["message"]) == MESSAGE_MAX_LENGTH


def test_a_phone_interview_needs_a_mobile_number(client, office, cpam, now):
    account = AccountFactory(member=MemberFactory(cpam=cpam), mobile_phone="")
    auth = bearer(client, account)
    phone = search(client, auth).json()[0]
    assert book(client, auth, phone["slot"]).json() == {"error": "phone_required"}
    assert book(client, auth, phone["slot"]).status_code == 400
    on_site = search(client, auth, channel="on_site").json()[0]
    assert book(client, auth, on_site["slot"], channel="on_site").status_code == 201


def test_one_open_appointment_per_motive(client, auth, first_slot):
    assert book(client, auth, first_slot["slot"]).status_code == 201
    second = search(client, auth).json()[0]
    response = book(client, auth, second["slot"])
    assert response.status_code == 409
    assert response.json() == {"error": "motive_already_booked"}


def test_at_most_three_upcoming_appointments(client, auth):
    for code in ("arret-travail-ij", "at-mp", "css"):
        slot = search(client, auth, motive=code).json()[0]
        assert book(client, auth, slot["slot"], motive=code).status_code == 201
    slot = search(client, auth, motive="cures-thermales").json()[0]
    response = book(client, auth, slot["slot"], motive="cures-thermales")
    assert response.status_code == 409
    assert response.json() == {"error": "too_many_appointments"}


# --- relay interviews (video call with an interpreter or a transcriber) -------


@pytest.fixture
def relay_office(now, cpam):
    advisor = make_advisor(cpam, ranges=((time(9), time(12)),))
    advisor.relay = True
    advisor.save()
    professional = RelayProfessional.objects.create(name="Interprète", lsf=True)
    for weekday in range(5):
        RelayRange.objects.create(
            professional=professional, weekday=weekday, start_time=time(8), end_time=time(18)
        )
    return advisor


def test_relay_slots_need_a_mode(client, relay_office, member_account):
    auth = bearer(client, member_account)
    slots = search(client, auth, channel="relay", mode="lsf", to="2026-11-03").json()
    assert slots[0]["start"] == "2026-11-03T09:00:00+01:00"
    # Nobody for transcription; no mode, or one for another channel, is refused.
    assert search(client, auth, channel="relay", mode="ttrp").json() == []
    for params in ({"channel": "relay"}, {"channel": "relay", "mode": "asl"}, {"mode": "lsf"}):
        response = search(client, auth, **params)
        assert response.status_code == 400
        assert response.json() == {"error": "invalid_communication_mode"}


def test_relay_booking_with_the_accounts_mode(client, relay_office, member_account):
    member_account.communication_mode = "lsf"
    member_account.save()
    auth = bearer(client, member_account)
    slot = search(client, auth, channel="relay").json()[0]
    response = book(client, auth, slot["slot"], channel="relay")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["channel"], body["communication_mode"]) == ("relay", "lsf")
    assert body["video_url"].startswith("https://")
    # A relay slot is for its mode only.
    refused = book(client, auth, slot["slot"], channel="relay", communication_mode="ttrp")
    assert refused.json() == {"error": "invalid_slot"}


def test_relay_booking_without_a_mode_is_refused(client, relay_office, member_account):
    auth = bearer(client, member_account)
    slot = search(client, auth, channel="relay", mode="lsf").json()[0]
    response = book(client, auth, slot["slot"], channel="relay")
    assert response.status_code == 400
    assert response.json() == {"error": "invalid_communication_mode"}


# --- cancelling and moving ---------------------------------------------------


@pytest.fixture
def booked(client, auth, first_slot) -> dict:
    response = book(client, auth, first_slot["slot"])
    assert response.status_code == 201
    return response.json()


def test_cancel(client, auth, booked):
    response = post(client, f"{BOOK}/{booked['id']}/cancel", **auth)
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "cancelled_by_member"
    assert body["can_change"] is False
    assert not AdvisorTimeLock.objects.exists()
    # The time is free again, and cancelling twice is refused.
    assert search(client, auth).json()[0]["start"] == booked["start"]
    again = post(client, f"{BOOK}/{booked['id']}/cancel", **auth)
    assert again.status_code == 409
    assert again.json() == {"error": "not_open"}
    # Listed still, with its status.
    assert [a["status"] for a in client.get(BOOK, **auth).json()] == ["cancelled_by_member"]


def test_cancel_and_move_end_two_hours_before(client, member_account, booked, now):
    other = search(client, bearer(client, member_account)).json()[0]
    now.move_to(paris(2026, 11, 3, 7, 30))  # 1 h 30 before 09:00
    auth = bearer(client, member_account)
    mine = client.get(f"{BOOK}/{booked['id']}", **auth).json()
    assert mine["can_change"] is False
    for path, payload in (("cancel", None), ("reschedule", {"slot": other["slot"]})):
        response = post(client, f"{BOOK}/{booked['id']}/{path}", payload, **auth)
        assert response.status_code == 409
        assert response.json() == {"error": "too_late"}
    assert Appointment.objects.get().status == "booked"


def test_a_past_appointment_is_not_open(client, member_account, booked, now):
    now.move_to(paris(2026, 11, 3, 9, 30))
    auth = bearer(client, member_account)
    response = post(client, f"{BOOK}/{booked['id']}/cancel", **auth)
    assert response.status_code == 409
    assert response.json() == {"error": "not_open"}


def test_reschedule(client, auth, booked):
    later = search(client, auth, **{"from": "2026-11-05", "to": "2026-11-05"}).json()[2]
    response = post(client, f"{BOOK}/{booked['id']}/reschedule", {"slot": later["slot"]}, **auth)
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == booked["id"]
    assert body["start"] == "2026-11-05T09:40:00+01:00"
    assert body["status"] == "booked"
    assert Appointment.objects.get().sequence == 1
    # The old time is free again.
    assert search(client, auth).json()[0]["start"] == booked["start"]


def test_a_move_keeps_the_type_of_interview_and_changes_the_time(client, auth, first_slot, booked):
    path = f"{BOOK}/{booked['id']}/reschedule"
    on_site = search(client, auth, channel="on_site", **{"from": "2026-11-04"}).json()[0]
    # The slot it was booked on is its own time: not a move.
    for slot in (on_site["slot"], first_slot["slot"]):
        response = post(client, path, {"slot": slot}, **auth)
        assert response.status_code == 400
        assert response.json() == {"error": "invalid_slot"}
    assert Appointment.objects.get().sequence == 0


def test_reschedule_refused(client, auth, cpam, booked):
    path = f"{BOOK}/{booked['id']}/reschedule"
    other_motive = search(client, auth, motive="at-mp").json()[0]
    for slot in ("n'importe quoi", other_motive["slot"]):
        response = post(client, path, {"slot": slot}, **auth)
        assert response.status_code == 400
        assert response.json() == {"error": "invalid_slot"}
    # Someone else takes the slot we wanted: its nearest neighbours instead.
    wanted = search(client, auth, **{"from": "2026-11-05"}).json()[0]
    rival = AccountFactory(member=MemberFactory(cpam=cpam))
    assert book(client, bearer(client, rival), wanted["slot"]).status_code == 201
    response = post(client, path, {"slot": wanted["slot"]}, **auth)
    assert response.status_code == 409
    assert response.json()["error"] == "slot_taken"
    assert len(response.json()["alternatives"]) == 3
    # Nothing moved.
    assert client.get(f"{BOOK}/{booked['id']}", **auth).json()["start"] == booked["start"]
    # Cancelled, it cannot move any more.
    post(client, f"{BOOK}/{booked['id']}/cancel", **auth)
    later = search(client, auth, **{"from": "2026-11-06"}).json()[0]
    assert post(client, path, {"slot": later["slot"]}, **auth).json() == {"error": "not_open"}


def test_a_phone_interview_moves_only_with_a_mobile_number(client, member_account, booked):
    member_account.mobile_phone = ""
    member_account.save()
    auth = bearer(client, member_account)
    later = search(client, auth, **{"from": "2026-11-05"}).json()[0]
    response = post(client, f"{BOOK}/{booked['id']}/reschedule", {"slot": later["slot"]}, **auth)
    assert response.status_code == 400
    assert response.json() == {"error": "phone_required"}


def test_the_list_holds_upcoming_and_past_latest_first(
    client, auth, member_account, booked, now, django_assert_num_queries
):
    slot = search(client, auth, motive="at-mp", **{"from": "2026-11-10"}).json()[0]
    assert book(client, auth, slot["slot"], motive="at-mp").status_code == 201
    now.move_to(paris(2026, 11, 4, 10))  # the first one is past
    auth = bearer(client, member_account)
    with django_assert_num_queries(2):  # the token, the appointments
        listed = client.get(BOOK, **auth).json()
    assert [(a["motive"], a["can_change"]) for a in listed] == [
        ("at-mp", True),
        ("arret-travail-ij", False),
    ]


# --- who sees what -----------------------------------------------------------

ROUTES = [
    ("get", "/api/v1/appointments/motives"),
    ("get", "/api/v1/appointments/sites"),
    ("get", "/api/v1/appointments/slots?motive=arret-travail-ij&channel=phone"),
    ("get", "/api/v1/appointments"),
    ("post", "/api/v1/appointments"),
    ("get", "/api/v1/appointments/{id}"),
    ("post", "/api/v1/appointments/{id}/cancel"),
    ("post", "/api/v1/appointments/{id}/reschedule"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_every_route_needs_a_token(client, booked, method, path):
    url = path.format(id=booked["id"])
    for header in (None, "Bearer ", "Bearer nope", "Basic abc", "Bearer " + "x" * 300):
        extra = {"HTTP_AUTHORIZATION": header} if header is not None else {}
        if method == "post":
            body = {"slot": "x", "motive": "x", "channel": "phone"}
            response = post(client, url, body, **extra)
        else:
            response = client.get(url, **extra)
        assert response.status_code == 401, header
        assert response.json() == {"error": "not_authenticated"}


def test_an_expired_or_revoked_token_is_refused(client, member_account, auth, now):
    assert client.get(BOOK, **auth).status_code == 200
    now.move_to(paris(2026, 11, 2, 11, 1))  # a token lives an hour
    assert client.get(BOOK, **auth).json() == {"error": "not_authenticated"}
    auth = bearer(client, member_account)
    assert post(client, "/api/v1/auth/logout", **auth).status_code == 204
    assert client.get(BOOK, **auth).status_code == 401


ID_ROUTES = [
    ("get", "/api/v1/appointments/{id}"),
    ("post", "/api/v1/appointments/{id}/cancel"),
    ("post", "/api/v1/appointments/{id}/reschedule"),
]


@pytest.mark.parametrize(("method", "path"), ID_ROUTES)
def test_another_members_appointment_is_not_found(client, cpam, booked, method, path):
    stranger = AccountFactory(member=MemberFactory(cpam=cpam))
    auth = bearer(client, stranger)
    free = search(client, auth).json()[0]
    url = path.format(id=booked["id"])
    if method == "post":
        response = post(client, url, {"slot": free["slot"]}, **auth)
    else:
        response = client.get(url, **auth)
    assert response.status_code == 404
    assert response.json() == {"error": "not_found"}
    appointment = Appointment.objects.get()
    assert (appointment.status, appointment.sequence) == ("booked", 0)
    assert client.get(BOOK, **auth).json() == []


MALFORMED_IDS = [
    str(uuid.uuid4()),
    "not-a-uuid",
    "1",
    "0",
    "' OR 1=1 --",
    "x" * 5000,
    "%00",
    "%E2%80%AE",
    str(uuid.UUID(int=0)),
]


@pytest.mark.parametrize(("method", "path"), ID_ROUTES)
def test_unknown_or_malformed_ids_are_not_found(client, auth, booked, method, path):
    for appointment_id in MALFORMED_IDS:
        url = path.format(id=appointment_id)
        if method == "post":
            response = post(client, url, {"slot": "x"}, **auth)
        else:
            response = client.get(url, **auth)
        assert response.status_code == 404, appointment_id
        assert response.json() == {"error": "not_found"}


def test_the_id_is_the_public_uuid_never_the_key(client, auth, booked):
    appointment = Appointment.objects.get()
    assert client.get(f"{BOOK}/{appointment.pk}", **auth).status_code == 404
    assert client.get(f"{BOOK}/{str(appointment.public_id).upper()}", **auth).status_code == 200


# --- the OpenAPI schema ------------------------------------------------------

DOCUMENTED = {
    ("get", "/api/v1/appointments/slots"): {
        400: {
            "invalid_motive",
            "invalid_channel",
            "invalid_communication_mode",
            "invalid_period",
            "invalid_site",
        },
        401: {"not_authenticated"},
        422: {"invalid_request"},
    },
    ("post", "/api/v1/appointments"): {
        400: {
            "invalid_slot",
            "invalid_motive",
            "invalid_channel",
            "invalid_communication_mode",
            "phone_required",
            "message_too_long",
            "malformed_json",
        },
        401: {"not_authenticated"},
        409: {"slot_taken", "motive_already_booked", "too_many_appointments"},
        422: {"invalid_request"},
    },
    ("post", "/api/v1/appointments/{appointment_id}/cancel"): {
        401: {"not_authenticated"},
        404: {"not_found"},
        409: {"too_late", "not_open"},
    },
    ("post", "/api/v1/appointments/{appointment_id}/reschedule"): {
        400: {"invalid_slot", "phone_required", "malformed_json"},
        401: {"not_authenticated"},
        404: {"not_found"},
        409: {"slot_taken", "too_late", "not_open"},
        422: {"invalid_request"},
    },
    ("get", "/api/v1/appointments/{appointment_id}"): {
        401: {"not_authenticated"},
        404: {"not_found"},
    },
}


def _codes(schema: dict, components: dict) -> set[str]:
    if "$ref" in schema:
        return _codes(components[schema["$ref"].rsplit("/", 1)[1]], components)
    if "anyOf" in schema:
        return set().union(*(_codes(s, components) for s in schema["anyOf"]))
    error = schema["properties"]["error"]
    return set(error["enum"]) if "enum" in error else {error["const"]}


@pytest.mark.django_db
def test_the_openapi_schema_lists_every_error_code(client):
    schema = client.get("/api/v1/openapi.json").json()
    components = schema["components"]["schemas"]
    for (method, path), statuses in DOCUMENTED.items():
        responses = schema["paths"][path][method]["responses"]
        for status, codes in statuses.items():
            content = responses[str(status)]["content"]["application/json"]["schema"]
            assert _codes(content, components) == codes, (method, path, status)
    assert "alternatives" in components["SlotTakenOut"]["properties"]
    assert components["SlotOut"]["properties"]["start"]["format"] == "date-time"
    tagged = [
        path
        for path, operations in schema["paths"].items()
        for operation in operations.values()
        if "appointments" in operation.get("tags", [])
    ]
    assert len(tagged) == 8


# --- concurrency (PostgreSQL) ------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_simultaneous_bookings_of_one_slot_give_one_appointment(cpam):
    if connection.vendor != "postgresql":
        pytest.skip(
            "needs PostgreSQL's concurrent transactions (run by .ci/run and make test-postgres)"
        )
    ensure_motives()  # a transactional test before may have flushed them
    with time_machine.travel(paris(2026, 11, 2, 10), tick=False):
        advisor = make_advisor(cpam)
        accounts = [AccountFactory(member=MemberFactory(cpam=cpam)) for _ in range(12)]
        tokens = [bearer(Client(), account) for account in accounts]
        slot = search(Client(), tokens[0]).json()[0]["slot"]
        barrier = threading.Barrier(len(tokens))
        statuses: list[int] = []
        lock = threading.Lock()

        def attempt(auth: dict) -> None:
            try:
                barrier.wait()
                status = book(Client(), auth, slot).status_code
            finally:
                connections.close_all()
            with lock:
                statuses.append(status)

        threads = [threading.Thread(target=attempt, args=(auth,)) for auth in tokens]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert sorted(statuses) == [201] + [409] * (len(tokens) - 1)
    assert Appointment.objects.filter(advisor=advisor).count() == 1
    assert AdvisorTimeLock.objects.count() == 4  # 20 minutes: 4 cells
