from django.apps import AppConfig


class SuppressionsConfig(AppConfig):
    """Suppressions with a blast-radius preview (issue 21 item 2, docs/suppressions.md)."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "suppressions"
    verbose_name = "Suppressions"
