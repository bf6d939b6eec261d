"""The fan-out ceiling: a bare Channels consumer on the same Daphne and Redis layer, with no auth,
no database and no ordering logic. It joins one group and sends each message's text. The cluster
benchmark runs it beside the real app to show how much of the ceiling the app keeps.

    daphne bench.bare_fanout_app:application     (BARE_REDIS_URL must name the Redis server)
"""

import os

import django
from django.conf import settings

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="bare-fanout-bench",
        INSTALLED_APPS=["channels"],
        CHANNEL_LAYERS={"default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [{"address": os.environ["BARE_REDIS_URL"], "socket_timeout": None,
                                  "max_connections": 10000}]},
        }},
    )
    django.setup()

from channels.generic.websocket import AsyncWebsocketConsumer
from channels.routing import ProtocolTypeRouter, URLRouter
from django.urls import re_path

GROUP = "bare"


class BareConsumer(AsyncWebsocketConsumer):
    async def connect(self):
        await self.channel_layer.group_add(GROUP, self.channel_name)
        await self.accept()

    async def disconnect(self, code):
        await self.channel_layer.group_discard(GROUP, self.channel_name)

    async def bare_event(self, message):
        await self.send(text_data=message["text"])


application = ProtocolTypeRouter({"websocket": URLRouter([re_path(r"^ws$", BareConsumer.as_asgi())])})
