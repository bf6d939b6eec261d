from django.urls import re_path

from .consumers import ThreatConsumer

websocket_urlpatterns = [re_path(r"^ws/?$", ThreatConsumer.as_asgi())]
