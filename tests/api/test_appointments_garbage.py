"""Garbage sent to the appointments API gets a JSON error with a stable code, never a 500."""

import json
from urllib.parse import quote

import pytest
import time_machine
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portal.appointments.models import Appointment
from tests.appointments.conftest import NOW, make_advisor
from tests.factories import AccountFactory, CpamFactory, MemberFactory

from .test_appointments_api import bearer

BOOK = "/api/v1/appointments"
SLOTS = "/api/v1/appointments/slots"
# No surrogates: a query string or JSON text cannot carry them undamaged anyway
# (lone surrogates in JSON escapes are tried separately below).
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=300)


@pytest.fixture
def setup(db):
    """A member with a token, a free slot and a booked appointment; time pinned."""
    with time_machine.travel(NOW, tick=False):
        cpam = CpamFactory()
        make_advisor(cpam)
        account = AccountFactory(member=MemberFactory(cpam=cpam))
        client = Client()
        auth = bearer(client, account)
        search = {"motive": "at-mp", "channel": "phone"}
        other = client.get(SLOTS, search, **auth).json()[0]["slot"]
        response = client.post(
            BOOK, {"slot": other, **search}, content_type="application/json", **auth
        )
        assert response.status_code == 201
        slot = client.get(SLOTS, {"motive": "arret-travail-ij", "channel": "phone"}, **auth)
        yield client, auth, slot.json()[0]["slot"]


def assert_json_error(response, statuses=(400, 422)):
    assert response.status_code in statuses, (response.status_code, response.content[:300])
    body = response.json()
    assert isinstance(body["error"], str)
    return body


def valid_body(slot: str) -> dict:
    return {"slot": slot, "motive": "arret-travail-ij", "channel": "phone"}


GARBAGE_BODIES = [
    ("", "invalid_request"),  # no body: no field
    ("not json", "malformed_json"),
    ("{", "malformed_json"),
    ("[" * 100_000, "malformed_json"),  # deeper than the parser's recursion
    ('{"a":' * 50_000 + "1" + "}" * 50_000, "malformed_json"),
    (b"\xff\xfe\x00", "malformed_json"),
    ("null", "invalid_request"),
    ("[]", "invalid_request"),
    ("1", "invalid_request"),
    ('"slot"', "invalid_request"),
    ("{}", "invalid_request"),
]


def test_garbage_bodies(setup):
    client, auth, _ = setup
    reschedule = f"{BOOK}/{Appointment.objects.get().public_id}/reschedule"
    for path in (BOOK, reschedule):
        for body, error in GARBAGE_BODIES:
            response = client.post(path, body, content_type="application/json", **auth)
            assert assert_json_error(response)["error"] == error, (path, body[:20])


MALFORMED_FIELDS = [
    ({"slot": 1}, ["slot"]),
    ({"slot": None}, ["slot"]),
    ({"slot": ["a"]}, ["slot"]),
    ({"slot": {"a": 1}}, ["slot"]),
    ({"slot": "x" * 201}, ["slot"]),
    ({"motive": 7}, ["motive"]),
    ({"motive": ""}, ["motive"]),
    ({"motive": "arret\u0000travail"}, ["motive"]),
    ({"motive": "arrêt-travail"}, ["motive"]),
    ({"motive": "' OR 1=1 --"}, ["motive"]),
    ({"channel": True}, ["channel"]),
    ({"channel": "x" * 21}, ["channel"]),
    ({"message": 12}, ["message"]),
    ({"message": "bonjour\u0000"}, ["message"]),
    ({"extra": "field"}, ["extra"]),
]


def test_malformed_fields_are_named(setup):
    client, auth, slot = setup
    for overrides, fields in MALFORMED_FIELDS:
        body = json.dumps({**valid_body(slot), **overrides})
        response = client.post(BOOK, body, content_type="application/json", **auth)
        # Named as everywhere in the API: after the body's parameter.
        expected = {"error": "invalid_request", "fields": [f"payload.{f}" for f in fields]}
        assert assert_json_error(response, statuses=(422,)) == expected
    assert Appointment.objects.count() == 1  # the one of the setup


def test_missing_fields_are_named(setup):
    client, auth, _ = setup
    response = client.post(BOOK, "{}", content_type="application/json", **auth)
    assert response.json() == {
        "error": "invalid_request",
        "fields": ["payload.channel", "payload.motive", "payload.slot"],
    }


def test_lone_surrogates_and_duplicate_keys(setup):
    client, auth, _ = setup
    for raw in (
        '{"slot": "\\ud800", "motive": "arret-travail-ij", "channel": "phone"}',
        '{"slot": "S", "motive": "arret-travail-ij", "channel": "phone", "message": "\\udfff"}',
        '{"slot": "a", "slot": "b", "motive": "arret-travail-ij", "channel": "phone"}',
    ):
        assert_json_error(client.post(BOOK, raw, content_type="application/json", **auth))


def test_a_body_too_large_is_refused(setup):
    client, auth, slot = setup
    body = json.dumps({**valid_body(slot), "message": "x" * 2_000_000})
    response = client.post(BOOK, body, content_type="application/json", **auth)
    assert response.status_code == 413
    assert response.json() == {"error": "request_too_large"}


GARBAGE_QUERIES = [
    "",
    "motive=arret-travail-ij",
    "channel=phone",
    "motive=&channel=phone",
    "motive=%00&channel=phone",
    "motive=arret-travail-ij&channel=%00",
    "motive=arret-travail-ij&channel=",
    "motive=" + "a" * 41 + "&channel=phone",
    "motive=arret-travail-ij&channel=phone&from=demain",
    "motive=arret-travail-ij&channel=phone&from=2026-02-30",
    "motive=arret-travail-ij&channel=phone&from=99999-01-01",
    "motive=arret-travail-ij&channel=phone&to=-1",
    "motive=arret-travail-ij&channel=phone&site=-1",
    "motive=arret-travail-ij&channel=phone&site=0",
    "motive=arret-travail-ij&channel=phone&site=abc",
    "motive=arret-travail-ij&channel=phone&site=1e3",
    "motive=arret-travail-ij&channel=phone&site=99999999999999999999999",
    "motive=arret-travail-ij&channel=phone&site=%00",
    "motive=%FF%FE&channel=phone",
]


def test_garbage_queries(setup):
    client, auth, _ = setup
    for query in GARBAGE_QUERIES:
        assert_json_error(client.get(f"{SLOTS}?{query}", **auth))
    # Repeated or unknown parameters, a date with a midnight time: harmless.
    for query in (
        "motive=arret-travail-ij&motive=at-mp&channel=phone",
        "motive=arret-travail-ij&channel=phone&unknown=1",
        "motive=arret-travail-ij&channel=phone&from=2026-11-03T00:00:00",
    ):
        assert client.get(f"{SLOTS}?{query}", **auth).status_code == 200, query


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(slot=TEXT, motive=TEXT, channel=TEXT, message=TEXT)
def test_any_strings_in_a_booking_get_a_json_error(setup, slot, motive, channel, message):
    client, auth, _ = setup
    body = {"slot": slot, "motive": motive, "channel": channel, "message": message}
    response = client.post(BOOK, json.dumps(body), content_type="application/json", **auth)
    assert_json_error(response)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    params=st.dictionaries(
        st.sampled_from(["motive", "channel", "from", "to", "site"]), TEXT, max_size=5
    )
)
def test_any_query_gets_an_answer_or_a_json_error(setup, params):
    client, auth, _ = setup
    response = client.get(SLOTS, params, **auth)
    if response.status_code != 200:
        assert_json_error(response)


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(appointment_id=st.text(st.characters(blacklist_categories=("Cs",)), min_size=1))
def test_any_id_is_not_found(setup, appointment_id):
    client, auth, _ = setup
    path = f"{BOOK}/{quote(appointment_id, safe='')}/cancel"
    response = client.post(path, "{}", content_type="application/json", **auth)
    assert response.status_code == 404
    assert response.json() == {"error": "not_found"}
