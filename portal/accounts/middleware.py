import time
from functools import partial

from django.conf import settings
from django.contrib import auth
from django.contrib.auth import logout
from django.contrib.auth import middleware as auth_middleware
from django.utils.functional import SimpleLazyObject

from .backends import read_with_session

SESSION_STARTED_KEY = "auth_started_at"


class SessionLifetimeMiddleware:
    """Ends a session 12 h after login whatever the activity (absolute timeout).

    The 30-minute idle timeout is the session's own expiry, pushed back as
    requests come (at most every minute: portal/accounts/sessions.py) and
    enforced by the server.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.user.is_authenticated:
            started = request.session.setdefault(SESSION_STARTED_KEY, time.time())
            if time.time() - started > settings.SESSION_ABSOLUTE_TIMEOUT:
                logout(request)
        return self.get_response(request)


class AuthenticationMiddleware(auth_middleware.AuthenticationMiddleware):
    """Django's `request.user`, from the account read with the session.

    The session store reads the session and its account in one query
    (portal/accounts/sessions.py); Django's `auth.get_user` then checks that
    account as one it would read itself (the session's id, active, the
    session hash), through `NirBackend.get_user`, which takes it instead of
    reading it again.
    """

    def process_request(self, request):
        super().process_request(request)
        request.user = SimpleLazyObject(partial(_user, request))


def _user(request):
    if not hasattr(request, "_cached_user"):
        session = getattr(request, "session", None)
        token = read_with_session.set(getattr(session, "account_read_with_it", None))
        try:
            request._cached_user = auth.get_user(request)
        finally:
            read_with_session.reset(token)
    return request._cached_user
