import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

from . import hidden_text
from .choices import (
    ActorKind,
    AnalysisStatus,
    ClosedByKind,
    ContextKind,
    Disposition,
    InfraEventKind,
    Sensitivity,
    Severity,
    Status,
    ThreatType,
    Tier,
)

TYPE_LABELS = dict(ThreatType.choices)
# My queue's parts (threats/queue.py) and their partial indexes (migration 0018): open threats with a
# risk whose SLA clock ran (or runs) unacknowledged, open threats acknowledged, and the rest.
SLA_SEVERITIES = ["CRITICAL", "HIGH", "MEDIUM", "LOW"]  # choices.SLA_MINUTES
QUEUE_OPEN = ~Q(status__in=["resolved", "closed"])
QUEUE_RATED_UNACKNOWLEDGED = Q(risk_score__isnull=False, acknowledged_at__isnull=True,
                               severity__in=SLA_SEVERITIES) & QUEUE_OPEN
QUEUE_RATED_ACKNOWLEDGED = Q(risk_score__isnull=False, acknowledged_at__isnull=False) & QUEUE_OPEN
QUEUE_UNRATED = (Q(risk_score__isnull=True) | Q(acknowledged_at__isnull=True) & ~Q(severity__in=SLA_SEVERITIES)) & QUEUE_OPEN


class Customer(models.Model):
    """A tenant whose traffic is monitored, with the configuration the agents check signals against."""

    name = models.CharField(max_length=100, unique=True)
    slug = models.SlugField(max_length=100, unique=True)
    tier = models.CharField(max_length=20, choices=Tier.choices, default=Tier.BUSINESS)
    rate_limit_per_minute = models.PositiveIntegerField(default=100)
    allowed_countries = models.JSONField(
        default=list, blank=True, help_text="ISO 3166 alpha-2 codes; empty means any country."
    )
    bot_sensitivity = models.CharField(
        max_length=10, choices=Sensitivity.choices, default=Sensitivity.MEDIUM
    )
    auto_block = models.BooleanField(default=False)
    timezone = models.CharField(max_length=64, default="UTC")
    business_hours_start = models.PositiveSmallIntegerField(default=8, help_text="Hour, 0-23.")
    business_hours_end = models.PositiveSmallIntegerField(default=18, help_text="Hour, 1-24.")
    escalation_contacts = models.JSONField(default=list, blank=True)
    allow_listed_ips = models.JSONField(
        default=list, blank=True, help_text="IP addresses or CIDR networks that are trusted."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):  # admin pages show it (columns, filters, links): hidden characters as markers
        return hidden_text.reveal_text(self.name)


class ThreatGroup(models.Model):
    """Repeated alerts with the same grouping key inside a time window: one head, many members."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="threat_groups")
    source = models.CharField(max_length=32)
    key = models.CharField(max_length=255, help_text="Format-specific grouping key, e.g. rule id + entity.")
    title = models.CharField(max_length=200)
    head = models.ForeignKey(
        "Threat", on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
        help_text="The first alert of the group; the agents analyse it once for the group.",
    )
    member_count = models.PositiveIntegerField(default=0)
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()
    worst_severity_hint = models.CharField(max_length=10, blank=True)
    tactics = models.JSONField(default=list, blank=True)
    users = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-last_seen"]
        indexes = [models.Index(fields=["customer", "source", "key", "-last_seen"], name="group_lookup")]

    def __str__(self):  # admin pages, breadcrumbs and messages show it: hidden characters as markers
        return hidden_text.reveal_text(f"{self.title} (x{self.member_count})")


class Campaign(models.Model):
    """One user's activity across hosts and rules within a short window (threats/grouping.py)."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="campaigns")
    key = models.CharField(max_length=255, help_text="What links the threats, e.g. user:alice.")
    title = models.CharField(max_length=200)
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()
    threat_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-last_seen"]
        indexes = [models.Index(fields=["customer", "key", "first_seen"], name="campaign_lookup")]

    def __str__(self):
        return f"{self.title} (x{self.threat_count})"


class CampaignLink(models.Model):
    """A key that finds a campaign (threats/grouping.py): every person, attacking address and host its
    threats named, so a spray's next victim joins the campaign its first victim started."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="links")
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["campaign", "key"], name="campaign_link_unique")]
        indexes = [models.Index(fields=["customer", "key"], name="campaign_link_lookup")]

    def __str__(self):
        return self.key


class Threat(models.Model):
    """One threat signal, the agents' verdict on it, and its triage state."""

    # Signal
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    source = models.CharField(max_length=32, default="generator")
    source_ref = models.CharField(max_length=200, blank=True)
    threat_type = models.CharField(max_length=40)
    title = models.CharField(max_length=200)
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="threats")
    occurred_at = models.DateTimeField()
    received_at = models.DateTimeField()
    raw = models.JSONField(default=dict, blank=True)
    observables = models.JSONField(default=dict, blank=True)
    mitre_hints = models.JSONField(default=list, blank=True)
    severity_hint = models.CharField(
        max_length=10, choices=Severity.choices, blank=True, help_text="Severity the source gave the alert."
    )
    rule = models.CharField(
        max_length=120, blank=True, help_text="The source's rule or signature, e.g. rule:5712 (Wazuh), sid:1:2001219."
    )
    signal = models.JSONField(
        default=dict, blank=True, help_text="The alert in the normalised signal model the agents read (docs/signals.md)."
    )
    group = models.ForeignKey(
        ThreatGroup, on_delete=models.SET_NULL, null=True, blank=True, related_name="members"
    )
    # Indexed by a partial index below (threat_campaign), built concurrently on PostgreSQL (migration 0012).
    campaign = models.ForeignKey(
        Campaign, on_delete=models.SET_NULL, null=True, blank=True, related_name="threats", db_index=False,
        help_text="The user's campaign this threat belongs to (a group member shares its head's).",
    )

    # Analysis
    analysis_status = models.CharField(
        max_length=12, choices=AnalysisStatus.choices, default=AnalysisStatus.QUEUED
    )
    severity = models.CharField(max_length=10, choices=Severity.choices, blank=True)
    risk_score = models.PositiveSmallIntegerField(null=True, blank=True)
    risk_factors = models.JSONField(default=list, blank=True)
    confidence = models.FloatField(null=True, blank=True)
    executive_summary = models.TextField(blank=True)
    mitre = models.JSONField(default=dict, blank=True)
    false_positive = models.JSONField(default=dict, blank=True)
    response_plan = models.JSONField(default=dict, blank=True)
    timeline = models.JSONField(default=list, blank=True)
    requires_human_review = models.BooleanField(default=False)
    review_reasons = models.JSONField(default=list, blank=True)
    adversarial = models.JSONField(default=dict, blank=True)
    processing_ms = models.PositiveIntegerField(null=True, blank=True)
    analyzed_at = models.DateTimeField(null=True, blank=True)
    analysis_error = models.TextField(blank=True)

    # Triage
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.NEW)
    disposition = models.CharField(max_length=24, choices=Disposition.choices, blank=True)
    disposition_reason = models.TextField(blank=True)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="assigned_threats",
    )
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    closed_by_kind = models.CharField(max_length=8, choices=ClosedByKind.choices, blank=True)
    closed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        db_index=False,  # indexed in Meta (threat_closed_by): migration 0011 builds it concurrently
        related_name="+",
        help_text="The analyst who closed it (human closures): the historical agent weighs closures per analyst.",
    )
    sla_warned_at = models.DateTimeField(
        null=True, blank=True,
        help_text="When the near-breach warning (threat.sla_warning) went out: once per threat (docs/queue.md).",
    )
    suppressed = models.BooleanField(
        default=False, help_text="Matched an active suppression at ingest: stored, closed by rule, never analysed.")
    suppression = models.ForeignKey(
        "suppressions.Suppression", on_delete=models.SET_NULL, null=True, blank=True, db_index=False,
        related_name="threats", help_text="The suppression that matched it (docs/suppressions.md).",
    )
    version = models.PositiveIntegerField(
        default=1, help_text="Triage version: one more with each triage change (the ETag; If-Match, docs/api.md)."
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        constraints = [
            # Idempotent ingest: one row per alert of a source and customer. Never across customers:
            # one customer's alert id must not answer, or suppress, another's (issue 18).
            models.UniqueConstraint(
                fields=["customer", "source", "source_ref"],
                condition=~Q(source_ref=""),
                name="threat_unique_customer_source_ref",
            ),
        ]
        indexes = [
            models.Index(fields=["-received_at", "-id"], name="threat_newest"),
            models.Index(fields=["customer", "-received_at"], name="threat_customer_newest"),
            models.Index(fields=["severity", "-received_at"], name="threat_severity_newest"),
            models.Index(fields=["status", "-received_at"], name="threat_status_newest"),
            models.Index(fields=["threat_type", "-received_at"], name="threat_type_newest"),
            models.Index(fields=["assignee", "-received_at"], name="threat_assignee_newest"),
            # The historical agent: its same-rule branch, and other customers' confirmed indicators
            # (AGENTS_SHARED_REPUTATION) — only analysts' true-positive closures, a small index.
            models.Index(fields=["customer", "rule", "-received_at"], name="threat_customer_rule_newest"),
            models.Index(fields=["-closed_at"], condition=Q(disposition="true_positive", closed_by_kind="human"),
                         name="threat_confirmed_newest"),
            models.Index(fields=["closed_by"], name="threat_closed_by"),
            # The stale-analysis sweeper looks only at unfinished analyses: keep that index tiny.
            models.Index(
                fields=["updated_at"],
                condition=Q(analysis_status__in=["queued", "running"]),
                name="threat_pending_analysis",
            ),
            # A campaign's threats (the list filter, the recount after each ingest batch).
            models.Index(fields=["campaign", "received_at"], condition=Q(campaign__isnull=False),
                         name="threat_campaign"),
            # The rule pivot across customers (threats/pivots.py); built concurrently (migration 0016).
            models.Index(fields=["rule", "-received_at"], condition=~Q(rule=""), name="threat_rule_newest"),
            # My queue (threats/queue.py): a customer's open threats in risk order, one index per
            # fixed urgency, and the few without a risk; built concurrently (migration 0018).
            models.Index(fields=["customer", "-risk_score", "received_at", "id"], condition=QUEUE_RATED_UNACKNOWLEDGED,
                         name="threat_queue_unacknowledged"),
            models.Index(fields=["customer", "-risk_score", "received_at", "id"], condition=QUEUE_RATED_ACKNOWLEDGED,
                         name="threat_queue_acknowledged"),
            models.Index(fields=["received_at"], condition=QUEUE_UNRATED, name="threat_queue_unrated"),
            # GET /api/threats?suppressed=true (docs/suppressions.md); built concurrently (migration 0019).
            models.Index(fields=["-received_at", "-id"], condition=Q(suppressed=True), name="threat_suppressed_newest"),
        ]

    def __str__(self):  # admin pages, breadcrumbs and messages show it: hidden characters as markers
        return hidden_text.reveal_text(self.title)

    @property
    def type_label(self):
        return TYPE_LABELS.get(self.threat_type, self.threat_type)


class ThreatEvent(models.Model):
    """Append-only event log: the audit trail, the WebSocket feed and the replay source."""

    seq = models.BigAutoField(primary_key=True)
    threat = models.ForeignKey(Threat, on_delete=models.CASCADE, related_name="events")
    type = models.CharField(max_length=40)
    actor_kind = models.CharField(max_length=8, choices=ActorKind.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True
    )
    actor_label = models.CharField(max_length=150, blank=True)
    payload = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["seq"]
        indexes = [models.Index(fields=["threat", "seq"], name="event_threat_seq")]

    def __str__(self):
        return f"#{self.seq} {self.type}"


class Note(models.Model):
    """An analyst's note on a threat."""

    threat = models.ForeignKey(Threat, on_delete=models.CASCADE, related_name="notes")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True)
    body = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self):
        return f"Note {self.pk} on {self.threat_id}"


class InfraEvent(models.Model):
    """A deployment, scaling step, outage or maintenance window that may explain a signal."""

    customer = models.ForeignKey(
        Customer,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="infra_events",
        help_text="Empty means shared infrastructure (affects every customer).",
    )
    kind = models.CharField(max_length=16, choices=InfraEventKind.choices)
    service = models.CharField(max_length=100, blank=True)
    description = models.CharField(max_length=500)
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["customer", "started_at"], name="infra_customer_start")]

    def __str__(self):
        return f"{self.get_kind_display()}: {self.description}"


class ContextItem(models.Model):
    """Business or news context the context agent matches against signals."""

    customer = models.ForeignKey(
        Customer,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="context_items",
        help_text="Empty means it applies to every customer.",
    )
    kind = models.CharField(max_length=16, choices=ContextKind.choices, default=ContextKind.NEWS)
    title = models.CharField(max_length=200)
    body = models.TextField(blank=True)
    threat_types = models.JSONField(
        default=list, blank=True, help_text="Threat types this item is relevant to; empty = all."
    )
    keywords = models.JSONField(default=list, blank=True)
    valid_from = models.DateTimeField()
    valid_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-valid_from"]

    def __str__(self):
        return self.title


class APIKey(models.Model):
    """A machine client's key (ingest, read, trigger). Only a SHA-256 of the secret is stored."""

    class Scope(models.TextChoices):
        INGEST = "ingest", "Ingest alerts"
        READ = "read", "Read threats"
        TRIGGER = "trigger", "Trigger synthetic threats"

    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    key_hash = models.CharField(max_length=64, editable=False)
    scopes = models.JSONField(default=list)
    source = models.CharField(
        max_length=32, blank=True, help_text="Restrict ingest to one format (wazuh, suricata, ecs, generic)."
    )
    customer = models.ForeignKey(
        Customer, on_delete=models.SET_NULL, null=True, blank=True,
        help_text="Customer for alerts that name none.",
    )
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "API key"

    def __str__(self):
        return f"{self.name} ({self.prefix}…)"

    @property
    def active(self):
        return self.revoked_at is None


class UserAccess(models.Model):
    """Customer scoping of one user: with this row the user sees only these customers (none if empty)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="soc_access")
    customers = models.ManyToManyField(Customer, blank=True, related_name="scoped_users")

    class Meta:
        verbose_name = "customer scope"

    def __str__(self):
        return f"{self.user} (scoped)"


class ThreatCount(models.Model):
    """Exact running totals of the threats of one (customer, type, severity, status): kept by
    database triggers in the writing transaction (threats/stats.py), read by the analytics."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, db_constraint=False, related_name="+")
    threat_type = models.CharField(max_length=40)
    severity = models.CharField(max_length=10, blank=True)
    status = models.CharField(max_length=16)
    n = models.BigIntegerField(default=0)
    analyzed = models.BigIntegerField(default=0, help_text="Threats with a processing time.")
    processing_ms = models.BigIntegerField(default=0, help_text="Sum of processing_ms.")
    review = models.BigIntegerField(default=0, help_text="Threats requiring human review.")
    acknowledged = models.BigIntegerField(default=0)
    acknowledge_us = models.BigIntegerField(default=0, help_text="Sum of acknowledged_at - received_at, µs.")
    closed = models.BigIntegerField(default=0)
    resolve_us = models.BigIntegerField(default=0, help_text="Sum of closed_at - received_at, µs.")
    within_sla = models.BigIntegerField(default=0, help_text="Acknowledged within the severity's SLA.")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["customer", "threat_type", "severity", "status"], name="threat_count_key"),
        ]

    def __str__(self):
        return f"{self.customer_id}/{self.threat_type}/{self.severity or '-'}/{self.status}: {self.n}"
