from django.apps import AppConfig


class ThreatsConfig(AppConfig):
    name = "threats"
    verbose_name = "Threats"

    def ready(self):
        from django.db.models.signals import post_migrate

        from . import access, indexes, stats

        access.connect_signals()  # audit lines for logins; sockets closed when a session ends
        # Migrations install the totals' triggers; this only checks: a SQLite table rebuild drops them silently.
        post_migrate.connect(stats.check_after_migrate, sender=self)
        post_migrate.connect(indexes.restore_after_migrate, sender=self)  # SQLite table rebuilds drop them
