from django.conf import settings
from django.db import models
from django.db.models import Q

from threats import hidden_text
from threats.models import Customer

# The observables a suppression may pin besides the rule: the entity pivots (threats/pivots.py).
ENTITY_FIELDS = ("src_ip", "dst_ip", "user", "host")


class Suppression(models.Model):
    """Alerts of one customer's rule (and, optionally, entities) that are stored but not analysed
    until `expires_at` (docs/suppressions.md)."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="suppressions")
    rule = models.CharField(max_length=120, help_text="As stored on Threat.rule, e.g. rule:5712, sid:1:2001219.")
    src_ip = models.CharField(max_length=200, blank=True, help_text="Empty: any source address.")
    dst_ip = models.CharField(max_length=200, blank=True, help_text="Empty: any destination address.")
    user = models.CharField(max_length=200, blank=True, help_text="Empty: any user.")
    host = models.CharField(max_length=200, blank=True, help_text="Empty: any host.")
    reason = models.TextField()
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                               related_name="+")
    created_from = models.UUIDField(null=True, blank=True, help_text="The closed false positive it was proposed from.")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(help_text="Mandatory, at most 90 days after creation.")
    hit_count = models.PositiveBigIntegerField(default=0, help_text="Alerts it suppressed at ingest.")
    last_hit_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                   related_name="+")
    expired_at = models.DateTimeField(null=True, blank=True, help_text="When the expiry task marked it expired.")

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # Ingest reads a customer's live suppressions (cached); the expiry task finds the due ones.
            models.Index(fields=["customer", "expires_at"], condition=Q(revoked_at__isnull=True, expired_at__isnull=True),
                         name="suppression_live"),
        ]

    def __str__(self):  # admin pages show it: hidden characters as markers
        entities = ", ".join(f"{name}={getattr(self, name)}" for name in ENTITY_FIELDS if getattr(self, name))
        return hidden_text.reveal_text(f"#{self.pk} {self.rule}" + (f" ({entities})" if entities else ""))

    def entities(self):
        """{field: value} of the entity fields it pins."""
        return {name: getattr(self, name) for name in ENTITY_FIELDS if getattr(self, name)}

    def state(self, now):
        if self.revoked_at:
            return "revoked"
        if self.expired_at or self.expires_at <= now:
            return "expired"
        return "active"
