from django.apps import AppConfig


class ThreatsConfig(AppConfig):
    name = "threats"
    verbose_name = "Threats"

    def ready(self):
        from . import access

        access.connect_signals()  # audit lines for logins; sockets closed when a session ends
