"""Every API error is JSON with a stable `error` code; never a 500 for bad input."""

import json
import logging

from django.core.exceptions import RequestDataTooBig
from django.http import JsonResponse
from ninja.errors import AuthenticationError, HttpError, ValidationError

from portal.accounts.services import ServiceError, Throttled, WeakPassword
from portal.api.parser import DuplicateKeyError

logger = logging.getLogger(__name__)


HTTP_CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "request_too_large",
    429: "throttled",
    503: "service_unavailable",
}


# Service errors answered otherwise than 400: a well-formed request that the
# state of things refuses (the slot was taken, the appointment is too close…).
SERVICE_STATUSES = {
    "invalid_credentials": 401,
    "slot_taken": 409,
    "motive_already_booked": 409,
    "too_many_appointments": 409,
    "too_late": 409,
    "not_open": 409,
}


def error_response(status: int, code: str, **extra) -> JsonResponse:
    return JsonResponse({"error": code, **extra}, status=status)


def install(api) -> None:
    @api.exception_handler(ValidationError)
    def on_validation(request, exc):
        fields = sorted({".".join(str(p) for p in e.get("loc", [])[1:]) for e in exc.errors})
        return error_response(422, "invalid_request", fields=fields)

    @api.exception_handler(json.JSONDecodeError)
    def on_json(request, exc):
        return error_response(400, "malformed_json")

    @api.exception_handler(UnicodeDecodeError)
    def on_unicode(request, exc):
        return error_response(400, "malformed_json")

    @api.exception_handler(DuplicateKeyError)
    def on_duplicate_key(request, exc):
        return error_response(400, "malformed_json")

    @api.exception_handler(RequestDataTooBig)
    def on_too_big(request, exc):
        return error_response(413, "request_too_large")

    @api.exception_handler(AuthenticationError)
    def on_auth(request, exc):
        return error_response(401, "not_authenticated")

    @api.exception_handler(Throttled)
    def on_throttled(request, exc):
        response = error_response(429, "throttled", retry_after=exc.retry_after)
        response["Retry-After"] = str(exc.retry_after)
        return response

    @api.exception_handler(WeakPassword)
    def on_weak(request, exc):
        return error_response(400, "weak_password", rules=exc.rules)

    @api.exception_handler(ServiceError)
    def on_service(request, exc):
        return error_response(SERVICE_STATUSES.get(exc.code, 400), exc.code)

    @api.exception_handler(HttpError)
    def on_http(request, exc):
        if isinstance(exc.__cause__, RequestDataTooBig):
            return error_response(413, "request_too_large")
        if str(exc).startswith("Cannot parse request body"):
            return error_response(400, "malformed_json")
        return error_response(exc.status_code, HTTP_CODES.get(exc.status_code, "error"))
