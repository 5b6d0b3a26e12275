"""The throttling counters' cache: the shared one (Redis), or this process's memory when
the shared one cannot be reached.

Redis holds nothing durable here (docs/operations.md): losing it must not
stop members from logging in or asking for a reset link. `FallbackCache`
forwards each call to the shared cache; when that call fails because the
server is unreachable (refused, reset, timed out), it logs an error, counts
in a per-process memory cache instead, and keeps doing so for
`RETRY_AFTER` seconds before it tries the shared cache again, so that a
hung Redis costs one timeout per process every `RETRY_AFTER` seconds, not
one per request.

The result is degraded, not open: every limit still applies, but per
process, so that across N web processes an attacker gets at most N times
each limit while Redis is away (docs/operations.md, "Redis down: throttling
falls back to per-process counters"). Errors that do not mean "unreachable"
(a wrong password, a bug) are not caught.

The throttles and the agenda's search cache use it: `/readyz` still talks
to the shared cache directly and reports it down, so that the outage is seen.
"""

import logging
import threading
import time
from collections.abc import Callable

from django.core.cache import caches
from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.locmem import LocMemCache
from django.core.signals import setting_changed
from django.dispatch import receiver

logger = logging.getLogger(__name__)

# Seconds spent on the per-process counters after a failure before the
# shared cache is tried again.
RETRY_AFTER = 10.0
LOCAL_NAME = "portal-throttle-fallback"


def unreachable_errors() -> tuple[type[BaseException], ...]:
    """The exceptions that mean "the cache server cannot be reached"."""
    errors: list[type[BaseException]] = [ConnectionError, TimeoutError]
    try:
        from redis import exceptions
    except ImportError:  # pragma: no cover (redis is pinned in requirements.txt)
        pass
    else:
        # BusyLoadingError (a restarting server) is a ConnectionError.
        errors += [exceptions.ConnectionError, exceptions.TimeoutError]
    return tuple(errors)


class FallbackCache:
    """The cache named `alias`, or this process's memory while it is unreachable.

    Offers the calls the throttles and the agenda make (`add`, `incr`, `get`,
    `set`, `delete`, `get_many`, `set_many`); thread-safe (gunicorn runs
    several threads per process).
    """

    def __init__(
        self,
        alias: str = "default",
        *,
        retry_after: float = RETRY_AFTER,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.alias = alias
        self.retry_after = retry_after
        self.clock = clock
        self.local = LocMemCache(LOCAL_NAME, {"OPTIONS": {"MAX_ENTRIES": 100_000}})
        self.errors = unreachable_errors()
        self._lock = threading.Lock()
        self._down_until = 0.0
        self._tripped = False

    @property
    def degraded(self) -> bool:
        """True while the calls go to the per-process memory."""
        return self.clock() < self._down_until

    def reset(self) -> None:
        """Back to the shared cache at the next call, with empty local counters."""
        with self._lock:
            self._down_until = 0.0
            self._tripped = False
        self.local.clear()

    def _trip(self, exc: BaseException) -> None:
        with self._lock:
            self._down_until = self.clock() + self.retry_after
            self._tripped = True
        logger.error(
            "shared cache %r unreachable (%s: %s): throttling counts in this process only "
            "for the next %g s (degraded: limits apply per process)",
            self.alias,
            type(exc).__name__,
            exc,
            self.retry_after,
        )

    def _recovered(self) -> None:
        with self._lock:
            was, self._tripped = self._tripped, False
        if was:
            logger.warning("shared cache %r reachable again: throttling counts in it", self.alias)

    def _call(self, method: str, *args, **kwargs):
        if not self.degraded:
            try:
                result = getattr(caches[self.alias], method)(*args, **kwargs)
            except self.errors as exc:
                self._trip(exc)
            else:
                if self._tripped:
                    self._recovered()
                return result
        return getattr(self.local, method)(*args, **kwargs)

    def add(self, key, value, timeout=DEFAULT_TIMEOUT):
        return self._call("add", key, value, timeout=timeout)

    def incr(self, key, delta=1):
        return self._call("incr", key, delta)

    def get(self, key, default=None):
        return self._call("get", key, default)

    def set(self, key, value, timeout=DEFAULT_TIMEOUT):
        return self._call("set", key, value, timeout=timeout)

    def delete(self, key):
        return self._call("delete", key)

    def get_many(self, keys):
        return self._call("get_many", keys)

    def set_many(self, data, timeout=DEFAULT_TIMEOUT):
        return self._call("set_many", data, timeout=timeout)


counters = FallbackCache()
# The agenda's cached searches and their versions (portal.appointments.slots): with
# Redis away, each process caches for itself, and a booking still checks again.
agenda = FallbackCache()


@receiver(setting_changed)
def _caches_changed(*, setting, **kwargs):
    # Tests swap CACHES: a breaker tripped against the previous cache says
    # nothing about the new one.
    if setting == "CACHES":
        counters.reset()
        agenda.reset()
