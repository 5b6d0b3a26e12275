import secrets

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
        authenticated = user is not None and user.is_authenticated
        if authenticated or request.path.startswith("/api/") or getattr(response, "no_store", False):
            response["Cache-Control"] = "no-store"
            response["Pragma"] = "no-cache"
        return response
