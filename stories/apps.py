from django.apps import AppConfig


class StoriesConfig(AppConfig):
    """Kill-chain stories: one entity's alerts within a customer, with the ATT&CK tactics they reached (docs/stories.md)."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "stories"
    verbose_name = "Attack stories"
