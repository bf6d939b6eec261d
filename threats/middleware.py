"""Project middleware: every /api/ answer stays JSON (including the 405 that django-ninja renders as
plain text), and every response carries a Content-Security-Policy."""

from django.core.exceptions import DisallowedHost
from django.http import JsonResponse


class JsonApiErrorsMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if response.status_code == 405 and request.path.startswith("/api/"):
            allowed = response.get("Allow", "")
            response = JsonResponse({"detail": f"Method not allowed. Allowed: {allowed}."}, status=405)
            response["Allow"] = allowed
        return response


class ContentSecurityPolicyMiddleware:
    """A Content-Security-Policy without inline script or style: every page loads only its own
    vendored files, and a hostile alert field that slipped past escaping could still not run.
    The WebSocket is allowed on the page's own host (`ws:` and `wss:`, as the page was served)."""

    POLICY = (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "font-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'; "
        "connect-src 'self' ws://{host} wss://{host}"
    )

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = self.POLICY.format(host=_host(request))
        return response


def _host(request):
    try:
        return request.get_host()
    except DisallowedHost:  # a refused Host header still gets a policy, just without a socket host
        return "invalid.invalid"
