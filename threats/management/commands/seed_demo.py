"""Demo data: customers, infrastructure events, context items, an analyst login and some history.

The login has a published password (analyst / analyst) and staff status, so with DJANGO_DEBUG=false
(what a real installation runs) the command refuses unless told `--insecure-demo-login`: `make run`
and the chart's `demo.seed` Job pass it on purpose (docs/security.md).
"""

import random
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from threats import analysis, generator, services
from threats.choices import CLOSED_STATUSES, Disposition
from threats.models import ContextItem, InfraEvent, Threat

ANALYST_PERMISSIONS = [
    "threats.view_threat", "threats.add_threat", "threats.change_threat",
    "threats.view_customer", "threats.view_infraevent", "threats.view_contextitem", "threats.view_threatevent",
    "threats.add_infraevent", "threats.change_infraevent", "threats.add_contextitem", "threats.change_contextitem",
    "agents.view_agentrun",
]
INFRA = [
    ("CryptoExchange Pro", "deployment", "matching-engine", "Release 4.12 of the order API", 25, 5),
    ("RetailMax", "scaling", "web", "Autoscaled web tier 6 -> 14 pods for a flash sale", 40, None),
    ("Global Finance", "maintenance", "sso", "SSO provider maintenance window", 90, 60),
    (None, "outage", "cdn", "CDN edge degradation in ap-southeast-1", 30, 20),
    ("MediaStream", "deployment", "player-api", "Player API 2.3 rollout", 15, 3),
]
CONTEXT = [
    (None, "advisory", "Credential-stuffing campaign against retail logins",
     ["bot_traffic", "rate_limit_breach", "proxy_network"], ["credential", "login"]),
    ("CryptoExchange Pro", "news", "Bitcoin volatility: trading volume up 300% this week",
     ["rate_limit_breach", "anomaly_detection"], ["bitcoin", "trading"]),
    ("RetailMax", "business", "Black Friday flash sale in progress", ["bot_traffic", "rate_limit_breach"], ["sale"]),
    ("HealthCare Plus", "advisory", "Sector alert: ransomware groups targeting EHR servers", ["device_compromise"],
     ["ehr", "ransomware"]),
]


class Command(BaseCommand):
    help = "Create demo customers, infrastructure events, context items, an analyst login and some history."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="analyst")
        parser.add_argument("--password", default="analyst")
        parser.add_argument("--history", type=int, default=40, help="Past threats to create (default 40).")
        parser.add_argument("--seed", type=int, default=7, help="Random seed, for repeatable demo data.")
        parser.add_argument("--insecure-demo-login", action="store_true",
                            help="Create the demo login even with DJANGO_DEBUG=false (a demo, never production).")

    def handle(self, *args, username, password, history, seed, insecure_demo_login, **options):
        if not settings.DEBUG and not insecure_demo_login:
            raise CommandError(
                f"Refusing to create the demo login {username!r} with its published password: DJANGO_DEBUG is "
                "false, so this looks like a real installation. Pass --insecure-demo-login if this is a demo.")
        now = timezone.now()
        customers = {name: services.customer_for_name(name) for name in generator.CUSTOMER_CATALOGUE}
        self._infra(customers, now)
        self._context(customers, now)
        user = self._analyst(username, password)
        if history and not Threat.objects.exists():
            self._history(user, history, random.Random(seed), now)
        self.stdout.write(self.style.SUCCESS(
            f"Demo ready: {len(customers)} customers, {InfraEvent.objects.count()} infrastructure events, "
            f"{ContextItem.objects.count()} context items, {Threat.objects.count()} threats. "
            f"Log in as {username} / {password}."
        ))

    def _infra(self, customers, now):
        for name, kind, service, description, minutes_ago, duration in INFRA:
            started = now - timedelta(minutes=minutes_ago)
            InfraEvent.objects.get_or_create(
                description=description,
                defaults=dict(customer=customers.get(name), kind=kind, service=service, started_at=started,
                              ended_at=started + timedelta(minutes=duration) if duration else None),
            )

    def _context(self, customers, now):
        for name, kind, title, types, keywords in CONTEXT:
            ContextItem.objects.get_or_create(
                title=title,
                defaults=dict(customer=customers.get(name), kind=kind, threat_types=types, keywords=keywords,
                              valid_from=now - timedelta(days=2), valid_until=now + timedelta(days=14)),
            )

    def _analyst(self, username, password):
        group, _ = Group.objects.get_or_create(name="analyst")
        for perm in ANALYST_PERMISSIONS:
            app_label, codename = perm.split(".")
            group.permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
        user, created = get_user_model().objects.get_or_create(username=username, defaults={"is_staff": True})
        if created:
            user.set_password(password)
            user.save(update_fields=["password"])
        user.groups.add(group)
        return user

    def _history(self, user, count, rng, now):
        actor = services.Actor.for_user(user)
        with analysis.inline():
            for index in range(count):
                when = now - timedelta(hours=rng.uniform(1, 24 * 20))
                threat = services.trigger_threat(services.SYSTEM, rng=rng, now=when)
                if index % 3 != 2:
                    self._close(threat, actor, rng)
                # Each report on its own line, about ten in all: a carriage return ran them (and the
                # analysis log lines written meanwhile) into one line.
                if (index + 1) % max(1, count // 10) == 0 or index + 1 == count:
                    self.stdout.write(f"history {index + 1}/{count}")

    def _close(self, threat, actor, rng):
        disposition = rng.choice([Disposition.TRUE_POSITIVE, Disposition.FALSE_POSITIVE,
                                  Disposition.BENIGN_TRUE_POSITIVE])
        status = rng.choice(CLOSED_STATUSES)
        changes = {"status": status, "disposition": disposition, "assignee": actor.user,
                   "disposition_reason": f"Demo history: {disposition.label.lower()}."}
        services.do_triage(threat, actor, changes)
        Threat.objects.filter(pk=threat.pk).update(
            acknowledged_at=threat.received_at + timedelta(minutes=rng.randint(2, 40)),
            closed_at=threat.received_at + timedelta(minutes=rng.randint(45, 600)),
        )
