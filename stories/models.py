from django.db import models
from django.db.models import Q

from threats.choices import Severity
from threats.models import Customer, Threat


class EntityKind(models.TextChoices):
    HOST = "host", "Host"
    USER = "user", "User"
    SOURCE = "source", "Source address"


class Story(models.Model):
    """One entity's alerts within a customer, in time order, with the ATT&CK tactics they reached (docs/stories.md)."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="stories")
    entity_kind = models.CharField(max_length=8, choices=EntityKind.choices)
    entity = models.CharField(max_length=255, help_text="The host, user or source address, as the alerts name it.")
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()
    tactics = models.JSONField(default=list, blank=True, help_text=(
        "The tactics reached, in the order reached: [{id, name, threat, at}], threat = the first alert that reached it."))
    stage_count = models.PositiveSmallIntegerField(default=0)
    severity = models.CharField(max_length=10, choices=Severity.choices, blank=True,
                                help_text="The story's: its highest alert's, one band higher for a progression (docs/stories.md).")
    alert_severity = models.CharField(max_length=10, choices=Severity.choices, blank=True,
                                      help_text="The highest severity of a single alert in it.")
    threat_count = models.PositiveIntegerField(default=0)
    flagged_at = models.DateTimeField(null=True, blank=True, help_text="When it first progressed to a later stage (once).")
    flagged_threat = models.ForeignKey(Threat, on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
                                       help_text="The alert whose tactic made the progression.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-last_seen", "-id"]
        verbose_name_plural = "stories"
        indexes = [
            # The open story of an entity (stitching), and GET /api/stories?entity=.
            models.Index(fields=["customer", "entity_kind", "entity", "-last_seen"], name="story_entity"),
            # GET /api/stories?entity= across customers (the first index needs the customer first).
            models.Index(fields=["entity", "-last_seen"], name="story_entity_newest"),
            # The list, newest first, per customer and across them; flagged stories alone.
            models.Index(fields=["customer", "-last_seen", "-id"], name="story_customer_newest"),
            models.Index(fields=["-last_seen", "-id"], name="story_newest"),
            models.Index(fields=["-last_seen", "-id"], condition=Q(flagged_at__isnull=False), name="story_flagged_newest"),
        ]

    def __str__(self):
        return f"{self.get_entity_kind_display()} {self.entity} ({self.stage_count} tactic{'s' if self.stage_count != 1 else ''})"


class StoryThreat(models.Model):
    """A threat's place in a story: when it happened and what it brings (tactics, severity)."""

    story = models.ForeignKey(Story, on_delete=models.CASCADE, related_name="links")
    threat = models.ForeignKey(Threat, on_delete=models.CASCADE, related_name="story_links")
    occurred_at = models.DateTimeField()
    tactics = models.JSONField(default=list, blank=True, help_text="[{id, name}] in kill-chain order.")
    severity = models.CharField(max_length=10, blank=True)
    counts = models.BooleanField(default=True, help_text="False once an analyst dismissed it (false positive, benign).")

    class Meta:
        ordering = ["occurred_at", "id"]
        constraints = [models.UniqueConstraint(fields=["story", "threat"], name="story_threat_unique")]
        indexes = [models.Index(fields=["story", "occurred_at"], name="story_threat_time")]

    def __str__(self):
        return f"{self.threat_id} in story {self.story_id}"
