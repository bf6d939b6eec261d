"""The beat task that ends suppressions past their expiry (CELERY_BEAT_SCHEDULE "expire-suppressions")."""

from celery import shared_task

from . import services


@shared_task(name="suppressions.expire", soft_time_limit=30, time_limit=60)
def expire():
    """Idempotent: a suppression already marked expired is not touched again."""
    return services.expire_due()
