import secrets
import uuid

from django.db import models

from threats.choices import Severity
from threats.models import Customer


def new_secret():
    return secrets.token_urlsafe(32)


class WebhookEndpoint(models.Model):
    """A receiver (SOAR, chat bridge) that gets a signed JSON POST for the events it subscribes to."""

    name = models.CharField(max_length=100)
    url = models.URLField(max_length=500, help_text="http or https; private addresses only with WEBHOOK_ALLOW_PRIVATE_NETWORKS.")
    secret = models.CharField(max_length=200, default=new_secret,
                              help_text="Shared secret for the HMAC-SHA256 signature (docs/handoff.md).")
    analyzed_min_severity = models.CharField(
        max_length=10, choices=Severity.choices, blank=True,
        help_text="Send threat.analyzed for verdicts at or above this severity; empty = do not send.")
    on_closed = models.BooleanField(default=False, help_text="Send threat.closed when a threat is resolved or closed.")
    story_flagged_min_severity = models.CharField(
        max_length=10, choices=Severity.choices, blank=True, verbose_name="story flagged at or above severity",
        help_text="Send story.flagged for attack stories at or above this severity; empty = do not send.")
    customers = models.ManyToManyField(Customer, blank=True, related_name="+",
                                       help_text="Only these customers' threats and stories; none selected = every customer.")
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "webhook endpoint"

    def __str__(self):
        return self.name

    def clean(self):
        from .addresses import check_url

        check_url(self.url, resolve=False)


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered"
    DEAD = "dead", "Dead letter"


class WebhookDelivery(models.Model):
    """One event for one endpoint: written in the transaction that caused it (the outbox), then sent
    and retried with back-off until delivered or out of attempts (a dead letter)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=40)
    threat_id = models.UUIDField(null=True, blank=True, help_text=(
        "The threat the event is about; for story.flagged, the alert that flagged the story (kept if it is deleted)."))
    story_id = models.PositiveBigIntegerField(null=True, blank=True,
                                              help_text="The story a story.flagged event is about (kept if it is deleted).")
    payload = models.JSONField()
    status = models.CharField(max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(help_text="When it is due; while an attempt runs, the end of its lease.")
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "webhook deliveries"
        indexes = [models.Index(fields=["next_attempt_at"], condition=models.Q(status="pending"), name="delivery_due")]

    def __str__(self):
        return f"{self.event} → {self.endpoint}"


class DeadLetterManager(models.Manager):
    def get_queryset(self):
        return super().get_queryset().filter(status=DeliveryStatus.DEAD)


class DeadLetter(WebhookDelivery):
    """A delivery that used up its attempts: the admin's dead-letter list, with "retry now"."""

    objects = DeadLetterManager()

    class Meta:
        proxy = True
        verbose_name = "dead letter"
