"""`manage.py seed_scale --threats 1000000`: a realistic large database for scale benchmarks.

Threats are copies of a pool of real analyses: `--pool` synthetic signals (the generator, every
type, the catalogue customers) analysed by the real coordinator inside a rolled-back transaction.
Each stored threat takes one pool entry's signal and verdict at its own time: received one after
another over `--days` (newest now), older ones mostly triaged (acknowledged, closed with a
disposition), recent ones open. Every threat gets its `threat.created` and `threat.analyzed`
events (closed ones a `threat.updated` too) with the summary payload replay sends; the newest
`--detailed` threats keep the whole verdict JSON and their five agent runs, so their detail pages
are as heavy as real ones (older rows keep a compact verdict, to bound the size on disk).

Rows are written with bulk inserts in batches (one transaction each, a progress bar on stderr);
the analytics' running totals are kept by the database triggers as rows arrive and checked
against a full recount at the end (`--check`). Never run it against a database you care about:
it refuses to add to one that already holds threats unless `--append` is given.
"""

import json
import random
import sys
import time
import uuid
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, models, transaction
from django.utils import timezone

from agents import coordinator
from agents.models import AgentRun
from threats import generator, services, stats
from threats.choices import ActorKind, AnalysisStatus, Disposition, EventType, Status
from threats.models import Threat, ThreatEvent
from threats.serializers import threat_summary

OPEN_STATUSES = [Status.NEW, Status.NEW, Status.ACKNOWLEDGED, Status.INVESTIGATING, Status.ESCALATED]
DISPOSITIONS = [Disposition.TRUE_POSITIVE, Disposition.FALSE_POSITIVE, Disposition.FALSE_POSITIVE,
                Disposition.BENIGN_TRUE_POSITIVE, Disposition.DUPLICATE]
COMPACT = ("timeline", "response_plan", "risk_factors", "adversarial", "false_positive")


class Command(BaseCommand):
    help = "Bulk-insert N realistic analysed threats with their events (and agent runs for the newest)."

    def add_arguments(self, parser):
        parser.add_argument("--threats", type=int, required=True)
        parser.add_argument("--days", type=float, default=90, help="time span of the threats (default 90)")
        parser.add_argument("--batch", type=int, default=5000, help="rows per INSERT transaction (default 5000)")
        parser.add_argument("--detailed", type=int, default=10000,
                            help="newest threats that keep the whole verdict and their agent runs (default 10000)")
        parser.add_argument("--pool", type=int, default=120, help="real analyses to copy from (default 120)")
        parser.add_argument("--seed", type=int, default=7)
        parser.add_argument("--append", action="store_true", help="add to a database that already has threats")
        parser.add_argument("--check", action="store_true", help="compare the running totals with a recount")

    def handle(self, *args, threats, days, batch, detailed, pool, seed, append, check, **options):
        if threats < 1 or batch < 1:
            raise CommandError("--threats and --batch must be positive")
        if Threat.objects.exists() and not append:
            raise CommandError("This database already holds threats; use --append to add more anyway.")
        rng, self._encoded, self._shared = random.Random(seed), {}, set()
        analyst = self._analyst()
        templates = self._pool(pool, rng)
        self._shared = {id(value) for fields, runs in templates for source in (fields, *runs)
                        for value in source.values() if isinstance(value, (dict, list))}
        started, now = time.monotonic(), timezone.now()
        step = timedelta(days=days) / threats
        done = 0
        while done < threats:
            size = min(batch, threats - done)
            # Oldest first, so seq order follows time as it would have in real life.
            indexes = range(threats - done - 1, threats - done - size - 1, -1)
            self._write([self._row(rng, templates, now - step * i, i < detailed, analyst) for i in indexes])
            done += size
            self._progress(done, threats, started)
        sys.stderr.write("\n")
        self._analyze()
        if check and stats.stored() != stats.recount():
            raise CommandError("The analytics totals differ from a recount of the threats.")
        elapsed = time.monotonic() - started
        self.stdout.write(f"{threats} threats (with events; the newest {min(detailed, threats)} with agent runs) "
                          f"in {elapsed:.1f} s ({threats / elapsed:,.0f} threats/s)")

    # --- the pool of real analyses --------------------------------------------------------------

    def _analyst(self):
        user, _ = get_user_model().objects.get_or_create(username="analyst", defaults={"is_staff": True})
        return user

    def _pool(self, size, rng):
        """(Threat field values, agent runs) of `size` real analyses; nothing of them stays stored."""
        customers = {name: services.customer_for_name(name) for name in generator.CUSTOMER_CATALOGUE}
        templates = []
        with transaction.atomic():
            for _ in range(size):
                signal = generator.build_signal(rng=rng)
                threat = Threat.objects.create(
                    customer=customers[signal.customer_name], threat_type=signal.threat_type,
                    title=signal.title, occurred_at=signal.occurred_at, received_at=signal.occurred_at,
                    observables=signal.observables, raw={"metadata": signal.metadata, "scenario": signal.scenario},
                    mitre_hints=signal.mitre_hints,
                )
                verdict = coordinator.decide(threat)
                fields = {name: getattr(threat, name) for name in (
                    "customer", "threat_type", "title", "observables", "raw", "mitre_hints")}
                templates.append(({**fields, **verdict.threat_fields()}, verdict.agent_runs))
            transaction.set_rollback(True)
        return templates

    # --- one threat -----------------------------------------------------------------------------

    def _row(self, rng, templates, received, detailed, analyst):
        fields, runs = rng.choice(templates)
        threat = Threat(**{**fields, "id": uuid.uuid4(), "received_at": received,
                           "occurred_at": received - timedelta(seconds=rng.randint(1, 120)),
                           "analyzed_at": received + timedelta(milliseconds=fields["processing_ms"] + 5),
                           "analysis_status": AnalysisStatus.COMPLETED})
        threat.updated_at = threat.analyzed_at
        if not detailed:
            for name in COMPACT:
                setattr(threat, name, type(getattr(threat, name))())
        age = timezone.now() - received
        if age > timedelta(days=1) and rng.random() < 0.9:
            threat.status, threat.disposition = rng.choice([Status.CLOSED, Status.RESOLVED]), rng.choice(DISPOSITIONS)
            threat.disposition_reason, threat.assignee = "Triaged in bulk (seed_scale).", analyst
            threat.acknowledged_at = received + timedelta(minutes=rng.randint(1, 120))
            threat.closed_at = threat.acknowledged_at + timedelta(minutes=rng.randint(5, 600))
            threat.closed_by_kind, threat.updated_at = "human", threat.closed_at
        elif age > timedelta(hours=4) or rng.random() < 0.5:
            threat.status = rng.choice(OPEN_STATUSES)
            if threat.status != Status.NEW:
                threat.acknowledged_at, threat.assignee = received + timedelta(minutes=rng.randint(1, 90)), analyst
                threat.updated_at = threat.acknowledged_at
        return threat, (runs if detailed else [])

    def _write(self, rows):
        threats = [threat for threat, _ in rows]
        runs = [AgentRun(threat_id=threat.pk, **{k: v for k, v in run.items() if k != "result"})
                for threat, runs in rows for run in runs]
        events = [event for threat in threats for event in self._events(threat)]
        with transaction.atomic():
            if connection.vendor == "postgresql":
                for model, objects in ((Threat, threats), (AgentRun, runs), (ThreatEvent, events)):
                    self._copy(model, objects)
            else:
                Threat.objects.bulk_create(threats)
                AgentRun.objects.bulk_create(runs)
                ThreatEvent.objects.bulk_create(events)

    def _copy(self, model, objects):
        """PostgreSQL COPY (several times faster than INSERT); JSON columns go as text, the
        pool's shared verdict objects encoded once."""
        fields = [f for f in model._meta.concrete_fields if not (f.primary_key and isinstance(f, models.AutoField))]
        json_fields = {f.attname for f in fields if isinstance(f, models.JSONField)}
        columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
        with connection.cursor() as cursor, cursor.cursor.copy(f"COPY {model._meta.db_table} ({columns}) FROM STDIN") as copy:
            for obj in objects:
                copy.write_row([self._json(getattr(obj, f.attname)) if f.attname in json_fields
                                else getattr(obj, f.attname) for f in fields])

    def _json(self, value):
        if id(value) in self._shared:  # the pool's objects live as long as the command
            if id(value) not in self._encoded:
                self._encoded[id(value)] = json.dumps(value, cls=DjangoJSONEncoder)
            return self._encoded[id(value)]
        return json.dumps(value, cls=DjangoJSONEncoder)

    def _events(self, threat):
        summary = threat_summary(threat)
        created = dict(summary, severity=None, risk_score=None, analysis_status="queued", status="new",
                       disposition=None, assignee=None, executive_summary="", mitre_techniques=[],
                       processing_ms=None, requires_human_review=False)
        events = [
            ThreatEvent(threat=threat, type=EventType.CREATED, actor_kind=ActorKind.SYSTEM, actor_label="system",
                        payload={"threat": created}, created_at=threat.received_at),
            ThreatEvent(threat=threat, type=EventType.ANALYZED, actor_kind=ActorKind.AGENT, actor_label="coordinator",
                        payload={"threat": dict(summary, status="new", disposition=None, assignee=None)},
                        created_at=threat.analyzed_at),
        ]
        if threat.status != Status.NEW:
            events.append(ThreatEvent(threat=threat, type=EventType.UPDATED, actor_kind=ActorKind.USER,
                                      actor=threat.assignee, actor_label=threat.assignee.get_username(),
                                      payload={"threat": summary, "changes": {"status": {"from": "new", "to": threat.status}}},
                                      created_at=threat.updated_at))
        return events

    def _analyze(self):
        """Fresh planner statistics, as autovacuum would gather them after a while: right after a bulk
        load the planner still sees the old table (at a million rows a filter on status and customer
        then took 100+ ms instead of 2)."""
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(f"ANALYZE {Threat._meta.db_table}, {ThreatEvent._meta.db_table}, {AgentRun._meta.db_table}")

    def _progress(self, done, total, started):
        elapsed = max(time.monotonic() - started, 1e-6)
        rate = done / elapsed
        width = 30
        filled = int(width * done / total)
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done:,}/{total:,} threats "
                         f"{100 * done / total:5.1f}%  {rate:,.0f}/s  ETA {(total - done) / rate:,.0f} s ")
        sys.stderr.flush()
