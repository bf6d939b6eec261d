"""Create synthetic threats now: `manage.py generate_threats --count 10 --interval 2 --type bot_traffic`."""

import threading

from django.core.management.base import BaseCommand, CommandError

from threats import analysis, services
from threats.choices import Scenario, ThreatType


class Command(BaseCommand):
    help = "Generate synthetic threats (random, by type or by scenario) and analyse them."

    def add_arguments(self, parser):
        parser.add_argument("--count", type=int, default=1, help="How many threats (default 1; 0 = until stopped).")
        parser.add_argument("--interval", type=float, default=0.0, help="Seconds between threats (default 0).")
        parser.add_argument("--type", dest="threat_type", choices=ThreatType.values)
        parser.add_argument("--scenario", choices=Scenario.values)
        parser.add_argument("--customer", help="Customer name or slug (default: random).")

    def handle(self, *args, count, interval, threat_type, scenario, customer, **options):
        if count < 0 or interval < 0:
            raise CommandError("--count and --interval must not be negative.")
        try:
            services.check_trigger(threat_type, scenario, customer)
        except services.InvalidInput as exc:
            raise CommandError(f"{exc.field}: {exc.detail} Valid: {', '.join(exc.valid or [])}") from None
        pause, made = threading.Event(), 0
        with analysis.inline():
            while count == 0 or made < count:
                if made and pause.wait(interval):
                    break
                threat = services.trigger_threat(services.SYSTEM, threat_type, scenario, customer)
                threat.refresh_from_db()
                made += 1
                total = count or "∞"
                self.stdout.write(
                    f"[{made}/{total}] {threat.severity or threat.analysis_status:8} {threat.threat_type:18} "
                    f"{threat.customer.name:20} {threat.title}"
                )
        self.stdout.write(self.style.SUCCESS(f"Generated {made} threat(s)."))
