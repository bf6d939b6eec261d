"""Queue again the analyses stuck in queued/running (what beat does every minute on its own)."""

from datetime import timedelta

from django.core.management.base import BaseCommand

from agents import tasks


class Command(BaseCommand):
    help = "Re-queue analyses stuck in queued/running, e.g. after the broker lost its queue."

    def add_arguments(self, parser):
        parser.add_argument("--older-than", type=float, default=tasks.STALE_AFTER.total_seconds(),
                            help="seconds since the threat last changed (default: %(default)s)")

    def handle(self, *args, older_than, **options):
        count = tasks.requeue_stale_analyses(older_than=timedelta(seconds=older_than))
        self.stdout.write(f"Re-queued {count} analyses.")
