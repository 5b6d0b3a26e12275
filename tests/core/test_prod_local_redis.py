"""The Redis path of `make prod-local` (and of production): CACHE_URL=redis://…
gives Django's own RedisCache, whose throttling counters every web worker shares.

Needs the `redis-server` binary (Debian's package, which `make prod-local`
installs): skipped without it, so that `make test` never depends on Redis.
"""

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.test import override_settings

from portal.core import throttle

ROOT = Path(__file__).resolve().parent.parent.parent
REDIS = shutil.which("redis-server")

pytestmark = pytest.mark.skipif(
    REDIS is None,
    reason="redis-server is not installed (apt-get install redis-server, or run make prod-local "
    "once): the Redis path of make prod-local is not tested",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def redis_url(tmp_path):
    """A Redis server of our own on a free loopback port, configured as prod-local does."""
    port = free_port()
    password = "test-redis-password"
    config = tmp_path / "redis.conf"
    config.write_text(
        f'bind 127.0.0.1\nport {port}\nprotected-mode yes\ndir {tmp_path}\nsave ""\n'
        f"appendonly no\nmaxmemory 64mb\nmaxmemory-policy volatile-ttl\n"
        f"requirepass {password}\ndaemonize no\n"
    )
    server = subprocess.Popen([REDIS, str(config)], stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                pytest.fail("redis-server did not start")
            time.sleep(0.05)
    yield f"redis://:{password}@127.0.0.1:{port}/0", server
    server.terminate()
    server.wait(timeout=10)


def settings_caches(url: str) -> dict:
    """CACHES as config/settings/base.py builds it from CACHE_URL, in a fresh process."""
    env = {**os.environ, "CACHE_URL": url, "DJANGO_SETTINGS_MODULE": "config.settings.dev"}
    code = "from django.conf import settings; print(repr(settings.CACHES))"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    return eval(done.stdout)  # noqa: S307 (our own repr of a dict of strings and numbers)


HIT = """
import django, sys
django.setup()
from portal.core import throttle
print(throttle.hit_limit(kind="login:ip", value="192.0.2.7", limit=int(sys.argv[1])))
"""


@pytest.mark.django_db
def test_throttling_counters_are_shared_through_redis(redis_url, settings, client):
    url, server = redis_url
    caches = settings_caches(url)
    assert caches["default"]["BACKEND"] == "django.core.cache.backends.redis.RedisCache"
    assert caches["default"]["OPTIONS"] == {"socket_connect_timeout": 2, "socket_timeout": 2}

    with override_settings(CACHES=caches):
        # This process is one web worker: two attempts, under a limit of 2.
        assert throttle.hit_limit(kind="login:ip", value="192.0.2.7", limit=2) is False
        assert throttle.hit_limit(kind="login:ip", value="192.0.2.7", limit=2) is False
        # Another process (another web worker) sees the same counter: the third is over.
        env = {
            **os.environ,
            "CACHE_URL": url,
            "SECRET_KEY": settings.SECRET_KEY,
            "DJANGO_SETTINGS_MODULE": "config.settings.dev",
        }
        other = subprocess.run(
            [sys.executable, "-c", HIT, "2"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        assert other.stdout.strip() == "True"

        # The login throttle's state (a pickled dict) goes through Redis too.
        login = throttle.FailureThrottle(kind="t", free=1, max_delay=60, ceiling=10)
        login.fail("x")
        login.fail("x")
        assert login.check("x").allowed is False

        assert client.get("/readyz").json()["checks"]["cache"] == "ok"
        server.terminate()
        server.wait(timeout=10)
        response = client.get("/readyz")
        assert response.status_code == 503
        assert response.json()["checks"]["cache"] == "error"
