"""Keeps every /api/ answer JSON, including the 405 that django-ninja renders as plain text."""

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
