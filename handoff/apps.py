from django.apps import AppConfig


class HandoffConfig(AppConfig):
    """Export of threats and campaigns, and signed webhooks to SOAR and chat tools (docs/handoff.md)."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "handoff"
    verbose_name = "Hand-off (webhooks)"
