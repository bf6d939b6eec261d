from django.apps import AppConfig


class ThreatsConfig(AppConfig):
    name = "threats"
    verbose_name = "Threats"

    def ready(self):
        from django.db.models.signals import post_migrate

        from . import access, stats

        access.connect_signals()  # audit lines for logins; sockets closed when a session ends
        post_migrate.connect(stats.install_after_migrate, sender=self)  # the analytics' exact totals
