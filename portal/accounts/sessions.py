"""The sliding idle timeout, without a write to the sessions table at every request.

The idle timeout is the session's own expiry (`SESSION_COOKIE_AGE`, that is
`SESSION_IDLE_TIMEOUT`), set by the server each time the session is saved.
Django's `SESSION_SAVE_EVERY_REQUEST` pushes it back with an UPDATE and a
commit at every request; `SlidingSessionMiddleware`, in place of Django's
`SessionMiddleware`, saves an unchanged session again only when its last save
is `SESSION_REFRESH_EVERY` seconds old or more (and always on HEAD, the
session-timeout warning's "Rester connecté(e)" request). A session changed by
the request is saved as before. The expiry is never later than
`SESSION_IDLE_TIMEOUT` after the last request; it may come up to
`SESSION_REFRESH_EVERY` seconds earlier.
"""

import time
from functools import partial

from django.conf import settings
from django.contrib.sessions.middleware import SessionMiddleware

# When the session was last saved (time.time()), kept in the session itself.
REFRESHED_AT = "session_refreshed_at"


def _refresh_due(session, now: float) -> bool:
    """Whether the session is to be saved at the end of this request."""
    refreshed = session.get(REFRESHED_AT)
    return (
        session.modified
        or not isinstance(refreshed, int | float)
        or not 0 <= now - refreshed < settings.SESSION_REFRESH_EVERY
    )


def idle_seconds_left(session) -> int:
    """Seconds before the session's idle expiry, once this request is answered."""
    age = session.get_expiry_age()
    now = time.time()
    if _refresh_due(session, now):
        return age
    return max(0, int(age - (now - session[REFRESHED_AT])))


class SlidingSessionMiddleware(SessionMiddleware):
    """Django's `SessionMiddleware`, saving an unchanged session at most every minute."""

    def process_request(self, request):
        super().process_request(request)
        # `{{ request.session_idle_seconds_left }}`: what the warning counts down from.
        request.session_idle_seconds_left = partial(idle_seconds_left, request.session)

    def process_response(self, request, response):
        session = getattr(request, "session", None)
        if (
            session is not None
            and (session.session_key or session.accessed)
            and response.status_code < 500
        ):
            session.get(REFRESHED_AT)  # loads it, as a save would have
            if not session.is_empty() and (
                request.method == "HEAD" or _refresh_due(session, time.time())
            ):
                session[REFRESHED_AT] = time.time()
        return super().process_response(request, response)
