"""Enumerations shared by models, services, the API and the generator."""

from django.db import models


class ThreatType(models.TextChoices):
    BOT_TRAFFIC = "bot_traffic", "Bot traffic"
    PROXY_NETWORK = "proxy_network", "Proxy network"
    DEVICE_COMPROMISE = "device_compromise", "Device compromise"
    ANOMALY_DETECTION = "anomaly_detection", "Anomaly detection"
    RATE_LIMIT_BREACH = "rate_limit_breach", "Rate-limit breach"
    GEO_ANOMALY = "geo_anomaly", "Geo anomaly"


class Scenario(models.TextChoices):
    CRYPTO_SURGE = "crypto_surge", "Crypto surge"
    BOT_ATTACK = "bot_attack", "Bot attack"
    GEO_IMPOSSIBLE = "geo_impossible", "Impossible travel"
    CRITICAL_THREAT = "critical_threat", "Critical threat"


class Severity(models.TextChoices):
    LOW = "LOW", "Low"
    MEDIUM = "MEDIUM", "Medium"
    HIGH = "HIGH", "High"
    CRITICAL = "CRITICAL", "Critical"


# How long a threat of each severity may wait for an analyst's acknowledgement: the response plan's
# SLA (agents/analyzers/response.py), the queue's order, the SLA figures and the near-breach warnings.
SLA_MINUTES = {"CRITICAL": 15, "HIGH": 30, "MEDIUM": 60, "LOW": 240}


class AnalysisStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    # An ingested alert that joined a group: not analysed itself, it shares the group head's verdict.
    GROUPED = "grouped", "Grouped (analysed with its group head)"
    # An ingested alert an active suppression matched: stored and counted, never analysed.
    SUPPRESSED = "suppressed", "Suppressed (not analysed)"


class Status(models.TextChoices):
    NEW = "new", "New"
    ACKNOWLEDGED = "acknowledged", "Acknowledged"
    INVESTIGATING = "investigating", "Investigating"
    ESCALATED = "escalated", "Escalated"
    RESOLVED = "resolved", "Resolved"
    CLOSED = "closed", "Closed"


CLOSED_STATUSES = (Status.RESOLVED, Status.CLOSED)


class Disposition(models.TextChoices):
    TRUE_POSITIVE = "true_positive", "True positive"
    BENIGN_TRUE_POSITIVE = "benign_true_positive", "Benign true positive"
    FALSE_POSITIVE = "false_positive", "False positive"
    DUPLICATE = "duplicate", "Duplicate"
    OTHER = "other", "Other"


class ClosedByKind(models.TextChoices):
    HUMAN = "human", "Human"
    RULE = "rule", "Rule"
    AGENT = "agent", "Agent"


class ActorKind(models.TextChoices):
    USER = "user", "User"
    AGENT = "agent", "Agent"
    SYSTEM = "system", "System"


class EventType(models.TextChoices):
    """Dotted event types; a consumer handles each with the same name in snake case."""

    CREATED = "threat.created", "Threat created"
    ANALYZED = "threat.analyzed", "Threat analysed"
    UPDATED = "threat.updated", "Threat updated"
    NOTE_ADDED = "threat.note_added", "Note added"
    ANALYSIS_FAILED = "threat.analysis_failed", "Analysis failed"
    SLA_WARNING = "threat.sla_warning", "SLA nearly breached"


class Tier(models.TextChoices):
    STARTER = "starter", "Starter"
    BUSINESS = "business", "Business"
    ENTERPRISE = "enterprise", "Enterprise"


class Sensitivity(models.TextChoices):
    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"


class InfraEventKind(models.TextChoices):
    DEPLOYMENT = "deployment", "Deployment"
    SCALING = "scaling", "Scaling"
    OUTAGE = "outage", "Outage"
    MAINTENANCE = "maintenance", "Maintenance"
    CONFIG_CHANGE = "config_change", "Configuration change"


class ContextKind(models.TextChoices):
    NEWS = "news", "News"
    BUSINESS = "business", "Business event"
    ADVISORY = "advisory", "Advisory"
