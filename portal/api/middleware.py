from django.http import JsonResponse

from .errors import HTTP_CODES


class ApiJsonErrorsMiddleware:
    """Under /api/, every error is JSON with a stable `error` code.

    Ninja answers its own routes in JSON; this covers what Django answers
    before or around them (unknown path, wrong method, server error pages).
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if (
            request.path.startswith("/api/")
            and response.status_code >= 400
            and not response.get("Content-Type", "").startswith("application/json")
        ):
            status = response.status_code
            code = HTTP_CODES.get(status, "server_error" if status >= 500 else "error")
            json_response = JsonResponse({"error": code}, status=status)
            for header in ("Allow", "Retry-After"):
                if header in response:
                    json_response[header] = response[header]
            return json_response
        return response
