"""Celery tasks of the threats app (Celery beat schedules `threats.generate_threat` and `threats.warn_sla`)."""

from celery import shared_task

from .autogen import generate_one


@shared_task(name="threats.generate_threat", soft_time_limit=20, time_limit=30)
def generate_threat_task():
    return str(generate_one().pk)


@shared_task(name="threats.warn_sla", soft_time_limit=20, time_limit=30)
def warn_sla_task():
    """Push `threat.sla_warning` for threats about to breach their SLA (idempotent: once per threat)."""
    from . import services

    return len(services.warn_near_breach())
