"""The mixed load of `make loadtest`: Locust users on the member site and the API.

Three kinds of members, each with their own address in X-Forwarded-For (the
stack trusts loopback as its proxy, as production trusts nginx):

- `PaymentsReader` (half of the users): logs in through the web form (CSRF
  token, NIR, password: one Argon2id verification), then reads Mes paiements
  and Mes indemnités journalières; now and then logs in again.
- `ResetRequester` (a fifth): asks for a password-reset link, by the web form
  or the API, each time for a member of the `reset` pool never asked for
  before, from another address.
- `Booker` (the rest): with a bearer token, searches the free phone slots of
  the load's motive over the whole window and books one of the ten first
  (so that members collide on the same slots: `409 slot_taken` is an
  expected answer), then takes the next member of the `book` pool.

Reads LOADTEST_DATA (the JSON `loadtest.seed` wrote) and writes, when Locust
quits, LOADTEST_RESULTS: every answer's latency and status by request name,
the reset requests accepted (by NIR) and the bookings made (201).
"""

import itertools
import json
import os
import random
import re
import threading
import time
from collections import Counter, defaultdict

from locust import FastHttpUser, between, events, task

DATA = json.loads(open(os.environ["LOADTEST_DATA"]).read())  # noqa: SIM115 (read once)
CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
SLOTS_PATH = f"/api/v1/appointments/slots?motive={DATA['motive']}&channel=phone"

_lock = threading.Lock()
_addresses = itertools.count(1)
_logins = itertools.cycle(DATA["login"])
_resets = iter(DATA["reset"])
_bookers = iter(DATA["book"])

latencies: dict[str, list[float]] = defaultdict(list)
statuses: dict[str, Counter] = defaultdict(Counter)
reset_accepted: list[dict] = []
# Every member a reset request was sent for, answered or not: a request still
# in flight when Locust stops has no answer here, but the server may take it.
reset_sent: list[str] = []
bookings: list[dict] = []
pools_exhausted: Counter = Counter()
started_at = time.time()


def _next(pool, name: str):
    with _lock:
        item = next(pool, None)
    if item is None:
        pools_exhausted[name] += 1
    return item


def _address() -> str:
    n = next(_addresses)
    return f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"


@events.request.add_listener
def _count(request_type, name, response_time, response_length, response, exception, **kwargs):
    status = getattr(response, "status_code", 0) or 0
    if exception is not None and not status:
        status = 0  # no answer (refused, reset, timed out)
    statuses[name][str(status)] += 1
    latencies[name].append(response_time)


@events.quitting.add_listener
def _write(environment, **kwargs):
    path = os.environ.get("LOADTEST_RESULTS")
    if not path:
        return
    with open(path, "w") as out:
        json.dump(
            {
                "started_at": started_at,
                "stopped_at": time.time(),
                "latencies_ms": latencies,
                "statuses": statuses,
                "reset_accepted": reset_accepted,
                "reset_sent": reset_sent,
                "bookings": bookings,
                "pools_exhausted": pools_exhausted,
            },
            out,
        )


# gunicorn closes a connection idle for 5 s (deploy/gunicorn.conf.py). A
# request sent on one just as it closes it gets no answer, and a POST is not
# sent again (RFC 9110 9.2.2). In production nginx is gunicorn's client and
# keeps its idle upstream connections 4 s only (deploy/nginx/portal.conf);
# here the users are, and they follow the same rule: a user about to think
# for 4 s or more closes its connection first and opens a new one after.
IDLE_REUSE_SECONDS = 4.0


class Member(FastHttpUser):
    abstract = True
    think = between(1, 5)
    # A request that met a closed connection all the same is sent again once
    # if it is a GET; a POST counts as a request without an answer.
    max_retries = 1

    def wait_time(self) -> float:
        seconds = self.think()
        if seconds >= IDLE_REUSE_SECONDS:
            self.client.client.clientpool.close()
        return seconds

    def on_start(self):
        self.headers = {"X-Forwarded-For": _address()}

    def csrf(self, path: str, name: str) -> str | None:
        response = self.client.get(path, headers=self.headers, name=name)
        found = CSRF.search(response.text or "")
        return found.group(1) if found else None


class PaymentsReader(Member):
    weight = 5
    think = between(1, 5)

    def on_start(self):
        super().on_start()
        self.login()

    def login(self):
        self.client.cookiejar.clear()
        nir = _next(_logins, "login")
        token = self.csrf("/connexion/", "GET /connexion/")
        with self.client.post(
            "/connexion/",
            data={"csrfmiddlewaretoken": token or "", "nir": nir, "password": DATA["password"]},
            headers=self.headers,
            allow_redirects=False,
            name="POST /connexion/ (login)",
            catch_response=True,
        ) as response:
            if response.status_code != 302:
                response.failure(f"login answered {response.status_code}")

    @task(6)
    def payments(self):
        self.client.get("/paiements/", headers=self.headers, name="GET /paiements/")

    @task(2)
    def allowances(self):
        self.client.get("/indemnites/", headers=self.headers, name="GET /indemnites/")

    @task(1)
    def login_again(self):
        self.login()


class ResetRequester(Member):
    weight = 2
    think = between(2, 8)

    @task
    def api(self):
        member = _next(_resets, "reset")
        if member is None:
            return
        # Each request is another member, from another place: the per-address
        # limit (20 an hour) is not what this measures.
        self.headers = {"X-Forwarded-For": _address()}
        reset_sent.append(member["email"])
        with self.client.post(
            "/api/v1/password-reset",
            json={"nir": member["nir"], "birth_date": member["birth_date"]},
            headers=self.headers,
            name="POST /api/v1/password-reset",
            catch_response=True,
        ) as response:
            if response.status_code == 202:
                reset_accepted.append({**member, "channel": "api"})
            else:
                response.failure(f"reset answered {response.status_code}")

    @task
    def web(self):
        member = _next(_resets, "reset")
        if member is None:
            return
        self.headers = {"X-Forwarded-For": _address()}
        token = self.csrf("/mot-de-passe-oublie/", "GET /mot-de-passe-oublie/")
        year, month, day = member["birth_date"].split("-")
        reset_sent.append(member["email"])
        with self.client.post(
            "/mot-de-passe-oublie/",
            data={
                "csrfmiddlewaretoken": token or "",
                "nir": member["nir"],
                "birth_date": f"{day}/{month}/{year}",
            },
            headers=self.headers,
            allow_redirects=False,
            name="POST /mot-de-passe-oublie/",
            catch_response=True,
        ) as response:
            if response.status_code == 302:
                reset_accepted.append({**member, "channel": "web"})
            else:
                response.failure(f"reset form answered {response.status_code}")


class Booker(Member):
    weight = 3
    think = between(1, 5)

    def on_start(self):
        super().on_start()
        self.take()

    def take(self):
        self.member = _next(_bookers, "book")
        if self.member:
            self.auth = {**self.headers, "Authorization": f"Bearer {self.member['token']}"}

    def search(self):
        return self.client.get(SLOTS_PATH, headers=self.auth, name="GET /api/v1/appointments/slots")

    @task(3)
    def look(self):
        if self.member:
            self.search()

    @task(1)
    def book(self):
        if not self.member:
            return
        found = self.search()
        try:
            slots = json.loads(found.text or "[]")
        except ValueError:
            return
        if not slots:
            return
        slot = random.choice(slots[:10])  # noqa: S311 (a load pattern, not a secret)
        with self.client.post(
            "/api/v1/appointments",
            json={"slot": slot["slot"], "motive": DATA["motive"], "channel": "phone"},
            headers=self.auth,
            name="POST /api/v1/appointments",
            catch_response=True,
        ) as response:
            if response.status_code == 201:
                body = response.json()
                bookings.append(
                    {"id": body["id"], "start": body["start"], "email": self.member["email"]}
                )
                self.take()
            elif response.status_code == 409:
                response.success()  # someone was faster: the expected answer to contention
            else:
                response.failure(f"booking answered {response.status_code}")
