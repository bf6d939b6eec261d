"""The analytics' running totals (threats/stats.py) stay exact: after every kind of write — service
calls, bulk inserts, queryset updates, cascades, retention — they equal a full recount, and the
analytics built from them equal figures computed by brute force from every threat."""

import random
from datetime import timedelta

import pytest
from django.db import connection
from django.test import TestCase
from django.utils import timezone

from agents import coordinator
from tests import factories
from threats import analytics, services, stats
from threats.choices import CLOSED_STATUSES, SLA_MINUTES, Disposition, Severity, Status
from threats.models import Threat, ThreatCount

pytestmark = pytest.mark.django_db

TYPES = ["bot_traffic", "geo_anomaly", "device_compromise", "suricata:web_application_attack"]


def assert_exact():
    stored, recounted = stats.stored(), stats.recount()
    assert stored == recounted, repr([(k, stored.get(k), recounted.get(k)) for k in set(stored) | set(recounted) if stored.get(k) != recounted.get(k)])


def random_write(rng, customers, alice, threats):
    """One write of a randomly chosen kind, through the path real code uses for it."""
    kind = rng.choice(["create", "create", "bulk", "triage", "close", "reopen", "update", "delete", "analyse"])
    live = list(Threat.objects.values_list("pk", flat=True))
    if kind == "create" or not live:
        threats.append(factories.make_threat(customer=rng.choice(customers), analyse=rng.random() < 0.5,
                                             threat_type=rng.choice(TYPES)))
    elif kind == "bulk":
        now = timezone.now()
        rows = [{"customer": rng.choice(customers), "threat_type": rng.choice(TYPES), "title": "bulk",
                 "occurred_at": now, "received_at": now - timedelta(minutes=rng.randint(0, 600)),
                 "analysis_status": rng.choice(["queued", "grouped"])}
                for _ in range(rng.randint(1, 6))]
        with TestCase.captureOnCommitCallbacks(execute=False):
            services.do_create_threats(rows, services.SYSTEM)
    elif kind == "triage":
        services.triage(alice, rng.choice(live), status=rng.choice([Status.ACKNOWLEDGED, Status.INVESTIGATING]))
    elif kind == "close":
        services.triage(alice, rng.choice(live), status=rng.choice(CLOSED_STATUSES),
                        disposition=rng.choice(Disposition.values), reason="checked")
    elif kind == "reopen":
        services.triage(alice, rng.choice(live), status=Status.NEW)
    elif kind == "update":  # what seed_demo and several tests do: straight to the table
        pk, received = rng.choice(live), timezone.now() - timedelta(minutes=rng.randint(0, 600), microseconds=rng.randint(0, 10**6))
        Threat.objects.filter(pk=pk).update(
            severity=rng.choice(Severity.values + [""]), processing_ms=rng.choice([None, rng.randint(1, 900)]),
            requires_human_review=rng.random() < 0.5, received_at=received,
            acknowledged_at=rng.choice([None, received + timedelta(minutes=rng.randint(0, 60), seconds=rng.random())]),
            closed_at=rng.choice([None, received + timedelta(minutes=rng.randint(0, 300))]),
            customer=rng.choice(customers), threat_type=rng.choice(TYPES))
    elif kind == "delete":
        Threat.objects.filter(pk__in=rng.sample(live, min(len(live), rng.randint(1, 3)))).delete()
    else:
        pk = rng.choice(live)
        Threat.objects.filter(pk=pk).update(analysis_status="queued")
        with TestCase.captureOnCommitCallbacks(execute=False):
            coordinator.analyze(pk)
    return kind


def test_the_totals_equal_a_full_recount_after_random_writes(alice, customer):
    rng = random.Random(11)
    customers = [customer, factories.make_customer(), factories.make_customer()]
    done, threats = [], []
    for _ in range(120):
        done.append(random_write(rng, customers, alice, threats))
        assert_exact()
    assert set(done) >= {"create", "bulk", "triage", "close", "reopen", "update", "delete", "analyse"}
    assert Threat.objects.count() > 10


def test_retention_keeps_the_totals_exact(settings, customer):
    for index in range(12):
        factories.make_threat(customer=customer, analyse=False,
                              received_at=timezone.now() - timedelta(minutes=index))
    settings.MAX_STORED_THREATS = 5
    services.enforce_retention(batch_size=2)
    assert Threat.objects.count() == 5
    assert_exact()
    assert sum(row.n for row in ThreatCount.objects.all()) == 5


def _migration():
    import importlib

    return importlib.import_module(f"threats.migrations.{stats.MIGRATION[1]}")


def test_the_migration_installs_the_triggers_this_code_generates():
    """The triggers' SQL is frozen in a migration: a change to the totals or to SLA_MINUTES fails
    here until a new migration installs the new SQL (copy the last one; stats.MIGRATION names it)."""
    migration = _migration()
    assert migration.POSTGRESQL == stats.install_statements("postgresql")
    assert migration.SQLITE == stats.install_statements("sqlite")
    assert migration.POSTGRESQL_UNDO == stats.uninstall_statements("postgresql")
    assert migration.SQLITE_UNDO == stats.uninstall_statements("sqlite")
    assert stats.installed()  # the test database was migrated: the migration put them there
    stats.check_after_migrate(sender=None)  # and the post_migrate check is satisfied


def test_the_migration_can_be_undone_and_done_again(customer):
    migration = _migration()
    undo, do = ((migration.POSTGRESQL_UNDO, migration.POSTGRESQL) if connection.vendor == "postgresql"
                else (migration.SQLITE_UNDO, migration.SQLITE))
    factories.make_threat(customer=customer, analyse=False)
    with connection.cursor() as cursor:
        for statement in undo:
            cursor.execute(statement)
    assert not stats.installed()
    factories.make_threat(customer=customer, analyse=False)  # not counted: no triggers
    assert stats.stored() != stats.recount()
    with connection.cursor() as cursor:
        for statement in do:
            cursor.execute(statement)
    assert stats.installed()
    assert_exact()  # rebuilt from the threats
    factories.make_threat(customer=customer, analyse=False)
    assert_exact()


def test_a_lost_trigger_fails_the_post_migrate_check_and_install_repairs_it(customer):
    factories.make_threat(customer=customer, analyse=False)
    with connection.cursor() as cursor:  # what a SQLite table rebuild in a later migration does
        if connection.vendor == "postgresql":
            cursor.execute("DROP TRIGGER threats_count_insert ON threats_threat")
        else:
            cursor.execute("DROP TRIGGER threats_count_insert")
    with pytest.raises(stats.TotalsTriggersMissing, match="RunPython"):
        stats.check_after_migrate(sender=None)
    factories.make_threat(customer=customer, analyse=False)
    assert stats.stored() != stats.recount()

    assert stats.install() is True
    assert stats.install() is False  # already current: nothing to do
    stats.check_after_migrate(sender=None)
    assert_exact()
    factories.make_threat(customer=customer, analyse=False)
    assert_exact()


def test_the_totals_can_be_read_for_a_customer_scope(customer):
    other = factories.make_customer()
    factories.make_threat(customer=customer, analyse=False)
    factories.make_threat(customer=other, analyse=False)
    factories.make_threat(customer=other, analyse=False)

    assert sum(row[5] for row in stats.totals([other.pk])) == 2
    assert stats.stored([customer.pk]) == stats.recount([customer.pk])
    assert stats.recount([]) == {}


# --- The analytics built from the totals equal brute force over every threat ---------------------------


def brute_force(now):
    threats = list(Threat.objects.select_related("customer"))

    def times(rows):
        acked = [t for t in rows if t.acknowledged_at]
        closed = [t for t in rows if t.closed_at]
        mean = lambda items, field: round(
            sum((getattr(t, field) - t.received_at).total_seconds() for t in items) / len(items), 3) if items else None
        return {
            "acknowledged": len(acked), "mtta_seconds": mean(acked, "acknowledged_at"),
            "closed": len(closed), "mttr_seconds": mean(closed, "closed_at"),
            "within_sla": sum(1 for t in acked if t.severity in SLA_MINUTES
                              and t.acknowledged_at <= t.received_at + timedelta(minutes=SLA_MINUTES[t.severity])),
            "breached_open": sum(1 for t in rows if t.severity in SLA_MINUTES and not t.acknowledged_at
                                 and t.status not in CLOSED_STATUSES
                                 and t.received_at < now - timedelta(minutes=SLA_MINUTES[t.severity])),
        }

    analysed = [t for t in threats if t.processing_ms is not None]
    return {
        "total_threats": len(threats),
        "customers_affected": len({t.customer_id for t in threats}),
        "requires_review": sum(1 for t in threats if t.requires_human_review and t.status not in CLOSED_STATUSES),
        "by_status": {s: sum(1 for t in threats if t.status == s) for s in Status.values},
        "by_severity": {s: sum(1 for t in threats if t.severity == s) for s in Severity.values},
        "open_by_severity": {s: sum(1 for t in threats if t.severity == s and t.status not in CLOSED_STATUSES)
                             for s in Severity.values},
        "analyzed_count": len(analysed),
        "processing_ms_sum": sum(t.processing_ms for t in analysed),
        "sla_overall": times(threats),
        "sla_by_severity": {s: times([t for t in threats if t.severity == s]) for s in Severity.values},
        "sla_by_customer": {c: times([t for t in threats if t.customer.slug == c])
                            for c in {t.customer.slug for t in threats}},
    }


def test_the_analytics_equal_brute_force_over_every_threat(alice, customer):
    rng = random.Random(5)
    customers = [customer, factories.make_customer()]
    threats = []
    for _ in range(60):
        random_write(rng, customers, alice, threats)
    now = timezone.now()
    late, quick, waiting = (factories.make_threat(customer=customer, analyse=False) for _ in range(3))
    Threat.objects.filter(pk__in=[late.pk, quick.pk, waiting.pk]).update(severity=Severity.HIGH)
    Threat.objects.filter(pk=late.pk).update(received_at=now - timedelta(hours=2))  # past its 30 min
    Threat.objects.filter(pk=quick.pk).update(acknowledged_at=quick.received_at + timedelta(minutes=3))

    body = analytics.analytics_snapshot(alice, now=now)
    expected = brute_force(now)

    sla = body["sla"]
    assert {k: body[k] for k in expected if not k.startswith("sla_")} == {
        k: v for k, v in expected.items() if not k.startswith("sla_")}
    assert {k: sla[k] for k in expected["sla_overall"]} == expected["sla_overall"]
    assert sla["by_severity"] == expected["sla_by_severity"]
    assert {slug: {k: v for k, v in row.items() if k != "name"} for slug, row in sla["by_customer"].items()} \
        == expected["sla_by_customer"]
    assert expected["sla_overall"]["breached_open"] > 0, expected["sla_overall"]
    assert expected["sla_overall"]["within_sla"] > 0, expected["sla_overall"]


# --- Retention reads the count from the totals ----------------------------------------------------------


def test_retention_deletes_exactly_the_oldest_excess_with_their_rows(settings, customer):
    from agents.models import AgentRun
    from threats.models import ThreatEvent

    made = [factories.make_threat(customer=customer, received_at=timezone.now() - timedelta(minutes=m))
            for m in range(7)]
    settings.MAX_STORED_THREATS = 4

    assert services.enforce_retention(batch_size=2) == 3

    oldest = {t.pk for t in made[4:]}
    assert set(Threat.objects.values_list("pk", flat=True)) == {t.pk for t in made[:4]}
    assert not ThreatEvent.objects.filter(threat_id__in=oldest).exists()
    assert not AgentRun.objects.filter(threat_id__in=oldest).exists()
    assert services.enforce_retention() == 0
    assert_exact()


def test_retention_below_the_limit_costs_one_small_query(settings, customer, django_assert_num_queries):
    factories.make_threat(customer=customer, analyse=False)
    settings.MAX_STORED_THREATS = 10
    with django_assert_num_queries(1):
        assert services.enforce_retention() == 0


@pytest.mark.parametrize("fraction", [0, 499_999, 999_499, 999_500, 999_999])
def test_durations_are_exact_to_the_microsecond_whatever_the_fraction_of_a_second(customer, fraction):
    """SQLite's strftime('%s') rounds .9995 s and more up to the next second: the totals must not."""
    received = timezone.now().replace(microsecond=fraction) - timedelta(hours=1)
    acknowledged, closed = received + timedelta(minutes=10, microseconds=1), received + timedelta(minutes=20)
    threat = factories.make_threat(customer=customer, analyse=False)
    Threat.objects.filter(pk=threat.pk).update(received_at=received, acknowledged_at=acknowledged, closed_at=closed)
    [bucket] = ThreatCount.objects.filter(customer=customer)
    assert (bucket.acknowledge_us, bucket.resolve_us) == (600_000_001, 1_200_000_000)
    assert_exact()
