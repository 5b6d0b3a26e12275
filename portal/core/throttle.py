"""Attempt counters kept in the cache, shared by every web worker.

Keys are hashed so that no NIR or address appears in the cache in clear.
Two shapes are offered:

- `hit_limit`: a fixed one-hour window with a ceiling (account creation).
- `FailureThrottle`: a progressive delay after a few free failures, and an
  hourly ceiling (login). It refuses attempts until the delay has passed
  instead of sleeping, so an attacker cannot tie up web workers, and the
  delay never grows into a permanent lock.

When Redis cannot be reached the counters go on in each process's memory
(`portal.core.cache.FallbackCache`): logins and reset requests keep working,
their limits applying per process until Redis answers again.
"""

import hashlib
import time
from dataclasses import dataclass

from django.conf import settings

from .cache import counters as cache

WINDOW = 3600


def _key(kind: str, value: str) -> str:
    digest = hashlib.blake2b(
        value.encode(), key=settings.SECRET_KEY.encode()[:64], digest_size=16
    ).hexdigest()
    return f"throttle:{kind}:{digest}"


def _window_start(now: float) -> int:
    return int(now // WINDOW * WINDOW)


def hit_limit(*, kind: str, value: str, limit: int) -> bool:
    """Count one attempt; True when the hourly limit is now exceeded."""
    now = time.time()
    key = f"{_key(kind, value)}:{_window_start(now)}"
    cache.add(key, 0, timeout=WINDOW)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=WINDOW)
        count = 1
    return count > limit


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    retry_after: int = 0


class FailureThrottle:
    """Progressive delay: after `free` failures, wait 2, 4, 8… s (capped) between tries."""

    def __init__(self, *, kind: str, free: int, max_delay: int, ceiling: int):
        self.kind = kind
        self.free = free
        self.max_delay = max_delay
        self.ceiling = ceiling

    def _state(self, value: str) -> tuple[str, dict]:
        key = _key(self.kind, value)
        return key, cache.get(key) or {"failures": [], "last": 0.0}

    def check(self, value: str) -> Verdict:
        now = time.time()
        _, state = self._state(value)
        failures = [t for t in state["failures"] if t > now - WINDOW]
        if len(failures) >= self.ceiling:
            return Verdict(False, int(failures[0] + WINDOW - now) + 1)
        if len(failures) >= self.free:
            delay = min(2 ** (len(failures) - self.free + 1), self.max_delay)
            wait = state["last"] + delay - now
            if wait > 0:
                return Verdict(False, int(wait) + 1)
        return Verdict(True)

    def fail(self, value: str) -> None:
        now = time.time()
        key, state = self._state(value)
        failures = [t for t in state["failures"] if t > now - WINDOW][-self.ceiling :]
        failures.append(now)
        cache.set(key, {"failures": failures, "last": now}, timeout=WINDOW)

    def reset(self, value: str) -> None:
        cache.delete(_key(self.kind, value))
