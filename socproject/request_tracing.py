"""The request span middleware: OpenTelemetry's Django middleware, made to end every request's span
in the context that started it (installed by telemetry.instrument_web).

The library's middleware attaches the span's context in process_request and detaches it in
process_response. Under ASGI, Django cancels a request whose client went away (a closed tab aborts
its pending requests, and drops its WebSocket): the CancelledError passes through this middleware
between the two, so process_response never ran. The attached `use_span` stayed in request.META
until the garbage collector closed it, on whatever thread happened to collect (often the embedded
analysis thread the request had started): the detach then ran in a foreign context, OpenTelemetry
logged "Failed to detach context", and the request span ended late or never (issue 23 item 9;
tests/test_telemetry_context.py). Here an abandoned request is answered, for its span only, as
499 (client closed request, nginx's code), in the same call that attached it.

Imported only by Django's middleware loader, after tracing is set up.
"""

import asyncio

from django.http import HttpResponse
from opentelemetry.instrumentation.django.middleware.otel_middleware import _DjangoMiddleware

CLIENT_CLOSED_REQUEST = 499


class RequestSpanMiddleware(_DjangoMiddleware):
    """_DjangoMiddleware whose span ends (and context detaches) even when no response comes back."""

    def __call__(self, request):
        self.process_request(request)
        try:
            response = self.get_response(request)
        except BaseException as exc:
            status = CLIENT_CLOSED_REQUEST if isinstance(exc, asyncio.CancelledError) else 500
            self.process_response(request, HttpResponse(status=status))
            raise
        return self.process_response(request, response)
