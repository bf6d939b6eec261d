"""ASGI entry point: Django for HTTP, the threat feed consumer for WebSockets.

Tracing is set up before the Django handler is built: the OpenTelemetry middleware joins the
middleware chain then, and every request gets a span (docs/observability.md).
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "socproject.settings")

from socproject import http_limits, telemetry  # noqa: E402

telemetry.instrument_web()
http_limits.install()

from django.core.asgi import get_asgi_application  # noqa: E402

django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402  (needs Django set up first)
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from threats import autogen  # noqa: E402
from threats.metrics import asgi_metrics  # noqa: E402
from threats.middleware import WebSocketOriginValidator  # noqa: E402
from threats.routing import websocket_urlpatterns  # noqa: E402


async def http(scope, receive, send):
    """`/metrics` bypasses Django (a scrape comes with the pod IP as Host); everything else is Django."""
    app = asgi_metrics if scope["path"] == "/metrics" else django_asgi_app
    await app(scope, receive, send)


application = ProtocolTypeRouter(
    {
        "http": http,
        # Origin first (exact allow-list, docs/security.md), then the session, then the consumer.
        "websocket": WebSocketOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)

autogen.start_if_enabled()
