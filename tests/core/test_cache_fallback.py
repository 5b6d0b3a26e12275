"""Redis unreachable: logins and reset requests keep working, their throttling counted
per process (degraded, not open), and the shared cache is tried again after a while.

The shared cache here is Django's RedisCache pointed at a loopback port nobody
listens on (refused at once) or at a socket that accepts and never answers (a
hung Redis: the read times out). No Redis server is needed.
"""

import json
import logging
import socket

import pytest
from django.core.cache import caches
from django.test import override_settings

from portal.core import throttle
from portal.core.cache import FallbackCache, counters
from tests.factories import PASSWORD, AccountFactory

REDIS = "django.core.cache.backends.redis.RedisCache"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def redis_caches(port: int, timeout: float = 0.3) -> dict:
    return {
        "default": {
            "BACKEND": REDIS,
            "LOCATION": f"redis://127.0.0.1:{port}/0",
            "OPTIONS": {"socket_connect_timeout": timeout, "socket_timeout": timeout},
        }
    }


@pytest.fixture(autouse=True)
def _fresh_breaker():
    counters.reset()
    yield
    counters.reset()


@pytest.fixture
def redis_refused():
    with override_settings(CACHES=redis_caches(closed_port())):
        yield


@pytest.fixture
def redis_hung():
    """A listening socket that never accepts: connections sit in its backlog, reads time out."""
    server = socket.create_server(("127.0.0.1", 0), backlog=64)
    try:
        with override_settings(CACHES=redis_caches(server.getsockname()[1])):
            yield
    finally:
        server.close()


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Flaky:
    """A stand-in shared cache that is down while `down` is set, counting the calls it got."""

    def __init__(self):
        self.down = False
        self.calls = 0
        self.data = {}

    def _maybe_fail(self):
        self.calls += 1
        if self.down:
            raise TimeoutError("Timeout reading from socket")

    def get(self, key, default=None):
        self._maybe_fail()
        return self.data.get(key, default)

    def set(self, key, value, timeout=None):
        self._maybe_fail()
        self.data[key] = value


@pytest.fixture
def flaky(monkeypatch):
    shared = Flaky()
    clock = Clock()
    cache = FallbackCache(retry_after=10, clock=clock)
    cache.local.clear()
    monkeypatch.setattr("portal.core.cache.caches", {"default": shared})
    return shared, clock, cache


def test_redis_refused_counts_in_the_process_and_still_limits(redis_refused, caplog):
    caplog.set_level(logging.ERROR, logger="portal.core.cache")
    results = [throttle.hit_limit(kind="t:ip", value="192.0.2.1", limit=3) for _ in range(5)]
    assert results == [False, False, False, True, True]  # degraded, not open
    assert counters.degraded
    # One error line when the breaker trips, not one per call.
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "unreachable" in errors[0].getMessage()
    assert "per process" in errors[0].getMessage()


def test_failure_throttle_keeps_its_delay_without_redis(redis_refused):
    login = throttle.FailureThrottle(kind="t:login", free=2, max_delay=60, ceiling=100)
    for _ in range(2):
        assert login.check("acct").allowed
        login.fail("acct")
    verdict = login.check("acct")
    assert verdict.allowed is False and verdict.retry_after > 0
    login.reset("acct")
    assert login.check("acct").allowed


def test_a_hung_redis_costs_one_timeout_per_retry_period(redis_hung):
    import time

    started = time.monotonic()
    for _ in range(20):
        throttle.hit_limit(kind="t:ip", value="192.0.2.2", limit=100)
    # 0.3 s for the first call's timeout, then the per-process counters at once:
    # twenty timeouts would take 6 s.
    assert time.monotonic() - started < 2
    assert counters.degraded


def test_the_breaker_retries_the_shared_cache_after_the_period(flaky, caplog):
    shared, clock, cache = flaky
    caplog.set_level(logging.WARNING, logger="portal.core.cache")
    cache.set("k", "shared")
    shared.down = True
    assert cache.get("k") is None  # failed over: the process's memory does not have it
    calls = shared.calls
    cache.set("k", "local")
    assert cache.get("k") == "local"
    assert shared.calls == calls  # not tried while degraded
    clock.now += 11
    assert cache.get("k") == "local"  # tried once, still down, back to the process's memory
    assert shared.calls == calls + 1
    shared.down = False
    clock.now += 11
    assert cache.get("k") == "shared"
    assert not cache.degraded
    assert "reachable again" in caplog.text


def test_other_errors_are_not_swallowed(monkeypatch):
    class Broken:
        def get(self, key, default=None):
            raise RuntimeError("a bug, not an outage")

    monkeypatch.setattr("portal.core.cache.caches", {"default": Broken()})
    cache = FallbackCache()
    with pytest.raises(RuntimeError):
        cache.get("k")
    assert not cache.degraded


def test_a_change_of_caches_resets_the_breaker(redis_refused):
    throttle.hit_limit(kind="t:ip", value="192.0.2.3", limit=5)
    assert counters.degraded
    with override_settings(
        CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    ):
        assert not counters.degraded


@pytest.mark.django_db
def test_login_works_with_redis_unreachable(client, redis_refused):
    account = AccountFactory()
    response = client.post("/connexion/", {"nir": account.nir, "password": PASSWORD})
    assert response.status_code == 302 and response["Location"] == "/mon-espace/"
    assert client.get("/mon-espace/").status_code == 200


@pytest.mark.django_db
def test_login_stays_throttled_with_redis_unreachable(client, redis_refused, settings):
    settings.LOGIN_FREE_FAILURES = 2
    account = AccountFactory()
    statuses = [
        client.post("/connexion/", {"nir": account.nir, "password": "Pas-Le-Bon-Mot-2"}).status_code
        for _ in range(4)
    ]
    assert statuses[:2] == [400, 400]
    assert 429 in statuses[2:]
    # Even the right password waits for the delay: the throttle did not fail open.
    right = client.post("/connexion/", {"nir": account.nir, "password": PASSWORD})
    assert right.status_code == 429


@pytest.mark.django_db
def test_reset_request_works_and_is_limited_with_redis_unreachable(client, redis_refused, settings):
    settings.PASSWORD_RESET_LIMIT_PER_IP = 2
    account = AccountFactory()
    body = json.dumps({"nir": account.nir, "birth_date": "1985-05-12"})
    statuses = [
        client.post("/api/v1/password-reset", body, content_type="application/json").status_code
        for _ in range(3)
    ]
    assert statuses == [202, 202, 429]


@pytest.mark.django_db
def test_readyz_still_reports_the_shared_cache_down(client, redis_refused):
    throttle.hit_limit(kind="t:ip", value="192.0.2.4", limit=5)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["cache"] == "error"
    assert caches["default"].__class__.__name__ == "RedisCache"
