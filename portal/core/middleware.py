import logging
import secrets
import time

from portal.core.request_id import reset_request_id, set_request_id


class RequestIdMiddleware:
    """Gives every request an id, carried on every log line and the response."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.request_id = secrets.token_hex(8)
        token = set_request_id(request.request_id)
        try:
            response = self.get_response(request)
        finally:
            reset_request_id(token)
        response["X-Request-Id"] = request.request_id
        return response


access_logger = logging.getLogger("portal.access")


class AccessLogMiddleware:
    """One line per request, through the secret-masking filter.

    Replaces the web server's own access log, which would write one-time
    tokens found in link paths before any filter could see them.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.monotonic()
        response = self.get_response(request)
        access_logger.info(
            "%s %s %s %.0fms",
            request.method,
            request.path,
            response.status_code,
            (time.monotonic() - started) * 1000,
        )
        return response


class NoStoreMiddleware:
    """`Cache-Control: no-store` on every authenticated page and every API answer.

    Personal data must not stay in a shared computer's browser cache or in a
    proxy; public pages may be cached normally.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        user = getattr(request, "user", None)
        authenticated = (user is not None and user.is_authenticated) or getattr(
            request, "staff", None
        ) is not None
        if (
            authenticated
            or request.path.startswith("/api/")
            or getattr(response, "no_store", False)
        ):
            response["Cache-Control"] = "no-store"
            response["Pragma"] = "no-cache"
        return response
