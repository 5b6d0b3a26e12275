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
from django.contrib.auth import BACKEND_SESSION_KEY, SESSION_KEY
from django.contrib.sessions.backends import db
from django.contrib.sessions.middleware import SessionMiddleware
from django.utils import timezone

from portal.core.rows import JoinedRow

from .backends import NirBackend
from .models import Session

# How Django names the backend of a member's login in the session's data.
NIR_BACKEND = f"{NirBackend.__module__}.{NirBackend.__qualname__}"

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


# A live session with its account (and the account's member and office).
_LIVE_SESSION = JoinedRow(
    Session, related=["account__member__cpam"], conditions=["session_key", "expire_date__gt"]
)


class SessionStore(db.SessionStore):
    """Django's database sessions (`SESSION_ENGINE`), read with their account.

    Every request reads its session, then the logged-in account: here, one
    query in SQL built once (portal/core/rows.py), the session's row joined to
    its account's through `Session.account`. `account_read_with_it` keeps that
    account for `portal.accounts.backends.NirBackend.get_user`, which still
    checks it as Django does for one it reads itself: same id as the session's
    data says, active, and the session's hash (password, epoch) by
    `django.contrib.auth.get_user`. A password change or a closed account
    therefore takes effect at the next request, as before.
    """

    account_read_with_it = None

    @classmethod
    def get_model_class(cls):
        return Session

    def _get_session_from_db(self):
        found = None
        if self.session_key is not None:
            found = _LIVE_SESSION.get(self.session_key, timezone.now())
        if found is None:
            self._session_key = None
            self.account_read_with_it = None
        else:
            self.account_read_with_it = found.account
        return found

    def create_model_instance(self, data):
        session = super().create_model_instance(data)
        session.account_id = _account_id(data)
        return session


def _account_id(data) -> int | None:
    """The logged-in member's account id in a session's data, if any."""
    if data.get(BACKEND_SESSION_KEY) != NIR_BACKEND:
        return None
    try:
        return int(data[SESSION_KEY])
    except (KeyError, TypeError, ValueError):
        return None


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
