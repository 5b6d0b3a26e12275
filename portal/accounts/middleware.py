import time

from django.conf import settings
from django.contrib.auth import logout

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
