from django.db import models

from .registry import KIND_CHOICES


class AgentRun(models.Model):
    """One agent's analysis of one threat: status, timing, confidence, findings and evidence."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    threat = models.ForeignKey("threats.Threat", on_delete=models.CASCADE, related_name="agent_runs")
    kind = models.CharField(max_length=20, choices=KIND_CHOICES)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.FloatField(null=True, blank=True)
    confidence = models.FloatField(null=True, blank=True)
    summary = models.TextField(blank=True)
    findings = models.JSONField(default=list, blank=True)
    recommendations = models.JSONField(default=list, blank=True)
    evidence = models.JSONField(default=list, blank=True)
    risk = models.JSONField(default=list, blank=True)
    data = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["threat", "id"]
        constraints = [
            # A re-delivered analysis task updates these rows instead of adding new ones.
            models.UniqueConstraint(fields=["threat", "kind"], name="agentrun_one_per_kind"),
        ]

    def __str__(self):
        return f"{self.kind} on {self.threat_id}"
