"""The API against its own OpenAPI document, fuzzed by schemathesis.

Every operation of /api/v1/openapi.json, authenticated as the demo member
(`load_demo`: reimbursements, allowances, sites, advisors' slots, an
appointment), through the Django WSGI application: no answer is a server
error, and every answer is declared (status, content type, headers, body).

Bounded for CI (about a minute on 2 cores): `SCHEMATHESIS_MAX_EXAMPLES`
examples per operation and phase, derandomized so that a run is repeatable.
For a deeper, random search:

    SCHEMATHESIS_MAX_EXAMPLES=500 SCHEMATHESIS_RANDOM=1 make test PYTEST_ARGS=tests/api/test_schemathesis.py
"""

import io
import os
from datetime import timedelta

import pytest
import schemathesis
from django.core.management import call_command
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, transaction
from django.utils import timezone
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig

from config.wsgi import application
from portal.www.management.commands.load_demo import DEMO_PASSWORD, MEMBERS

MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "25"))
DEMO_NIR = MEMBERS[0][0]


def token_for(nir: str, password: str) -> str:
    """A bearer token the way the app gets one (through the same WSGI transport)."""
    case = schema["/api/v1/auth/token"]["POST"].Case(body={"nir": nir, "password": password})
    response = case.call()
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


@pytest.fixture(scope="module")
def demo_token(django_db_setup, django_db_blocker):
    """The demo data and a token of the demo member, once for the module.

    Loading the demo takes seconds: it is done once, inside a transaction
    that is rolled back after the module; each test (one per operation) runs
    in a savepoint of it, so that what one operation changes (a booking, a
    cancellation) does not reach the next.
    """
    # Schemathesis calls the WSGI application itself, not through Django's
    # test client (which would connect them again after each request): what
    # keeps each request from closing the connection, and on PostgreSQL the
    # test's transaction with it.
    for signal in (request_started, request_finished):
        signal.disconnect(close_old_connections)
    outer = transaction.atomic()
    try:
        with django_db_blocker.unblock():
            outer.__enter__()
        try:
            with django_db_blocker.unblock():
                call_command("load_demo", stdout=io.StringIO())
                token = token_for(DEMO_NIR, DEMO_PASSWORD)
            yield token
        finally:
            with django_db_blocker.unblock():
                transaction.set_rollback(True)
                outer.__exit__(None, None, None)
    finally:
        for signal in (request_started, request_finished):
            signal.connect(close_old_connections)


# The API answers `400` with a stable code to a well-formed value that its
# rules refuse (an unknown beneficiary or motive, a month out of range): the
# schema cannot say those. A `422` to a request the schema allows, though,
# means that the schema promises more than the code takes.
CONFIG = SchemathesisConfig.from_dict(
    {
        "checks": {
            "positive_data_acceptance": {
                "expected-statuses": ["2xx", "400", "401", "404", "409", "429"]
            }
        }
    }
)
# Loaded at collection time from the application itself, as a client would.
schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", application, config=CONFIG)


# Schemathesis builds some cases when the tests are collected, before there is
# a token: they carry this stand-in, which the test replaces. Declared as the
# schema's auth, it is left out of the cases that test a missing or bad token.
TOKEN_STAND_IN = "demo-member-token"


@schema.auth(refresh_interval=None)
class DemoToken:
    def get(self, case, ctx):
        return TOKEN_STAND_IN

    def set(self, case, data, ctx):
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


@pytest.mark.django_db
@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=os.environ.get("SCHEMATHESIS_RANDOM") != "1",
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_api_conforms_to_its_schema(case, demo_token):
    if (case.headers or {}).get("Authorization") == f"Bearer {TOKEN_STAND_IN}":
        if case.operation.path.endswith("/auth/logout"):
            # Logging out revokes the token: a throwaway one, so that the others keep theirs.
            demo_token = token_for(DEMO_NIR, DEMO_PASSWORD)
        case.headers["Authorization"] = f"Bearer {demo_token}"
    case.call_and_validate()


@pytest.mark.django_db
def test_the_answers_random_data_cannot_reach_conform_too(demo_token):
    """Real slots, a booking moved then cancelled, a statement, a second page of
    reimbursements: values that the fuzzer cannot guess, under the same checks."""
    auth = {"Authorization": f"Bearer {demo_token}"}

    def call(method, path, status, **parts):
        response = schema[f"/api/v1{path}"][method].Case(headers=auth, **parts).call_and_validate()
        assert response.status_code == status, response.text
        return response

    motive = next(
        item["code"]
        for item in call("GET", "/appointments/motives", 200).json()
        # The demo member already has an appointment for sick-leave payments.
        if "phone" in item["channels"] and item["code"] != "arret-travail-ij"
    )
    search = {"motive": motive, "channel": "phone"}
    slots = call("GET", "/appointments/slots", 200, query=search).json()
    assert len(slots) >= 2
    booking = {"slot": slots[0]["slot"], "motive": motive, "channel": "phone"}
    appointment = call("POST", "/appointments", 201, body=booking).json()
    path = {"appointment_id": appointment["id"]}
    call("GET", "/appointments/{appointment_id}", 200, path_parameters=path)
    call("GET", "/appointments", 200)
    moved = {"slot": slots[-1]["slot"]}
    call("POST", "/appointments/{appointment_id}/reschedule", 200, path_parameters=path, body=moved)
    call("POST", "/appointments/{appointment_id}/cancel", 200, path_parameters=path)

    last_month = (timezone.localdate().replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
    pdf = call("GET", "/documents/monthly-statement", 200, query={"month": last_month})
    assert pdf.content.startswith(b"%PDF")

    first = call("GET", "/reimbursements", 200, query={"beneficiary": "me"}).json()
    if first["next_cursor"]:
        call("GET", "/reimbursements", 200, query={"cursor": first["next_cursor"]})
    # A number is no date (pydantic would read `0` as 1970-01-01): found by the fuzzing.
    call("GET", "/reimbursements", 422, query={"to": "0"})
    call("GET", "/daily-allowances", 200)
    call("GET", "/me", 200)

    camille = MEMBERS[1]
    call(
        "POST",
        "/password-reset",
        202,
        body={"nir": DEMO_NIR, "birth_date": MEMBERS[0][1].isoformat()},
    )
    call(
        "POST",
        "/accounts",
        202,
        body={
            "nir": camille[0],
            "birth_date": camille[1].isoformat(),
            "iban_last7": camille[8][-7:],
            "email": "camille.nouvelle@example.org",
            "password": "Un-Mot-De-Passe-Solide-2026",
        },
    )
